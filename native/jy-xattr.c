/* jy-xattr: overlayfs's opaque mark on directories (trusted.overlay.opaque = "y"), which Node
 * cannot read or write. A directory the jail removed and made again in a copy-on-write layer
 * carries it, so the lower layer's entries stay hidden; a copy of the layer (export, clone,
 * snapshot: src/portable) must carry it too.
 *
 *   jy-xattr list ROOT   prints, NUL-terminated, the paths (relative to ROOT) of the
 *                        directories below ROOT that carry the mark; symlinks are never
 *                        followed and other filesystems are not entered
 *   jy-xattr mark DIR    reads NUL-terminated paths from stdin and marks each, relative to
 *                        DIR, walked component by component with O_NOFOLLOW|O_DIRECTORY from
 *                        DIR: a symlink anywhere on the way is refused (exit 1), so a mark
 *                        never lands outside DIR */
#define _GNU_SOURCE
#define DIE_PREFIX "jy-xattr"
#define DIE_STATUS 1
#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include "jy-common.h"

#define OPAQUE "trusted.overlay.opaque"

static size_t root_len;

static int visit(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
	(void)st;
	(void)ftw;
	if (flag != FTW_D) return 0;
	char v[8];
	ssize_t n = lgetxattr(path, OPAQUE, v, sizeof v);
	if (n == 1 && v[0] == 'y' && strlen(path) > root_len) {
		fputs(path + root_len + 1, stdout);
		fputc('\0', stdout);
	}
	return 0;
}

/* Opens REL below the directory fd DIR one component at a time, never following a link. */
static int open_below(int dir, char *rel) {
	int fd = dup(dir);
	if (fd < 0) die_errno("dup");
	for (char *save = NULL, *c = strtok_r(rel, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (strcmp(c, "..") == 0 || strcmp(c, ".") == 0) die("refused: a \".\" or \"..\" component");
		int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) die_errno("cannot open %s as a directory (not following links)", c);
		close(fd);
		fd = next;
	}
	return fd;
}

int main(int argc, char **argv) {
	if (argc == 3 && strcmp(argv[1], "list") == 0) {
		root_len = strlen(argv[2]);
		while (root_len > 1 && argv[2][root_len - 1] == '/') argv[2][--root_len] = '\0';
		if (nftw(argv[2], visit, 64, FTW_PHYS | FTW_MOUNT) != 0) die_errno("cannot walk %s", argv[2]);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	if (argc == 3 && strcmp(argv[1], "mark") == 0) {
		int dir = open(argv[2], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dir < 0) die_errno("cannot open %s", argv[2]);
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;
		while ((n = getdelim(&line, &cap, '\0', stdin)) > 0) {
			if (line[n - 1] == '\0') n--;
			line[n] = '\0';
			if (n == 0) continue;
			int fd = open_below(dir, line);
			if (fsetxattr(fd, OPAQUE, "y", 1, 0) != 0) die_errno("cannot mark %s opaque", line);
			close(fd);
		}
		free(line);
		return 0;
	}
	die("usage: jy-xattr list ROOT | jy-xattr mark DIR < paths");
}
