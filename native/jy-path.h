/*
 * jy-path.h: a host path that lies in a tree a jail writes (its root), opened the way the
 * jail would resolve it and never through a symlink: openat2 below the tree's descriptor with
 * RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS. A link put there since
 * jailyard resolved the path fails the open (ELOOP) instead of leading out of the tree.
 * Used by jy-stage (its mount targets) and jy-mount (the r op's sources).
 */
#ifndef JY_PATH_H
#define JY_PATH_H
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <linux/openat2.h>
#include <unistd.h>

/* PATH below ROOT (both absolute, ROOT without or with trailing slashes): the rest after
 * ROOT without leading slashes ("" for ROOT itself), or NULL when PATH is not below it. */
static inline const char *jy_below(const char *root, const char *path) {
	size_t n = strlen(root);
	while (n > 1 && root[n - 1] == '/') n--;
	if (root[0] != '/' || strncmp(path, root, n) != 0 || (path[n] != '/' && path[n] != '\0')) return NULL;
	const char *rel = path + n;
	while (*rel == '/') rel++;
	return rel;
}

/* REL (from jy_below) opened O_PATH below ROOTFD, as the jail would resolve it, no link followed. */
static inline int jy_open_in_root(int rootfd, const char *rel) {
	struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
	return (int)syscall(SYS_openat2, rootfd, *rel ? rel : ".", &how, sizeof how);
}
#endif
