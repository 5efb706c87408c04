/*
 * jy-stage: makes a Linux jail's namespaces and becomes its pid 1 up to the exec of tini,
 * in one process chain (nsenter + unshare + a shell stage + a mount(8) per mount would each
 * be a process on every start).
 *
 *   jy-stage [--cgroup DIR]... [--join TYPE FILE]... [--unshare-net] [--proc-ro PATH]...
 *            [--proc-mask PATH]... [--ro-fstype TYPE]... [--suid TARGET]... [--bind-ro SRC TARGET]...
 *            [--bind-rx SRC TARGET]...
 *            [--seccomp ALLOW] [--holder PROGRAM] [--ptys N]
 *            ROOT HOSTNAME TINI KEEP DEV -- HOLDER...
 *
 *   --cgroup DIR   join the cgroup DIR first (every process of the jail descends from this
 *                  one, so all of them are charged to it from their first instruction)
 *   --join TYPE FILE  join the namespace FILE (/run/netns/NAME, /proc/PID/ns/pid, ...) of
 *                  TYPE (ipc, uts, net, pid, mnt) first; all are opened before any is joined,
 *                  the mount namespace last
 *   --unshare-net  a new network namespace too, with only the loopback (up): a jail without
 *                  addresses, like bwrap --unshare-net or a FreeBSD jail with no ip4.addr
 *   --proc-ro PATH    a path below /proc (/proc/sys, ...) the jail gets read-only
 *   --proc-mask PATH  a path below /proc the jail cannot read: /dev/null bound read-only over
 *                  a file, an empty read-only tmpfs over a directory (paths that do not exist are skipped)
 *   --ro-fstype TYPE  every mount of TYPE (sysfs, cgroup, ...: the kernel's own state) below
 *                  ROOT is made read-only, nosuid, nodev, noexec in the jail's own namespace
 *   --suid TARGET  a mount (host path) that is nosuid in the host's view but whose setuid bits
 *                  the jail honours: nosuid is cleared in the jail's own mount namespace only
 *   --bind-ro SRC TARGET  bind the host directory SRC read-only (nosuid, nodev, noexec) at
 *                  TARGET inside the jail, in the jail's own mount namespace only (SRC is opened
 *                  before pivot_root, TARGET is resolved after it, inside the jail)
 *   --bind-rx SRC TARGET  the same, but its programs can run (read-only, nosuid, nodev):
 *                  the tools jailyard gives every jail. Binds are made in the order given
 *   --seccomp ALLOW   the seccomp allowances (native/jy-seccomp.h); none given: the default filter
 *   --holder PROGRAM  the host's static holder (native/jy-hold.c), bound read-only at
 *                  ROOT/.jailyard/hold beside tini (a regular file there, checked as tini's);
 *                  HOLDER... then names /.jailyard/hold
 *   --userns BASE,COUNT  a user-namespace jail (native/jy-userns.h, docs/userns.md): pid 1
 *                  becomes root of a user namespace mapping 0..COUNT-1 to host uids (gids)
 *                  BASE.. right before the keyring, the filter and the capability drop;
 *                  every other namespace stays the host's to own. The jail's network
 *                  namespace lets it bind ports below 1024 (ip_unprivileged_port_start 0:
 *                  its root holds no capability there)
 *   --join-user FILE BASE  a nested jail of a user-namespace jail: pid 1 enters the user
 *                  namespace FILE (its parent's, /proc/PID/ns/user) where --userns would make
 *                  one, so the child's root is its parent's root and nothing more; BASE is
 *                  the host uid of that root (the owner of a made /dev)
 *   --ptys N       the devpts of a made /dev holds at most N ptys (devpts max): every devpts
 *                  instance draws on the kernel's one pool (kernel.pty.max), which
 *                  kernel.pty.reserve keeps back for the host's own instance only; none
 *                  given: no cap of its own
 *   ROOT           the jail root (a private mount point with the plan's mounts below it)
 *   TINI           the host's static tini, bound read-only at ROOT/.jailyard/tini (the
 *                  driver made that directory and mount point file; both are checked to be
 *                  a real directory and a regular file, never followed symlinks)
 *   KEEP           capability numbers the jail keeps (comma-separated)
 *   DEV            "makedev": mount a minimal /dev (the plan had none); "keepdev": leave it
 *
 * The process chain: this process joins the given namespaces but a pid namespace, unshares
 * mount, uts, ipc and cgroup (and pid, unless one was given), makes every mount private, and
 * builds the jail's tree: the host files the jail gets (tini, the holder, device nodes,
 * /dev/null for /proc's masks, the --bind-ro trees) are taken as detached trees first; then
 * it pivot_roots into ROOT and detaches the old root BEFORE anything is made or mounted in
 * the jail's tree, which after the pivot is reached only through descriptors opened with no
 * link followed: /dev, nosuid cleared on the --suid mounts, tini and the holder, the binds,
 * the hostname. A nested jail's root is its running parent's folder, so a path looked at
 * twice could change in between (a symlink to a host folder swapped in: host root's mkdir
 * landed there), and no process exists yet in the parent's pid namespace, which could read
 * the host's mount table from it. Only then, for a nested jail, it joins the given pid
 * namespace and forks (a pid namespace is made in the active one), and that process
 * unshares the jail's own; then the jail's pid 1 is forked. Each parent waits for its child
 * and exits with its status (like unshare --fork). Right after parsing, every process of
 * the chain blanks its argument area: /proc/PID/cmdline (readable by a parent jail that
 * sees a nested child's stage) reads just "jy-stage", no host path, cgroup or pid.
 *
 * Pid 1 mounts its /proc (read-only and masked parts as given, the OCI runtimes' defaults,
 * placed through the proc mount's own descriptor), makes the --ro-fstype mounts read-only
 * (the table is the jail's own), joins a fresh session keyring, installs the seccomp filter,
 * drops every capability not in KEEP, prints "ready" on stdout (the driver waits for that
 * line), closes every descriptor above 2 and execs tini, the first program of the jail.
 * Nothing of the jail's own tree runs before the drop. Errors go to stderr (the jail's console log), exit status 111.
 */
#define _GNU_SOURCE
#define DIE_PREFIX "jailyard stage"
#define DIE_STATUS 111
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/keyctl.h>
#include <linux/nsfs.h>
#include <linux/openat2.h>
#include "jy-common.h"
#include "jy-path.h"
#include "jy-seccomp.h"
#include "jy-userns.h"

#define MAX_NS 8
#define MAX_LIST 1024 /* --suid: one per mount of the plan, and a plan may have many fstab lines */

/* Waits for the child and leaves with its status, as unshare --fork and nsenter do. */
static void wait_and_exit(pid_t child) {
	int status;
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR) die_errno("waitpid");
	if (WIFEXITED(status)) exit(WEXITSTATUS(status));
	exit(128 + WTERMSIG(status));
}

static void fork_or_continue(void) {
	pid_t pid = fork();
	if (pid < 0) die_errno("fork");
	if (pid > 0) wait_and_exit(pid);
}

static void do_mount(const char *src, const char *target, const char *type, unsigned long flags, const char *data) {
	if (mount(src, target, type, flags, data) != 0) die_errno("cannot mount %s on %s", type ? type : src ? src : "(remount)", target);
}

/* A detached clone of the host file SRC (tini, the holder, a device node), taken before
 * pivot_root and attached in the jail after it: read-only and nosuid, plus ATTR
 * (MOUNT_ATTR_NODEV for programs, MOUNT_ATTR_NOEXEC for devices). A bind is the host's
 * inode: read-only, a chmod, chown or utimes by the jailed root cannot change it. */
static int detach_file(const char *src, unsigned long long attr_set) {
	int fd = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
	if (fd < 0) die_errno("cannot open %s to bind it", src);
	struct stat st;
	if (fstat(fd, &st) != 0) die_errno("cannot look at %s", src);
	if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) die("%s is not a file or a device", src);
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | attr_set};
	if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) die_errno("cannot make the bind of %s read-only", src);
	return fd;
}

/* PATH below the jail root ROOTFD (after pivot_root: "/"), opened O_PATH with no link
 * followed and no way above the root; dies unless it is of TYPE (S_IFDIR or S_IFREG). A
 * nested jail's root is its parent's folder, which the running parent may change at any
 * time: every place in it is opened this way, once, and acted on through the descriptor. */
static int open_in_jail(int rootfd, const char *path, mode_t type) {
	const char *what = type == S_IFDIR ? "a directory" : "a regular file";
	struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
	int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
	if (fd < 0) die_errno("the jail's /%s is not %s", path, what);
	struct stat st;
	if (fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != type) die("the jail's /%s is not %s (a symlink?)", path, what);
	return fd;
}

/* Attaches the detached TREE on the place FD holds. */
static void attach_at(int tree, int fd, const char *what) {
	if (move_mount(tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) die_errno("cannot mount %s", what);
	close(tree);
}

/* A new mount of file system TYPE with the comma-separated OPTIONS ("key=value" or flags),
 * detached, with mount attributes ATTR: for attach_at. */
static int new_mount(const char *type, const char *options, unsigned long long attr) {
	int fs = fsopen(type, FSOPEN_CLOEXEC);
	if (fs < 0) die_errno("cannot make a %s", type);
	char opts[256];
	if (strlen(options) >= sizeof opts) die("internal: %s options too long", type);
	strcpy(opts, options);
	for (char *kv = strtok(opts, ","); kv; kv = strtok(NULL, ",")) {
		char *eq = strchr(kv, '=');
		int rc;
		if (eq) {
			*eq = '\0';
			rc = fsconfig(fs, FSCONFIG_SET_STRING, kv, eq + 1, 0);
		} else {
			rc = fsconfig(fs, FSCONFIG_SET_FLAG, kv, NULL, 0);
		}
		if (rc != 0) die_errno("cannot set %s on a %s", kv, type);
	}
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) die_errno("cannot make a %s", type);
	int mnt = fsmount(fs, FSMOUNT_CLOEXEC, attr);
	if (mnt < 0) die_errno("cannot mount a %s", type);
	close(fs);
	return mnt;
}

/* The device nodes of a made /dev, bound from the host's: detached before pivot_root. */
static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
#define NDEV_NODES (sizeof dev_nodes / sizeof *dev_nodes)

/* A minimal /dev (after pivot_root): a tmpfs on the jail's dev (made if missing), the host
 * device nodes NODES bound in, devpts, shm and the fd links. Everything below dev is made in
 * the fresh tmpfs, through its descriptor: nothing is looked up by name in the jail's tree.
 * The devpts holds at most PTYS ptys (0: no cap), so one jail's users cannot take every pty
 * of the global pool from the other jails. */
static void make_dev(int rootfd, unsigned long owner, const int *nodes, unsigned long ptys) {
	static const char *links[][2] = {{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}};
	if (mkdirat(rootfd, "dev", 0755) != 0 && errno != EEXIST) die_errno("cannot make dev");
	int dir = open_in_jail(rootfd, "dev", S_IFDIR);
	/* a user-namespace jail's root owns its /dev as it would without one (OWNER: its host uid) */
	char opts[96];
	snprintf(opts, sizeof opts, "mode=755,size=64k,uid=%lu,gid=%lu", owner, owner);
	int dev = new_mount("tmpfs", opts, MOUNT_ATTR_NOSUID);
	if (move_mount(dev, "", dir, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) die_errno("cannot mount the jail's dev");
	close(dir);
	for (size_t i = 0; i < NDEV_NODES; i++) {
		int fd = openat(dev, dev_nodes[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0) die_errno("cannot make dev/%s", dev_nodes[i]);
		close(fd);
		if (move_mount(nodes[i], "", dev, dev_nodes[i], MOVE_MOUNT_F_EMPTY_PATH) != 0) die_errno("cannot bind dev/%s", dev_nodes[i]);
		close(nodes[i]);
	}
	if (mkdirat(dev, "pts", 0755) != 0 || mkdirat(dev, "shm", 0755) != 0) die_errno("cannot make dev/pts, dev/shm");
	char pts_opts[96] = "newinstance,ptmxmode=0666,mode=620";
	if (ptys) snprintf(pts_opts + strlen(pts_opts), sizeof pts_opts - strlen(pts_opts), ",max=%lu", ptys);
	int pts = new_mount("devpts", pts_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
	if (move_mount(pts, "", dev, "pts", MOVE_MOUNT_F_EMPTY_PATH) != 0) die_errno("cannot mount dev/pts");
	close(pts);
	snprintf(opts, sizeof opts, "mode=1777,uid=%lu,gid=%lu", owner, owner);
	int shm = new_mount("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (move_mount(shm, "", dev, "shm", MOVE_MOUNT_F_EMPTY_PATH) != 0) die_errno("cannot mount dev/shm");
	close(shm);
	for (size_t i = 0; i < sizeof links / sizeof *links; i++)
		if (symlinkat(links[i][0], dev, links[i][1]) != 0) die_errno("cannot link dev/%s", links[i][1]);
	close(dev);
}

/* ip link set lo up, in the network namespace this process is in. */
static void loopback_up(void) {
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0) die_errno("cannot read the loopback's flags");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) die_errno("cannot bring the loopback up");
	close(s);
}

static int ns_type(const char *name) {
	if (!strcmp(name, "ipc")) return CLONE_NEWIPC;
	if (!strcmp(name, "uts")) return CLONE_NEWUTS;
	if (!strcmp(name, "net")) return CLONE_NEWNET;
	if (!strcmp(name, "pid")) return CLONE_NEWPID;
	if (!strcmp(name, "mnt")) return CLONE_NEWNS;
	return 0;
}

/* A path below /proc from the defaults file: "/proc/NAME[/NAME...]", no "." or ".." part. */
static int proc_path_ok(const char *p) {
	if (strncmp(p, "/proc/", 6) != 0 || p[6] == '\0') return 0;
	for (const char *c = p + 5; c && *c; c = strchr(c + 1, '/')) {
		if (!strncmp(c, "/./", 3) || !strcmp(c, "/.") || !strncmp(c, "/../", 4) || !strcmp(c, "/..")) return 0;
		if (!strncmp(c, "//", 2) || !strcmp(c, "/")) return 0;
	}
	return 1;
}

/* The jail's fresh /proc (after pivot_root), mounted through the new mount API on the
 * jail's proc directory: its mount descriptor, through which restrict_proc places the masks
 * (a parent renaming the directory meanwhile moves the mount, masks and all). */
static int mount_proc(int rootfd) {
	int dir = open_in_jail(rootfd, "proc", S_IFDIR);
	int proc = new_mount("proc", "", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	if (move_mount(proc, "", dir, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) die_errno("cannot mount /proc");
	close(dir);
	return proc;
}

/* Under the fresh proc mount PROC: PATHS read-only, MASKED unreadable (files: the host's
 * /dev/null bound read-only from NULLS, one each, reads nothing; directories: an empty
 * read-only tmpfs). Reached from the mount itself, never by the jail's names. Symlinks are
 * refused (a /proc/self/... entry is no fixed place); what this kernel does not have is
 * skipped. */
static void restrict_proc(int proc, const char **ro, int nro, const char **masked, int nmasked, const int *nulls) {
	struct stat st;
	for (int n = 0; n < nro + nmasked; n++) {
		const char *abs = n < nro ? ro[n] : masked[n - nro];
		const char *rel = abs + 6; /* below "/proc/" */
		struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
		int fd = (int)syscall(SYS_openat2, proc, rel, &how, sizeof how);
		if (fd < 0) {
			if (errno == ENOENT) continue;
			if (errno == ELOOP) die("%s is a symlink: not a fixed place to make read-only or mask", abs);
			die_errno("cannot look at %s", abs);
		}
		if (fstat(fd, &st) != 0) die_errno("cannot look at %s", abs);
		if (n < nro) {
			int tree = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
			if (tree < 0) die_errno("cannot bind %s", abs);
			struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC};
			if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0) die_errno("cannot make %s read-only", abs);
			attach_at(tree, fd, abs);
		} else if (S_ISDIR(st.st_mode)) {
			attach_at(new_mount("tmpfs", "size=4k,nr_inodes=1,mode=555", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC), fd, abs);
		} else {
			/* the host's /dev/null, read-only as the jail's /dev/null is: a writable bind
			 * let the jailed root chmod, chown or touch the host's node through the mask */
			attach_at(nulls[n - nro], fd, abs);
		}
		close(fd);
	}
}

/* An O_PATH descriptor of the host path TARGET without following a symlink: resolved below
 * ROOTFD when it lies in the jail root (which the jail owns), as the mount step resolved it. */
static int open_target(int rootfd, const char *root, const char *target) {
	const char *rel = jy_below(root, target);
	if (rel) return jy_open_in_root(rootfd, rel);
	struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
	return (int)syscall(SYS_openat2, AT_FDCWD, target, &how, sizeof how);
}

/* Clears nosuid on the mounts of TARGETS in this (the jail's own) mount namespace only. */
static void honour_suid(const char *root, const char **targets, int n) {
	if (!n) return;
	int rootfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) die_errno("cannot open the jail root");
	for (int k = 0; k < n; k++) {
		int fd = open_target(rootfd, root, targets[k]);
		if (fd < 0) die_errno("cannot open the setuid mount %s", targets[k]);
		struct mount_attr attr = {.attr_clr = MOUNT_ATTR_NOSUID};
		if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) die_errno("cannot honour setuid on %s", targets[k]);
		close(fd);
	}
	close(rootfd);
}

/* Turns mountinfo's octal escapes (\040 for a space, ...) back into bytes, in place. */
static void unescape_mountinfo(char *s) {
	char *out = s;
	for (char *in = s; *in; in++) {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' && in[3] >= '0' && in[3] <= '7') {
			*out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
			in += 3;
		} else {
			*out++ = *in;
		}
	}
	*out = '\0';
}

/* Every mount below ROOT whose type is one of TYPES (the kernel's own state: sysfs, cgroup
 * hierarchies, ...) read-only, nosuid, nodev, noexec in this namespace. Read from the jail's
 * fresh ./proc (this mount namespace's table). ROOT "" after pivot_root: every mount, "/" is
 * the jail's root and the current directory. */
static void readonly_kernel_fs(const char *root, const char **types, int ntypes) {
	if (!ntypes) return;
	FILE *f = fopen("proc/self/mountinfo", "re");
	if (!f) die_errno("cannot read the mount table");
	size_t len = strlen(root);
	while (len > 1 && root[len - 1] == '/') len--;
	char *line = NULL, *found[MAX_LIST];
	size_t cap = 0;
	int nfound = 0;
	while (getline(&line, &cap, f) > 0) {
		char *sep = strstr(line, " - "), *field = line, *target = NULL;
		if (!sep) continue;
		for (int k = 0; k < 5 && field; k++) {
			char *next = strchr(field, ' ');
			if (k == 4) target = field;
			if (next) *next = '\0';
			field = next ? next + 1 : NULL;
		}
		char *type = sep + 3, *end = strchr(type, ' ');
		if (!target || !end) continue;
		*end = '\0';
		int match = 0;
		for (int k = 0; k < ntypes; k++) match |= !strcmp(type, types[k]);
		if (!match) continue;
		unescape_mountinfo(target);
		if (strncmp(target, root, len) != 0 || (target[len] != '/' && target[len] != '\0')) continue;
		if (nfound == MAX_LIST) die("too many kernel file systems below %s", root);
		if (!(found[nfound++] = strdup(target))) die_errno("strdup");
	}
	free(line);
	fclose(f);
	int rootfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) die_errno("cannot open the jail root");
	for (int k = 0; k < nfound; k++) {
		int fd = open_target(rootfd, root, found[k]);
		if (fd < 0) die_errno("cannot open %s to make it read-only", found[k]);
		struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC};
		if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) die_errno("cannot make %s read-only", found[k]);
		close(fd);
		free(found[k]);
	}
	close(rootfd);
}

/* A detached read-only copy of the host directory SRC, for attach_bind after pivot_root. */
static int detach_bind(const char *src, int exec) {
	if (src[0] != '/') die("bind source %s is not absolute", src);
	int fd = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
	if (fd < 0) die_errno("cannot open %s to bind it", src);
	struct stat st;
	if (fstat(fd, &st) != 0) die_errno("cannot look at the bind source %s", src);
	if (!S_ISDIR(st.st_mode)) die("bind source %s is not a directory", src);
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (exec ? 0 : MOUNT_ATTR_NOEXEC)};
	if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) die_errno("cannot make the bind of %s read-only", src);
	return fd;
}

/* Attaches TREE at TARGET, an absolute path inside the jail (after pivot_root: nothing but
 * the jail is reachable). Missing directories are made (0755); every part must be a real
 * directory, never a symlink: a jail that put one there gets an error, not a bind elsewhere. */
static void attach_bind(int tree, const char *target) {
	char path[4096];
	if (target[0] != '/' || strlen(target) >= sizeof path) die("bind target %s is not an absolute path", target);
	strcpy(path, target);
	int dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) die_errno("cannot open /");
	for (char *part = strtok(path + 1, "/"); part; part = strtok(NULL, "/")) {
		if (!strcmp(part, ".") || !strcmp(part, "..")) die("bind target %s has a . or .. part", target);
		struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH};
		int next = (int)syscall(SYS_openat2, dir, part, &how, sizeof how);
		if (next < 0 && errno == ENOENT) {
			int parent = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (parent < 0 || (mkdirat(parent, part, 0755) != 0 && errno != EEXIST)) die_errno("cannot make %s in the jail", target);
			close(parent);
			next = (int)syscall(SYS_openat2, dir, part, &how, sizeof how);
		}
		if (next < 0) die_errno("bind target %s in the jail is not a directory (a symlink?)", target);
		close(dir);
		dir = next;
	}
	if (move_mount(tree, "", dir, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0)
		die_errno("cannot bind at %s in the jail", target);
	close(dir);
	close(tree);
}

/* Blanks the argument area: /proc/PID/cmdline reads "jy-stage" (argv[0]'s base name kept, so
 * a stage is still known by name). Call after every argument was copied out. */
static void hide_arguments(int argc, char **argv) {
	char *start = argv[0], *end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
	memset(start, 0, (size_t)(end - start));
	strcpy(start, "jy-stage");
	/* A last byte that is not NUL makes the kernel read cmdline as a process title: up to
	 * the first NUL only ("jy-stage"), not the whole blanked area. */
	if (end - start > (long)sizeof "jy-stage") end[-1] = ' ';
}

/* Pid 1's stdin, opened after pivot_root: the jail's own /dev/null when it is the null
 * device (not a symlink) on a read-only mount (the stage's /dev and mount.devfs bind the
 * host's node read-only), opened again from an O_PATH look first (no other device is
 * opened); otherwise an empty pipe. Never the host's /dev/null opened before pivot_root:
 * that crossed as /proc/1/fd/0 (tini's and the holder's fd 0), a writable way to the host's
 * node for the jailed root (chmod, chown, utimes) on a mount outside the jail. */
static int jail_stdin(void) {
	int path = open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (path >= 0) {
		struct stat st;
		struct statvfs sv;
		int fd = -1;
		if (fstat(path, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3) && fstatvfs(path, &sv) == 0 &&
		    (sv.f_flag & ST_RDONLY)) {
			char self[64];
			snprintf(self, sizeof self, "/proc/self/fd/%d", path);
			fd = open(self, O_RDWR | O_NOCTTY | O_CLOEXEC);
		}
		close(path);
		if (fd >= 0) return fd;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) die_errno("pipe");
	close(p[1]);
	return p[0];
}

/* The index of the argument P (a pointer into ARGV). */
static int index_of(char **argv, int argc, const char *p) {
	for (int k = 0; k < argc; k++)
		if (argv[k] == p) return k;
	die("internal: argument not found");
}

int main(int argc, char **argv) {
	const char *nsfiles[MAX_NS], *cgroups[MAX_NS], *proc_ro[MAX_LIST], *proc_mask[MAX_LIST], *suid[MAX_LIST], *rofs[MAX_LIST];
	const char *bind_src[MAX_NS], *bind_dst[MAX_NS];
	int bind_exec[MAX_NS];
	const char *allow = "", *holder_bin = NULL, *user_join = NULL;
	int nstypes[MAX_NS];
	unsigned long ubase = 0, ucount = 0, ptys = 0;
	int nns = 0, ncg = 0, nro = 0, nmask = 0, nsuid = 0, nrofs = 0, nbind = 0, unshare_net = 0, i = 1, bad = 0;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--cgroup") && i + 1 < argc && ncg < MAX_NS) {
			cgroups[ncg++] = argv[++i];
		} else if (!strcmp(argv[i], "--join") && i + 2 < argc && nns < MAX_NS && ns_type(argv[i + 1])) {
			nstypes[nns] = ns_type(argv[i + 1]);
			nsfiles[nns++] = argv[i + 2];
			i += 2;
		} else if (!strcmp(argv[i], "--unshare-net")) {
			unshare_net = 1;
		} else if (!strcmp(argv[i], "--proc-ro") && i + 1 < argc && nro < MAX_LIST) {
			bad |= !proc_path_ok(proc_ro[nro++] = argv[++i]);
		} else if (!strcmp(argv[i], "--proc-mask") && i + 1 < argc && nmask < MAX_LIST) {
			bad |= !proc_path_ok(proc_mask[nmask++] = argv[++i]);
		} else if (!strcmp(argv[i], "--ro-fstype") && i + 1 < argc && nrofs < MAX_LIST) {
			rofs[nrofs++] = argv[++i];
		} else if (!strcmp(argv[i], "--suid") && i + 1 < argc && nsuid < MAX_LIST) {
			suid[nsuid++] = argv[++i];
		} else if ((!strcmp(argv[i], "--bind-ro") || !strcmp(argv[i], "--bind-rx")) && i + 2 < argc && nbind < MAX_NS) {
			bind_exec[nbind] = !strcmp(argv[i], "--bind-rx");
			bind_src[nbind] = argv[i + 1];
			bind_dst[nbind++] = argv[i + 2];
			i += 2;
		} else if (!strcmp(argv[i], "--userns") && i + 1 < argc) {
			bad |= !jy_parse_range(argv[++i], &ubase, &ucount);
		} else if (!strcmp(argv[i], "--join-user") && i + 2 < argc) {
			char *end;
			user_join = argv[i + 1];
			errno = 0;
			ubase = strtoul(argv[i + 2], &end, 10);
			bad |= errno != 0 || end == argv[i + 2] || *end != 0 || ubase == 0;
			i += 2;
		} else if (!strcmp(argv[i], "--seccomp") && i + 1 < argc) {
			allow = argv[++i];
		} else if (!strcmp(argv[i], "--holder") && i + 1 < argc) {
			holder_bin = argv[++i];
		} else if (!strcmp(argv[i], "--ptys") && i + 1 < argc) {
			char *end;
			errno = 0;
			ptys = strtoul(argv[++i], &end, 10);
			bad |= errno != 0 || end == argv[i] || *end != 0 || ptys == 0 || ptys > (1UL << 20);
		} else {
			break;
		}
	}
	unsigned long long keep = 0;
	/* one user namespace at most: made (--userns) or joined (--join-user) */
	bad |= user_join != NULL && ucount != 0;
	if (bad || argc - i < 7 || strcmp(argv[i + 5], "--") != 0 || !parse_caps(argv[i + 3], &keep)) {
		fprintf(stderr, "usage: jy-stage [--cgroup DIR]... [--join ipc|uts|net|pid|mnt FILE]... [--unshare-net] [--proc-ro /proc/P]... [--proc-mask /proc/P]... [--ro-fstype TYPE]... [--suid TARGET]... [--bind-ro SRC TARGET]... [--bind-rx SRC TARGET]... [--seccomp ALLOW] [--holder PROGRAM] [--ptys N] [--userns BASE,COUNT | --join-user FILE BASE] ROOT HOSTNAME TINI KEEP makedev|keepdev -- HOLDER...\n");
		return 2;
	}
	/* every argument is copied out of the argument area, which is then blanked */
	char **all = calloc((size_t)argc + 1, sizeof *all);
	if (!all) die_errno("calloc");
	for (int k = 0; k < argc; k++)
		if (!(all[k] = strdup(argv[k]))) die_errno("strdup");
	for (int k = 0; k < ncg; k++) cgroups[k] = all[index_of(argv, argc, cgroups[k])];
	for (int k = 0; k < nns; k++) nsfiles[k] = all[index_of(argv, argc, nsfiles[k])];
	for (int k = 0; k < nro; k++) proc_ro[k] = all[index_of(argv, argc, proc_ro[k])];
	for (int k = 0; k < nmask; k++) proc_mask[k] = all[index_of(argv, argc, proc_mask[k])];
	for (int k = 0; k < nsuid; k++) suid[k] = all[index_of(argv, argc, suid[k])];
	for (int k = 0; k < nrofs; k++) rofs[k] = all[index_of(argv, argc, rofs[k])];
	for (int k = 0; k < nbind; k++) {
		bind_src[k] = all[index_of(argv, argc, bind_src[k])];
		bind_dst[k] = all[index_of(argv, argc, bind_dst[k])];
	}
	if (*allow) allow = all[index_of(argv, argc, allow)];
	if (holder_bin) holder_bin = all[index_of(argv, argc, holder_bin)];
	if (user_join) user_join = all[index_of(argv, argc, user_join)];
	const char *root = all[i], *hostname = all[i + 1], *tini = all[i + 2], *dev = all[i + 4];
	char **holder = &all[i + 6];
	hide_arguments(argc, argv);
	/* not dumpable until the exec of tini (an exec makes a program dumpable again): a nested
	 * jail's stage later joins its parent jail's pid namespace, where the parent's root (the
	 * same uid in root mode, without CAP_SYS_PTRACE) could otherwise ptrace it, read its
	 * /proc/PID/mem or take its descriptors with pidfd_getfd while it still holds host files
	 * and capabilities (runc's init is not dumpable either) */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) die_errno("PR_SET_DUMPABLE");

	/* made before the pid namespace (its helper child must not become the jail's pid 1) */
	int userns = -1;
	if (ucount && (userns = jy_userns_fd(ubase, ucount)) < 0) die_errno("cannot make the user namespace %lu,%lu", ubase, ucount);
	/* opened before any join (the path is the host's); entered where a made one would be */
	if (user_join) {
		if ((userns = open(user_join, O_RDONLY | O_CLOEXEC)) < 0) die_errno("cannot open the user namespace %s", user_join);
		if (ioctl(userns, NS_GET_NSTYPE) != CLONE_NEWUSER) die("%s is not a user namespace", user_join);
	}

	for (int n = 0; n < ncg; n++) join_cgroup(cgroups[n]);

	/* Join: open every file first (their paths are resolved where we are now). */
	int fds[MAX_NS];
	for (int n = 0; n < nns; n++) {
		fds[n] = open(nsfiles[n], O_RDONLY | O_CLOEXEC);
		if (fds[n] < 0) die_errno("cannot open namespace %s", nsfiles[n]);
	}
	/* the mount namespace last: after it, paths resolve in the joined tree; a pid namespace
	 * only once the jail's tree is pivoted (below) */
	int pidns = -1;
	for (int pass = 0; pass < 2; pass++) {
		for (int n = 0; n < nns; n++) {
			if (nstypes[n] == CLONE_NEWPID) {
				pidns = fds[n];
				continue;
			}
			if ((nstypes[n] == CLONE_NEWNS) != (pass == 1)) continue;
			if (setns(fds[n], nstypes[n]) != 0) die_errno("cannot join namespace %s", nsfiles[n]);
			close(fds[n]);
		}
	}

	/* a cgroup namespace too, rooted at the jail's groups (joined above): /proc/self/cgroup
	 * inside reads "/", not the host's layout (runc and crun do the same on cgroup v2) */
	if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP | (pidns < 0 ? CLONE_NEWPID : 0) | (unshare_net ? CLONE_NEWNET : 0)) != 0) die_errno("unshare");
	do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	if (unshare_net) loopback_up();
	if (userns >= 0 && jy_write_all("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0\n") != 0) die_errno("cannot open the ports below 1024 to the jail's root");

	/*
	 * The jail's tree, made in this process, before any process of the jail's pid namespace
	 * (or of a parent jail's) exists: every host file the jail gets is taken first, as a
	 * detached tree, and the root is pivoted BEFORE anything is made or mounted in it. A
	 * nested jail's root is its running parent's folder, which the parent may change at any
	 * time: a symlink swapped in between a look and a mkdir sent host root's mkdir to a host
	 * folder, and a parent reading /proc/PID/mountinfo of a stage in its pid namespace saw the
	 * host's mount table (red-team run of 2026-12-04). After the pivot nothing of the host is
	 * reachable by name; in the jail every place is opened once, with no link followed.
	 */
	if (chdir(root) != 0) die_errno("no jail root %s", root);
	int makedev = !strcmp(dev, "makedev");
	int nodes[NDEV_NODES], nulls[MAX_LIST];
	char node[64];
	for (size_t k = 0; makedev && k < NDEV_NODES; k++) {
		snprintf(node, sizeof node, "/dev/%s", dev_nodes[k]);
		nodes[k] = detach_file(node, MOUNT_ATTR_NOEXEC);
	}
	for (int k = 0; k < nmask; k++) nulls[k] = detach_file("/dev/null", MOUNT_ATTR_NOEXEC);
	int tini_tree = detach_file(tini, MOUNT_ATTR_NODEV);
	int holder_tree = holder_bin ? detach_file(holder_bin, MOUNT_ATTR_NODEV) : -1;
	int trees[MAX_NS];
	for (int n = 0; n < nbind; n++) trees[n] = detach_bind(bind_src[n], bind_exec[n]);
	/* new and old root the same directory: the old root ends up stacked on "/" and is
	 * detached right away; nothing of the host stays reachable */
	if (syscall(SYS_pivot_root, ".", ".") != 0) die_errno("pivot_root into %s failed", root);
	if (umount2(".", MNT_DETACH) != 0) die_errno("cannot detach the old root");
	if (chdir("/") != 0) die_errno("chdir /");
	int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) die_errno("cannot open the jail root");
	if (makedev) make_dev(rootfd, ubase, nodes, ptys);
	honour_suid(root, suid, nsuid);
	/* the jail owns its root: .jailyard must be a real directory and tini a regular file
	 * in it, never a symlink that would send the bind (and the exec below) elsewhere */
	attach_at(tini_tree, open_in_jail(rootfd, ".jailyard/tini", S_IFREG), ".jailyard/tini");
	if (holder_bin) attach_at(holder_tree, open_in_jail(rootfd, ".jailyard/hold", S_IFREG), ".jailyard/hold");
	for (int n = 0; n < nbind; n++) attach_bind(trees[n], bind_dst[n]);
	if (sethostname(hostname, strlen(hostname)) != 0) die_errno("cannot set hostname %s", hostname);

	/* a nested jail: its pid namespace nested in its parent's, made by a process there (a
	 * pid namespace is made in the active one), which sees only the jail's mounts by now */
	if (pidns >= 0) {
		if (setns(pidns, CLONE_NEWPID) != 0) die_errno("cannot join the parent's pid namespace");
		close(pidns);
		fork_or_continue();
		if (unshare(CLONE_NEWPID) != 0) die_errno("unshare");
	}
	fork_or_continue();

	/* pid 1 of the jail from here on: its own /proc */
	int proc = mount_proc(rootfd);
	restrict_proc(proc, proc_ro, nro, proc_mask, nmask, nulls);
	close(proc);
	close(rootfd);
	int devnull = jail_stdin();
	/* after the old root is gone: the table then holds the jail's own mounts only, not the
	 * host's and every other running jail's (read before, it grew with the jails running) */
	readonly_kernel_fs("", rofs, nrofs);
	/* a session keyring of the jail's own, not the one of whoever started jailyard (the
	 * filter then denies every keyctl: root's user keyring stays out of reach too) */
	/* from here on the jail's root is its range's first uid: nobody on the host */
	if (userns >= 0 && jy_become_root_in(userns) != 0) die_errno("cannot enter the jail's user namespace");
	if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS) die_errno("cannot join a new session keyring");
	install_seccomp(allow);
	drop_capabilities(keep);

	printf("ready\n");
	fflush(stdout);
	if (dup2(devnull, 0) < 0 || dup2(2, 1) < 0) die_errno("dup2");
	/* nothing of the host crosses but stdout and stderr (the console log); stdin is the
	 * jail's own read-only /dev/null or an empty pipe (jail_stdin) */
	if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) die_errno("close_range");
	int n = 0;
	while (holder[n]) n++;
	char **args = calloc((size_t)n + 3, sizeof *args);
	if (!args) die_errno("calloc");
	int a = 0;
	args[a++] = "/.jailyard/tini";
	args[a++] = "--";
	for (int k = 0; k < n; k++) args[a++] = holder[k];
	args[a] = NULL;
	execv(args[0], args);
	die_errno("cannot run /.jailyard/tini");
}
