/*
 * jy-mount: runs a batch of mount(2)/umount2(2) calls and the few file operations a minimal
 * /dev needs, in order, in ONE process. mount(8) costs a process and a parse of the whole
 * mount table per call; a thin jail needs a dozen mounts.
 *
 *   jy-mount OP... where each OP is one of
 *     m SOURCE TARGET FSTYPE FLAGS DATA   mount(2); "" is NULL for SOURCE, FSTYPE and DATA;
 *                                          FLAGS is the decimal MS_* bit mask
 *     u TARGET FLAGS                       umount2(2); FLAGS: 0 or MNT_DETACH (2)
 *     f PATH                               an empty regular file (mount point), if missing
 *     d PATH MODE                          mkdir(2) with octal MODE, if missing
 *     l TARGET PATH                        symlink(2)
 *     i SOURCE TARGET RANGE FLAGS          an idmapped bind (native/jy-userns.h): SOURCE seen
 *                                          with host uid u as BASE+u, RANGE "BASE,COUNT";
 *                                          FLAGS: MOUNT_ATTR_* bits as for o (user-namespace jails)
 *     r ROOT                               the SOURCE of the next op (m or i) is a path inside
 *                                          ROOT, a tree a jail writes: it is opened with
 *                                          openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS), so a
 *                                          symlink the jail put there since jailyard resolved the
 *                                          path fails the op instead of leading out of ROOT; the op
 *                                          then mounts what was opened (/proc/self/fd/N)
 *     o TARGET LOWERS UPPER WORK FLAGS     an overlay (new mount API) at TARGET (absolute);
 *                                          LOWERS ':'-separated, top first, all absolute;
 *                                          FLAGS: decimal MOUNT_ATTR_* bits (ro, nosuid,
 *                                          nodev, noexec: the same values as MS_*)
 *
 * Overlay layers are given to the kernel as "." after a chdir into each one: the kernel
 * prints a layer's option text as it was given, so the jail's /proc/self/mountinfo shows
 * "lowerdir+=.,upperdir=.,workdir=." and no host path (an fd layer would be printed as its
 * full host path).
 *
 * The ops are computed by jailyard (src/platform/linux/mountops.ts): nothing here decides
 * what to mount, and no argument is ever interpreted by a shell. It stops at the first
 * failing op and exits 1 after printing, on stdout, how many ops succeeded ("done N"), and
 * on stderr which op failed and why; the caller records exactly the mounts that exist.
 * Exit 2: bad usage (nothing was done).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/mount.h>
#include <unistd.h>
#include "jy-path.h"
#include "jy-userns.h"

static const char *nul(const char *s) { return *s ? s : NULL; }

static int parse_ulong(const char *s, int base, unsigned long *out) {
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, base);
	if (errno || end == s || *end)
		return -1;
	*out = v;
	return 0;
}

/* One layer option: "." after a chdir into DIR (see the header). */
static int layer(int fs, const char *key, const char *dir) {
	if (dir[0] != '/') {
		errno = EINVAL;
		return -1;
	}
	if (chdir(dir)) return -1;
	return (int)syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, key, ".", 0);
}

/* The "o" op; restores the working directory whatever happens. */
static int overlay(const char *target, const char *lowers, const char *upper, const char *work, unsigned long attr) {
	int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0) return -1;
	int rc = -1, mnt = -1, saved = 0;
	int fs = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
	char buf[4096];
	if (fs < 0 || strlen(lowers) >= sizeof buf || target[0] != '/') {
		if (fs >= 0) errno = EINVAL;
		goto out;
	}
	if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", "overlay", 0)) goto out;
	strcpy(buf, lowers);
	for (char *save = NULL, *l = strtok_r(buf, ":", &save); l; l = strtok_r(NULL, ":", &save))
		if (layer(fs, "lowerdir+", l)) goto out;
	if (layer(fs, "upperdir", upper) || layer(fs, "workdir", work)) goto out;
	if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0)) goto out;
	mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, (unsigned int)attr);
	if (mnt < 0) goto out;
	rc = (int)syscall(SYS_move_mount, mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
out:
	saved = errno;
	if (mnt >= 0) close(mnt);
	if (fs >= 0) close(fs);
	if (fchdir(cwd) && !rc) rc = -1;
	close(cwd);
	errno = saved;
	return rc;
}

/* The "r" op's source: SOURCE (absolute, as jailyard resolved it inside ROOT) opened below
 * ROOT with no symlink followed, as an O_PATH descriptor; -1 with errno on failure. */
static int open_inside(const char *root, const char *source) {
	const char *rel = jy_below(root, source);
	if (!rel) {
		errno = EXDEV;
		return -1;
	}
	int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) return -1;
	int fd = jy_open_in_root(rootfd, rel);
	int saved = errno;
	close(rootfd);
	errno = saved;
	return fd;
}

static int usage(const char *why) {
	fprintf(stderr, "jy-mount: %s\n", why);
	return 2;
}

/* Number of arguments after the op letter, or -1 for an unknown op. */
static int arity(const char *op) {
	if (!strcmp(op, "m")) return 5;
	if (!strcmp(op, "u")) return 2;
	if (!strcmp(op, "f")) return 1;
	if (!strcmp(op, "d")) return 2;
	if (!strcmp(op, "l")) return 2;
	if (!strcmp(op, "o")) return 5;
	if (!strcmp(op, "r")) return 1;
	if (!strcmp(op, "i")) return 4;
	return -1;
}

int main(int argc, char **argv) {
	/* Validate the whole batch first: bad usage does nothing at all. */
	for (int i = 1; i < argc;) {
		int n = arity(argv[i]);
		if (n < 0) return usage("unknown op");
		if (i + n >= argc) return usage("op with too few arguments");
		unsigned long v;
		if (!strcmp(argv[i], "m") && parse_ulong(argv[i + 4], 10, &v)) return usage("bad mount flags");
		if (!strcmp(argv[i], "u") && parse_ulong(argv[i + 2], 10, &v)) return usage("bad umount flags");
		if (!strcmp(argv[i], "d") && parse_ulong(argv[i + 2], 8, &v)) return usage("bad mode");
		if (!strcmp(argv[i], "o") && parse_ulong(argv[i + 5], 10, &v)) return usage("bad overlay flags");
		unsigned long b, c;
		if (!strcmp(argv[i], "i") && (!jy_parse_range(argv[i + 3], &b, &c) || parse_ulong(argv[i + 4], 10, &v))) return usage("bad idmap range or flags");
		if (!strcmp(argv[i], "r") && (i + 2 >= argc || (strcmp(argv[i + 2], "m") && strcmp(argv[i + 2], "i"))))
			return usage("r must come before an m or i op");
		i += n + 1;
	}
	int done = 0, nsfd = -1, srcfd = -1;
	const char *nsrange = NULL;
	char fdpath[64];
	for (int i = 1; i < argc;) {
		const char *op = argv[i];
		char **a = &argv[i + 1];
		int rc = 0;
		unsigned long v = 0;
		/* the source an "r" op opened stands in for the text of this op's SOURCE */
		char *source = a[0];
		if (srcfd >= 0) {
			snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", srcfd);
			a[0] = fdpath;
		}
		if (!strcmp(op, "r")) {
			srcfd = open_inside(a[0], argv[i + 3]);
			rc = srcfd < 0 ? -1 : 0;
			if (rc) fprintf(stderr, "jy-mount: %s inside %s: %s\n", argv[i + 3], a[0], strerror(errno));
		} else if (!strcmp(op, "m")) {
			parse_ulong(a[3], 10, &v);
			rc = mount(nul(a[0]), a[1], nul(a[2]), v, nul(a[4]));
			if (rc) fprintf(stderr, "jy-mount: mount %s on %s (%s): %s\n", *source ? source : "-", a[1], *a[2] ? a[2] : "-", strerror(errno));
		} else if (!strcmp(op, "u")) {
			parse_ulong(a[1], 10, &v);
			rc = umount2(a[0], (int)v);
			if (rc) fprintf(stderr, "jy-mount: umount %s: %s\n", a[0], strerror(errno));
		} else if (!strcmp(op, "f")) {
			int fd = open(a[0], O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
			if (fd < 0) {
				rc = -1;
				fprintf(stderr, "jy-mount: create %s: %s\n", a[0], strerror(errno));
			} else {
				close(fd);
			}
		} else if (!strcmp(op, "d")) {
			parse_ulong(a[1], 8, &v);
			rc = mkdir(a[0], (mode_t)v);
			if (rc && errno == EEXIST) rc = 0;
			else if (rc) fprintf(stderr, "jy-mount: mkdir %s: %s\n", a[0], strerror(errno));
		} else if (!strcmp(op, "i")) {
			unsigned long b = 0, c = 0;
			jy_parse_range(a[2], &b, &c);
			parse_ulong(a[3], 10, &v);
			/* one user namespace per range and batch: it only carries the mapping */
			if (nsrange && strcmp(nsrange, a[2]) != 0) {
				close(nsfd);
				nsfd = -1;
			}
			if (nsfd < 0) {
				nsfd = jy_userns_fd(b, c);
				nsrange = a[2];
			}
			rc = nsfd < 0 ? -1 : jy_idmap_bind(a[0], a[1], nsfd, v);
			if (rc) fprintf(stderr, "jy-mount: idmapped bind %s on %s (%s): %s\n", source, a[1], a[2], strerror(errno));
		} else if (!strcmp(op, "o")) {
			parse_ulong(a[4], 10, &v);
			rc = overlay(a[0], a[1], a[2], a[3], v);
			if (rc) fprintf(stderr, "jy-mount: overlay on %s: %s\n", a[0], strerror(errno));
		} else if (!strcmp(op, "l")) {
			rc = symlink(a[0], a[1]);
			if (rc) fprintf(stderr, "jy-mount: symlink %s -> %s: %s\n", a[1], a[0], strerror(errno));
		}
		if (strcmp(op, "r") && srcfd >= 0) {
			a[0] = source;
			close(srcfd);
			srcfd = -1;
		}
		if (rc) {
			printf("done %d\n", done);
			return 1;
		}
		done++;
		i += arity(op) + 1;
	}
	printf("done %d\n", done);
	return 0;
}
