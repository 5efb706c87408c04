/*
 * User-namespace jails: the jail's root is an unprivileged host uid range (docs/userns.md).
 * Shared by jy-stage (pid 1 enters the jail's user namespace right before the keyring, the
 * seccomp filter and the capability drop), jy-enter (every exec joins it) and jy-mount
 * (idmapped binds of the skeleton, so host-owned trees appear owned by the range and jails
 * with different ranges still share them).
 *
 * The jail's other namespaces (mount, pid, uts, ipc, net) stay owned by the host's user
 * namespace: all of the stage's mount work is done with host privilege, and the jail's root
 * holds capabilities only over its own user namespace, which owns nothing (and which is
 * itself owned by the range's first uid, not host root: jy_userns_fd). So it can act on
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
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

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
 * The credentials the namespace is made with: the kernel makes the creator's euid the
 * namespace's owner, and charges everything counted per user inside it (inotify instances
 * and watches, user namespaces, POSIX message queues, pending signals, processes) to that
 * owner in the host's namespace too. Made by host root, a jail holding
 * fs.inotify.max_user_instances would starve host root's inotify_init1 (EMFILE). So the
 * child becomes the range's first uid and gid, the jail's root on the host, first.
 *
 * RLIMIT_NPROC is raised to unlimited before (to its hard limit without CAP_SYS_RESOURCE):
 * a namespace made by a uid other than 0 caps the processes of all its users together at
 * its creator's RLIMIT_NPROC (made by root: no cap); the jail's number of processes is its
 * pids cgroup's business (limits.procs).
 * CAP_SYS_ADMIN is kept (PR_SET_KEEPCAPS, then raised again in the effective set) for the
 * unshare alone, so that distributions gating unprivileged user namespaces (Debian's
 * kernel.unprivileged_userns_clone=0, AppArmor's restrict_unprivileged_userns) treat it as
 * the privileged request it is; the owner is the euid whatever the capabilities.
 *
 * The child is non-dumpable after the uid change, so /proc/CHILD is root's: host root (this
 * process) still writes its maps and opens its namespace; no other process of the range's
 * uid can (and none runs on the host: the range is reserved for jails, docs/userns.md).
 */
__attribute__((unused)) static int jy_userns_creator(unsigned long base) {
	struct rlimit nproc = { RLIM_INFINITY, RLIM_INFINITY };
	if (setrlimit(RLIMIT_NPROC, &nproc) != 0 && getrlimit(RLIMIT_NPROC, &nproc) == 0) {
		/* no CAP_SYS_RESOURCE (a container): as far as the hard limit goes */
		nproc.rlim_cur = nproc.rlim_max;
		setrlimit(RLIMIT_NPROC, &nproc);
	}
	if (prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) != 0) return -1;
	if (setgroups(0, NULL) != 0 || setresgid((gid_t)base, (gid_t)base, (gid_t)base) != 0 ||
	    setresuid((uid_t)base, (uid_t)base, (uid_t)base) != 0)
		return -1;
	struct __user_cap_header_struct head = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct caps[2];
	memset(caps, 0, sizeof caps);
	caps[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective = CAP_TO_MASK(CAP_SYS_ADMIN);
	caps[CAP_TO_INDEX(CAP_SYS_ADMIN)].permitted = CAP_TO_MASK(CAP_SYS_ADMIN);
	return (int)syscall(SYS_capset, &head, caps);
}

/*
 * A new user namespace whose uid and gid maps are "0 BASE COUNT", owned by host uid BASE
 * (above), as an O_CLOEXEC fd. A short-lived child takes the range's first uid, unshares it
 * and waits; this (host-privileged) process writes the maps and opens /proc/CHILD/ns/user,
 * then lets the child go. setgroups stays allowed: the maps are written with CAP_SETGID of
 * the parent namespace, and the jail's root manages its own users' groups inside its range.
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
	if (pid < 0) {
		int err = errno;
		close(up[0]);
		close(up[1]);
		close(go[0]);
		close(go[1]);
		errno = err;
		return -1;
	}
	if (pid == 0) {
		close(up[0]);
		close(go[1]);
		/* 0, or the errno of the step that failed */
		int e = jy_userns_creator(base) == 0 && unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
		if (write(up[1], &e, sizeof e) != (ssize_t)sizeof e) _exit(1);
		char c;
		while (read(go[0], &c, 1) > 0) ; /* until the parent closes its end */
		_exit(0);
	}
	close(up[1]);
	close(go[0]);
	char path[64], map[64];
	int fd = -1, err = 0, e = EPERM;
	if (read(up[0], &e, sizeof e) != (ssize_t)sizeof e || e != 0) {
		err = e ? e : EPERM;
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
