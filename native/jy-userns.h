/*
 * User-namespace jails: the jail's root is an unprivileged host uid range (docs/userns.md).
 * Shared by jy-stage (pid 1 enters the jail's user namespace right before the keyring, the
 * seccomp filter and the capability drop), jy-enter (every exec joins it) and jy-mount
 * (idmapped binds of the skeleton, so host-owned trees appear owned by the range and jails
 * with different ranges still share them).
 *
 * The jail's other namespaces (mount, pid, uts, ipc, net) stay owned by the host's user
 * namespace: all of the stage's mount work is done with host privilege, and the jail's root
 * holds capabilities only over its own user namespace, which owns nothing. So it can act on
 * files and processes of its range (chown, setuid, kill) but cannot mount, set the
 * hostname, write sysctls, configure its network or read host root's keyring.
 *
 * Every function returns -1 with errno set on failure (callers name the place), 0 or an fd
 * on success. Nothing here prints or exits, so each helper keeps its own error style.
 */
#ifndef JY_USERNS_H
#define JY_USERNS_H
#ifndef _GNU_SOURCE
#error "define _GNU_SOURCE before any include (setns, unshare, pipe2, setresuid)"
#endif

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* "BASE,COUNT" (decimal) -> *base, *count; 0 on a malformed or out-of-range value. */
__attribute__((unused)) static int jy_parse_range(const char *text, unsigned long *base, unsigned long *count) {
	char *end;
	errno = 0;
	unsigned long long b = strtoull(text, &end, 10);
	if (errno || end == text || *end != ',') return 0;
	const char *c = end + 1;
	unsigned long long n = strtoull(c, &end, 10);
	if (errno || end == c || *end || n == 0 || b == 0 || b + n > 0xffffffffULL) return 0;
	*base = (unsigned long)b;
	*count = (unsigned long)n;
	return 1;
}

__attribute__((unused)) static int jy_write_all(const char *path, const char *text) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) return -1;
	size_t len = strlen(text);
	ssize_t n = write(fd, text, len);
	int err = errno;
	close(fd);
	if (n == (ssize_t)len) return 0;
	errno = n < 0 ? err : EIO;
	return -1;
}

/*
 * A new user namespace whose uid and gid maps are "0 BASE COUNT", as an O_CLOEXEC fd. A
 * short-lived child unshares it and waits; this (host-privileged) process writes the maps
 * and opens /proc/CHILD/ns/user, then lets the child go. setgroups stays allowed: the maps
 * are written with CAP_SETGID of the parent namespace, and the jail's root manages its own
 * users' groups inside its range.
 */
__attribute__((unused)) static int jy_userns_fd(unsigned long base, unsigned long count) {
	int up[2], go[2];
	if (pipe2(up, O_CLOEXEC) != 0) return -1;
	if (pipe2(go, O_CLOEXEC) != 0) {
		close(up[0]);
		close(up[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) return -1;
	if (pid == 0) {
		close(up[0]);
		close(go[1]);
		char c = unshare(CLONE_NEWUSER) == 0 ? 'u' : 'e';
		if (write(up[1], &c, 1) != 1) _exit(1);
		while (read(go[0], &c, 1) > 0) ; /* until the parent closes its end */
		_exit(0);
	}
	close(up[1]);
	close(go[0]);
	char c = 0, path[64], map[64];
	int fd = -1, err = 0;
	if (read(up[0], &c, 1) != 1 || c != 'u') {
		err = EPERM;
	} else {
		snprintf(map, sizeof map, "0 %lu %lu\n", base, count);
		snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
		if (jy_write_all(path, map) == 0) {
			snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
			if (jy_write_all(path, map) == 0) {
				snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
				fd = open(path, O_RDONLY | O_CLOEXEC);
			}
		}
		if (fd < 0) err = errno;
	}
	close(up[0]);
	close(go[1]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) ;
	if (fd < 0) errno = err;
	return fd;
}

/*
 * This process joins the user namespace NSFD and becomes its root (uid, gid 0, no
 * supplementary groups), i.e. the range's first uid on the host. setns gives the full
 * capability set of that namespace and resets the bounding set: drop capabilities after.
 */
__attribute__((unused)) static int jy_become_root_in(int nsfd) {
	if (setns(nsfd, CLONE_NEWUSER) != 0) return -1;
	if (setgroups(0, NULL) != 0 || setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) return -1;
	return 0;
}

/* /proc/PID/ns/user as an fd when it differs from ours (a user-namespace jail), else -2. */
__attribute__((unused)) static int jy_userns_of(long pid) {
	char path[64];
	struct stat mine, theirs;
	snprintf(path, sizeof path, "/proc/%ld/ns/user", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return -1;
	if (fstat(fd, &theirs) != 0 || stat("/proc/self/ns/user", &mine) != 0) {
		close(fd);
		return -1;
	}
	if (theirs.st_ino == mine.st_ino && theirs.st_dev == mine.st_dev) {
		close(fd);
		return -2;
	}
	return fd;
}

/*
 * Binds SRC on TARGET through the idmapping of the user namespace NSFD (host uid u shows as
 * BASE+u), with ATTR (MOUNT_ATTR_RDONLY, NOSUID, NODEV, NOEXEC bits) set; SRC's submounts
 * are not included (as with a plain bind). The mount is a clone made with open_tree,
 * attached with move_mount.
 */
__attribute__((unused)) static int jy_idmap_bind(const char *src, const char *target, int nsfd, unsigned long attr_set) {
	int tree = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (tree < 0) return -1;
	struct mount_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.attr_set = MOUNT_ATTR_IDMAP | (attr_set & (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
	attr.userns_fd = (unsigned long)nsfd;
	int rc = mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr);
	if (rc == 0) rc = move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
	int err = errno;
	close(tree);
	errno = err;
	return rc;
}

#endif
