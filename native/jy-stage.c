/*
 * jy-stage: makes a Linux jail's namespaces and becomes its pid 1 up to the exec of tini,
 * in one process chain (it replaces nsenter + unshare + a shell stage + a mount(8) per
 * mount: each of those was a process on every start).
 *
 *   jy-stage [--cgroup DIR]... [--join TYPE FILE]... [--unshare-net] ROOT HOSTNAME TINI KEEP DEV -- HOLDER...
 *
 *   --cgroup DIR   join the cgroup DIR first (every process of the jail descends from this
 *                  one, so all of them are charged to it from their first instruction)
 *   --join TYPE FILE  join the namespace FILE (/run/netns/NAME, /proc/PID/ns/pid, ...) of
 *                  TYPE (ipc, uts, net, pid, mnt) first; all are opened before any is joined,
 *                  the mount namespace last
 *   --unshare-net  a new network namespace too, with only the loopback (up): a jail without
 *                  addresses, like bwrap --unshare-net or a FreeBSD jail with no ip4.addr
 *   ROOT           the jail root (a private mount point with the plan's mounts below it)
 *   TINI           the host's static tini, bound read-only at ROOT/.jailyard/tini (the
 *                  driver made that directory and mount point file; both are checked to be
 *                  a real directory and a regular file, never followed symlinks)
 *   KEEP           capability numbers the jail keeps (comma-separated)
 *   DEV            "makedev": mount a minimal /dev (the plan had none); "keepdev": leave it
 *
 * The process chain: this process joins the given namespaces and, when one of them was a
 * pid namespace, forks (setns of a pid namespace only applies to children); then it
 * unshares mount, pid, uts and ipc, makes every mount private and forks the jail's pid 1.
 * Each parent waits for its child and exits with its status (like unshare --fork).
 *
 * Pid 1 mounts /proc (and /dev), binds tini, sets the hostname, pivot_roots, detaches the
 * old root, drops every capability not in KEEP, prints "ready" on stdout (the driver waits
 * for that line) and execs tini, the first program of the jail. Nothing of the jail's own
 * tree runs before the drop. Errors go to stderr (the jail's console log), exit status 111.
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include "jy-common.h"

#define MAX_NS 8

/* Waits for the child and leaves with its status, as unshare --fork and nsenter do. */
static void wait_and_exit(pid_t child) {
	int status;
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR) die("waitpid");
	if (WIFEXITED(status)) exit(WEXITSTATUS(status));
	exit(128 + WTERMSIG(status));
}

static void fork_or_continue(void) {
	pid_t pid = fork();
	if (pid < 0) die("fork");
	if (pid > 0) wait_and_exit(pid);
}

static void do_mount(const char *src, const char *target, const char *type, unsigned long flags, const char *data) {
	errno = 0;
	if (mount(src, target, type, flags, data) != 0) die("cannot mount %s on %s", type ? type : src, target);
}

static void bind_ro(const char *src, const char *target) {
	do_mount(src, target, NULL, MS_BIND, NULL);
	do_mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL);
}

/* A minimal /dev at ./dev: tmpfs, host device nodes bound in, devpts, shm, fd links. */
static void make_dev(void) {
	static const char *nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
	static const char *links[][2] = {{"pts/ptmx", "dev/ptmx"}, {"/proc/self/fd", "dev/fd"}, {"/proc/self/fd/0", "dev/stdin"}, {"/proc/self/fd/1", "dev/stdout"}, {"/proc/self/fd/2", "dev/stderr"}};
	struct stat st;
	errno = 0;
	if (lstat("dev", &st) == 0) {
		if (!S_ISDIR(st.st_mode)) die("the jail's dev is not a directory (a symlink?)");
	} else if (mkdir("dev", 0755) != 0) {
		die("cannot make dev");
	}
	do_mount("jailyard-dev", "dev", "tmpfs", MS_NOSUID, "mode=755,size=64k");
	char host[64], here[64];
	for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
		snprintf(host, sizeof host, "/dev/%s", nodes[i]);
		snprintf(here, sizeof here, "dev/%s", nodes[i]);
		int fd = open(here, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0) die("cannot make %s", here);
		close(fd);
		do_mount(host, here, NULL, MS_BIND, NULL);
	}
	if (mkdir("dev/pts", 0755) != 0 || mkdir("dev/shm", 0755) != 0) die("cannot make dev/pts, dev/shm");
	do_mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620");
	do_mount("shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	for (size_t i = 0; i < sizeof links / sizeof *links; i++)
		if (symlink(links[i][0], links[i][1]) != 0) die("cannot link %s", links[i][1]);
}

/* ip link set lo up, in the network namespace this process is in. */
static void loopback_up(void) {
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	errno = 0;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0) die("cannot read the loopback's flags");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) die("cannot bring the loopback up");
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

int main(int argc, char **argv) {
	const char *nsfiles[MAX_NS], *cgroups[MAX_NS];
	int nstypes[MAX_NS];
	int nns = 0, ncg = 0, unshare_net = 0, i = 1;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--cgroup") && i + 1 < argc && ncg < MAX_NS) {
			cgroups[ncg++] = argv[++i];
		} else if (!strcmp(argv[i], "--join") && i + 2 < argc && nns < MAX_NS && ns_type(argv[i + 1])) {
			nstypes[nns] = ns_type(argv[i + 1]);
			nsfiles[nns++] = argv[i + 2];
			i += 2;
		} else if (!strcmp(argv[i], "--unshare-net")) {
			unshare_net = 1;
		} else {
			break;
		}
	}
	unsigned long long keep = 0;
	if (argc - i < 7 || strcmp(argv[i + 5], "--") != 0 || !parse_caps(argv[i + 3], &keep)) {
		fprintf(stderr, "usage: jy-stage [--cgroup DIR]... [--join ipc|uts|net|pid|mnt FILE]... [--unshare-net] ROOT HOSTNAME TINI KEEP makedev|keepdev -- HOLDER...\n");
		return 2;
	}
	const char *root = argv[i], *hostname = argv[i + 1], *tini = argv[i + 2], *dev = argv[i + 4];
	char **holder = &argv[i + 6];

	for (int n = 0; n < ncg; n++) join_cgroup(cgroups[n]);

	/* Join: open every file first (their paths are resolved where we are now). */
	int fds[MAX_NS], joined_pid = 0;
	for (int n = 0; n < nns; n++) {
		errno = 0;
		fds[n] = open(nsfiles[n], O_RDONLY | O_CLOEXEC);
		if (fds[n] < 0) die("cannot open namespace %s", nsfiles[n]);
	}
	/* the mount namespace last: after it, paths resolve in the joined tree */
	for (int pass = 0; pass < 2; pass++) {
		for (int n = 0; n < nns; n++) {
			if ((nstypes[n] == CLONE_NEWNS) != (pass == 1)) continue;
			errno = 0;
			if (setns(fds[n], nstypes[n]) != 0) die("cannot join namespace %s", nsfiles[n]);
			if (nstypes[n] == CLONE_NEWPID) joined_pid = 1;
			close(fds[n]);
		}
	}
	if (joined_pid) fork_or_continue();

	errno = 0;
	if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | (unshare_net ? CLONE_NEWNET : 0)) != 0) die("unshare");
	do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	if (unshare_net) loopback_up();
	fork_or_continue();

	/* pid 1 of the jail from here on */
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	errno = 0;
	if (devnull < 0 || chdir(root) != 0) die("no jail root %s", root);
	struct stat st;
	errno = 0;
	if (lstat("proc", &st) != 0 || !S_ISDIR(st.st_mode)) die("%s/proc is not a directory", root);
	do_mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (!strcmp(dev, "makedev")) make_dev();
	/* the jail owns its root: .jailyard must be a real directory and tini a regular file
	 * in it, never a symlink that would send the bind (and the exec below) elsewhere */
	errno = 0;
	if (lstat(".jailyard", &st) != 0 || !S_ISDIR(st.st_mode)) die("%s/.jailyard is not a directory", root);
	if (lstat(".jailyard/tini", &st) != 0 || !S_ISREG(st.st_mode)) die("%s/.jailyard/tini is not a regular file", root);
	bind_ro(tini, ".jailyard/tini");
	errno = 0;
	if (sethostname(hostname, strlen(hostname)) != 0) die("cannot set hostname %s", hostname);
	/* new and old root the same directory: the old root ends up stacked on "/" and is
	 * detached right away; nothing of the host stays reachable */
	errno = 0;
	if (syscall(SYS_pivot_root, ".", ".") != 0) die("pivot_root into %s failed", root);
	if (umount2(".", MNT_DETACH) != 0) die("cannot detach the old root");
	if (chdir("/") != 0) die("chdir /");
	drop_capabilities(keep);

	printf("ready\n");
	fflush(stdout);
	if (dup2(devnull, 0) < 0 || dup2(2, 1) < 0) die("dup2");
	int n = 0;
	while (holder[n]) n++;
	char **args = calloc((size_t)n + 3, sizeof *args);
	if (!args) die("calloc");
	int a = 0;
	args[a++] = "/.jailyard/tini";
	args[a++] = "--";
	for (int k = 0; k < n; k++) args[a++] = holder[k];
	args[a] = NULL;
	execv(args[0], args);
	die("cannot run /.jailyard/tini");
}
