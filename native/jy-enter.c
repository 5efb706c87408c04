/*
 * jy-enter: runs a program inside a running jail, like jexec(8), in one static process.
 *
 *   jy-enter [--cgroup DIR]... --target PID [--expect-pidns INODE] --keep-caps KEEP
 *            [--seccomp ALLOW] [--pty] [--cwd DIR] [--user UID:GID[:GID,...]] -- PROGRAM [ARGS...]
 *
 * It closes every descriptor above 2 it inherited, leaves its caller's session, joins the
 * cgroups DIR (writing "0" to DIR/cgroup.procs), then the ipc, uts, net, cgroup, pid and mount
 * namespaces of PID (the jail's pid 1), takes PID's root and working directory, and forks (a
 * pid namespace applies to children only). When PID is in a user namespace of its own (a
 * user-namespace jail), the child joins it too, last, as its root. Before that fork it blanks its argument area: the
 * child is in the jail's pid namespace, and its /proc/PID/cmdline must name no host path,
 * cgroup or pid. The child starts a session of its own (it never has the caller's terminal
 * as controlling terminal, so TIOCSTI cannot type into it), closes every descriptor above 2,
 * installs the jail's seccomp filter (ALLOW: native/jy-seccomp.h), drops
 * every capability not in KEEP (comma-separated numbers) from its bounding set, enters DIR
 * (--cwd, inside the jail), becomes UID with group GID and the supplementary groups listed
 * (--user: jexec -U; every capability is gone with the uid change) and executes PROGRAM,
 * looked up in PATH inside the jail. The uid change is made here, not by a program of the
 * jail's (its setpriv could be the jailed root's, or missing in a minimal jail). Nothing of the jail's tree runs before that
 * drop: the jail owns its tree, so any program there (or a library it preloads) may be the
 * jailed root's. With --expect-pidns, PID's pid namespace must be that one (the inode of the
 * link /proc/PID/ns/pid, checked on the descriptor that is then joined): a jail whose pid 1
 * died and whose pid number was reused is never entered.
 *
 * The jail never gets a descriptor of the caller's terminal:
 * - --pty: the child gets a new pty of the jail's own devpts (the host's when the jail has
 *   none) as its controlling terminal and as fds 0-2; this process copies between the
 *   caller's fds and the pty's master, with the caller's terminal in raw mode (restored at
 *   exit) and its window size passed on (at start and on SIGWINCH), like `runc exec -t`.
 *   End of the caller's input becomes the pty's end-of-file character.
 * - otherwise every one of fds 0-2 that is a terminal becomes a pipe this process copies
 *   to or from, and so does every one that is not a pipe or socket (a host file, a device):
 *   through the descriptor the jail's root could chmod (setuid), chown or reopen the host's
 *   file, and write to it after this process is gone. /dev/null as input is an empty pipe,
 *   and /dev/null as output is the jail's own /dev/null. Pipes and sockets cross as they
 *   are (a daemon the program leaves running may write to them after this process is gone).
 *
 * This process waits and exits with the child's status (128+signal when it was killed);
 * SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to it are passed on to the
 * child's process group. Errors: exit 125, message on stderr.
 */
#define _GNU_SOURCE
#define DIE_PREFIX "jy-enter"
#define DIE_STATUS 125
#include <ctype.h>
#include <poll.h>
#include <sys/resource.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include "jy-common.h"
#include "jy-seccomp.h"

#define MAX_CG 8
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#ifndef DEVPTS_SUPER_MAGIC
#define DEVPTS_SUPER_MAGIC 0x1cd1
#endif

static volatile pid_t child; /* 0 once reaped: a signal must never reach a reused pid */
static int reaped, reaped_status;
static int wake_w = -1; /* self-pipe: SIGCHLD and SIGWINCH wake the copy loop */
static volatile sig_atomic_t winch;
static struct termios saved_tty;
static int tty_raw;

static void forward(int sig) {
	int e = errno;
	if (child > 0 && kill(-child, sig) != 0) kill(child, sig);
	errno = e;
}

static void wake(int sig) {
	int e = errno;
	if (sig == SIGWINCH) winch = 1;
	if (wake_w >= 0 && write(wake_w, "w", 1) < 0) { /* full: a wake-up is pending anyway */ }
	errno = e;
}

static void restore_tty(void) {
	if (tty_raw) tcsetattr(0, TCSADRAIN, &saved_tty);
	tty_raw = 0;
}

/* close_range(3, ~0U, 0); by hand on a kernel without it. */
static void close_above_stdio(void) {
	if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
	long max = sysconf(_SC_OPEN_MAX);
	for (long fd = 3; fd < (max > 0 && max < 1 << 20 ? max : 1 << 20); fd++) close((int)fd);
}

/* /proc/PID/ns/user when it is not ours (a user-namespace jail), else -1. */
static int target_userns(long pid) {
	char path[64];
	struct stat mine, theirs;
	snprintf(path, sizeof path, "/proc/%ld/ns/user", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &theirs) != 0 || stat("/proc/self/ns/user", &mine) != 0) die_errno("cannot open %s", path);
	if (theirs.st_ino == mine.st_ino && theirs.st_dev == mine.st_dev) {
		close(fd);
		return -1;
	}
	return fd;
}

static int is_devnull(const struct stat *st) {
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(1, 3);
}

/* The jail's own /dev/null for writing (resolved in the jail's root, never a symlink at the
 * last component, checked to be the null device), or -1. */
static int jail_devnull(void) {
	int fd = open("/dev/null", O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) != 0 || !is_devnull(&st))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/*
 * A pty master from the devpts that /dev/pts/ptmx at the current root belongs to (opened
 * without following a symlink at the last component, checked to be devpts's ptmx), with its
 * slave unlocked; -1 when there is none.
 */
static int open_ptmx(const char *path) {
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) return -1;
	struct statfs sfs;
	struct stat st;
	int unlock = 0, n;
	if (fstatfs(fd, &sfs) != 0 || sfs.f_type != DEVPTS_SUPER_MAGIC || fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode) ||
	    st.st_rdev != makedev(5, 2) || ioctl(fd, TIOCGPTN, &n) != 0 || ioctl(fd, TIOCSPTLCK, &unlock) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A one-way copy from src to dst with a pending buffer (dst may be non-blocking). */
struct pump {
	int src, dst;
	int to_child;     /* dst is ours (pipe or pty master): at src's end, close it or send EOF */
	int eof_char;     /* >= 0: the pty's VEOF to send at src's end instead of closing dst */
	int done;
	char buf[16384];
	size_t off, len;
};

static struct pump *all_pumps;
static int n_pumps;

/* Ends P; a descriptor it closes ends every other pump using it (the pty master is both). */
static void pump_finish(struct pump *p) {
	if (p->done) return;
	p->done = 1;
	int closed = -1;
	if (p->to_child && p->eof_char < 0) closed = p->dst;
	if (!p->to_child) closed = p->src;
	if (closed < 0) return;
	close(closed);
	for (int k = 0; k < n_pumps; k++)
		if (all_pumps[k].src == closed || all_pumps[k].dst == closed) all_pumps[k].done = 1;
}

/* Reads from src into the buffer; 0 at its end (or an error), 1 otherwise. */
static int pump_read(struct pump *p) {
	ssize_t n = read(p->src, p->buf, sizeof p->buf);
	if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
	if (n <= 0) return 0;
	p->off = 0;
	p->len = (size_t)n;
	return 1;
}

/* Writes what is pending; 0 when dst is gone. */
static int pump_write(struct pump *p) {
	while (p->len) {
		ssize_t n = write(p->dst, p->buf + p->off, p->len);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && errno == EAGAIN) return 1;
		if (n <= 0) return 0;
		p->off += (size_t)n;
		p->len -= (size_t)n;
	}
	return 1;
}

/*
 * Copies between the caller and the child until the child has exited and its output is
 * drained: all output sources at their end, or nothing more within 100 ms (a background
 * process of the jail may hold them open).
 */
static void copy_loop(struct pump *pumps, int np, int wake_r, int master) {
	int exited = 0;
	all_pumps = pumps;
	n_pumps = np;
	for (;;) {
		struct pollfd fds[8];
		struct pump *who[8];
		int n = 0, open_outputs = 0;
		fds[n] = (struct pollfd){ .fd = wake_r, .events = POLLIN };
		who[n++] = NULL;
		for (int k = 0; k < np; k++) {
			struct pump *p = &pumps[k];
			if (p->done) continue;
			if (!p->to_child) open_outputs++;
			if (p->to_child && exited) continue;
			fds[n] = p->len ? (struct pollfd){ .fd = p->dst, .events = POLLOUT }
			                : (struct pollfd){ .fd = p->src, .events = POLLIN };
			who[n++] = p;
		}
		if (exited && !open_outputs) return;
		int r = poll(fds, (nfds_t)n, exited ? 100 : -1);
		if (r < 0 && errno != EINTR) die_errno("poll");
		if (r == 0) return;
		if (r < 0) continue;
		if (fds[0].revents) {
			char drain[64];
			while (read(wake_r, drain, sizeof drain) > 0) {}
			if (winch && master >= 0) {
				struct winsize ws;
				winch = 0;
				if (ioctl(0, TIOCGWINSZ, &ws) == 0 || ioctl(1, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
			}
		}
		for (int k = 1; k < n; k++) {
			struct pump *p = who[k];
			/* done: a pump before it in this round closed the fd they share */
			if (!fds[k].revents || p->done) continue;
			if (p->len) {
				if (!pump_write(p)) pump_finish(p);
				continue;
			}
			if (!pump_read(p)) {
				if (p->eof_char >= 0) {
					char c = (char)p->eof_char;
					if (write(p->dst, &c, 1) < 0) { /* the child is gone: nothing to tell */ }
				}
				pump_finish(p);
			} else if (!pump_write(p)) {
				pump_finish(p);
			}
		}
		if (!exited) {
			int status;
			if (waitpid(child, &status, WNOHANG) == child) {
				exited = reaped = 1;
				reaped_status = status;
				child = 0;
			}
		}
	}
}

/* The whole argument area as the kernel laid it out: blanked before the fork. */
static char *area, *area_end;
/* run by bin/jailyard.js in the CLI's place (fast_main) */
static int fast;

static int enter_main(int argc, char **argv) {
	/* nothing the caller holds open reaches the jail (runc CVE-2024-21626) */
	close_above_stdio();
	/* not dumpable until the exec resets it: the child is in the jail's pid namespace from the
	 * fork, and its /proc files (fd, mem, environ, exe) stay root-of-the-host-only meanwhile */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* out of the caller's process group: signals come once, from the caller, and go on to the
	 * child's group (a terminal's SIGINT would otherwise reach us and the caller both);
	 * the fast path has no caller in between: it stays where the CLI would have been, in its
	 * terminal's foreground group, and passes on what the terminal sends (SIGWINCH, SIGINT) */
	if (!fast) setsid();

	const char *cgroups[MAX_CG];
	const char *allow = "";
	int ncg = 0, i = 1, want_pty = 0;
	long target = 0;
	unsigned long long expect_pidns = 0, keep = 0;
	int have_keep = 0, have_user = 0, ngroups = 0;
	uid_t uid = 0;
	gid_t gid = 0, groups[64];
	const char *cwd = NULL;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--cgroup") && i + 1 < argc && ncg < MAX_CG) {
			cgroups[ncg++] = argv[++i];
		} else if (!strcmp(argv[i], "--expect-pidns") && i + 1 < argc) {
			char *end;
			expect_pidns = strtoull(argv[++i], &end, 10);
			if (*end || !expect_pidns) {
				fprintf(stderr, "jy-enter: bad --expect-pidns\n");
				return 125;
			}
		} else if (!strcmp(argv[i], "--keep-caps") && i + 1 < argc) {
			if (!parse_caps(argv[++i], &keep)) {
				fprintf(stderr, "jy-enter: bad --keep-caps\n");
				return 125;
			}
			have_keep = 1;
		} else if (!strcmp(argv[i], "--seccomp") && i + 1 < argc) {
			allow = argv[++i];
		} else if (!strcmp(argv[i], "--pty")) {
			want_pty = 1;
		} else if (!strcmp(argv[i], "--cwd") && i + 1 < argc) {
			cwd = argv[++i];
		} else if (!strcmp(argv[i], "--user") && i + 1 < argc) {
			/* UID:GID[:GID,GID...], decimal */
			char *end;
			const char *u = argv[++i];
			unsigned long v = strtoul(u, &end, 10);
			int ok = end != u && *end == ':' && v < 0xffffffffUL;
			uid = (uid_t)v;
			if (ok) {
				u = end + 1;
				v = strtoul(u, &end, 10);
				ok = end != u && (*end == '\0' || *end == ':') && v < 0xffffffffUL;
				gid = (gid_t)v;
			}
			/* the supplementary groups: ":G1,G2,..." (none: an empty list) */
			if (ok && *end == ':') {
				for (u = end + 1; ok && *u; u = *end ? end + 1 : end) {
					v = strtoul(u, &end, 10);
					ok = end != u && (*end == '\0' || *end == ',') && v < 0xffffffffUL && ngroups < 64;
					if (ok) groups[ngroups++] = (gid_t)v;
				}
			}
			if (!ok) {
				fprintf(stderr, "jy-enter: bad --user\n");
				return 125;
			}
			have_user = 1;
		} else if (!strcmp(argv[i], "--target") && i + 1 < argc) {
			char *end;
			target = strtol(argv[++i], &end, 10);
			if (*end || target <= 0) target = 0;
		} else {
			break;
		}
	}
	if (!target || !have_keep || i + 1 >= argc || strcmp(argv[i], "--") != 0) {
		fprintf(stderr, "usage: jy-enter [--cgroup DIR]... --target PID [--expect-pidns INODE] --keep-caps KEEP [--seccomp ALLOW] [--pty] [--cwd DIR] [--user UID:GID[:GID,...]] -- PROGRAM [ARGS...]\n");
		return 125;
	}
	/* Every argument used later is copied out, then the argument area (host paths of the
	 * cgroups, the host pid of the jail's pid 1) is blanked before the fork: the child is in
	 * the jail's pid namespace from its first instruction, and /proc/PID/cmdline reads just
	 * "jy-enter" there (and on the host). */
	int nprog = argc - (i + 1);
	char **program = calloc((size_t)nprog + 1, sizeof *program);
	if (!program || !(allow = strdup(allow)) || (cwd && !(cwd = strdup(cwd)))) die_errno("calloc");
	for (int k = 0; k < nprog; k++)
		if (!(program[k] = strdup(argv[i + 1 + k]))) die_errno("strdup");
	for (int k = 0; k < ncg; k++)
		if (!(cgroups[k] = strdup(cgroups[k]))) die_errno("strdup");
	memset(area, 0, (size_t)(area_end - area));
	strcpy(area, "jy-enter");
	/* the kernel reads cmdline up to arg_end: shorten it so no trail of NULs shows */
	prctl(PR_SET_MM, PR_SET_MM_ARG_END, (unsigned long)(area + sizeof "jy-enter"), 0, 0);

	for (int n = 0; n < ncg; n++) join_cgroup(cgroups[n]);

	char path[4096];

	/* Open everything of the target first: after the mount namespace, /proc is the jail's. */
	static const struct { const char *name; int type; } ns[] = {
		{"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET}, {"cgroup", CLONE_NEWCGROUP},
		{"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},
	};
	enum { NNS = sizeof ns / sizeof ns[0], PIDNS = 4 };
	int fds[NNS];
	for (int n = 0; n < NNS; n++) {
		snprintf(path, sizeof path, "/proc/%ld/ns/%s", target, ns[n].name);
		if ((fds[n] = open(path, O_RDONLY | O_CLOEXEC)) < 0) die_errno("cannot open %s", path);
	}
	struct stat st;
	if (expect_pidns) {
		if (fstat(fds[PIDNS], &st) != 0) die_errno("process %ld is not the jail's pid 1 any more", target);
		if ((unsigned long long)st.st_ino != expect_pidns) die("process %ld is not the jail's pid 1 any more", target);
	}
	snprintf(path, sizeof path, "/proc/%ld/root", target);
	int rootfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(path, sizeof path, "/proc/%ld/cwd", target);
	int cwdfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0 || cwdfd < 0) die_errno("cannot open the root of process %ld", target);
	/* the host's devpts, for a pty when the jail has no devpts of its own */
	int host_master = want_pty ? open_ptmx("/dev/pts/ptmx") : -1;
	/* a user-namespace jail: the program joins its user namespace last, in the child (the
	 * other namespaces belong to the host's, so joining them needs the host's privilege) */
	int userns = target_userns(target);
	for (int n = 0; n < NNS; n++) {
		if (setns(fds[n], ns[n].type) != 0) die_errno("cannot join the %s namespace of %ld", ns[n].name, target);
		close(fds[n]);
	}
	if (fchdir(rootfd) != 0 || chroot(".") != 0) die_errno("cannot enter the root of process %ld", target);
	if (fchdir(cwdfd) != 0) die_errno("cannot enter the working directory of process %ld", target);
	close(rootfd);
	close(cwdfd);

	/* What the child gets as fds 0-2 (-1: the caller's own), and what we copy. */
	int child_fd[3] = { -1, -1, -1 }, master = -1, slave = -1;
	struct pump pumps[3];
	int np = 0;
	if (want_pty) {
		master = open_ptmx("/dev/pts/ptmx");
		if (master < 0) master = host_master;
		else if (host_master >= 0) close(host_master);
		if (master < 0) die("no pty: neither the jail nor the host has a usable /dev/pts/ptmx");
		if ((slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) die_errno("cannot open the pty's slave");
		struct winsize ws = { .ws_row = 24, .ws_col = 80 };
		if (ioctl(0, TIOCGWINSZ, &ws) != 0) ioctl(1, TIOCGWINSZ, &ws);
		ioctl(master, TIOCSWINSZ, &ws);
		struct termios t;
		int eof = tcgetattr(slave, &t) == 0 ? t.c_cc[VEOF] : 4;
		child_fd[0] = child_fd[1] = child_fd[2] = slave;
		pumps[np++] = (struct pump){ .src = 0, .dst = master, .to_child = 1, .eof_char = eof };
		pumps[np++] = (struct pump){ .src = master, .dst = 1, .to_child = 0, .eof_char = -1 };
		if (isatty(0) && tcgetattr(0, &saved_tty) == 0) {
			struct termios raw = saved_tty;
			cfmakeraw(&raw);
			tty_raw = 1;
			atexit(restore_tty);
			tcsetattr(0, TCSADRAIN, &raw);
		}
	} else {
		for (int k = 0; k < 3; k++) {
			if (fstat(k, &st) != 0) continue;
			int fifo_or_sock = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
			if (k > 0 && !isatty(k)) {
				if (is_devnull(&st)) {
					child_fd[k] = jail_devnull();
					continue;
				}
				/* pipes and sockets cross; a host file (`exec ... > /srv/dump`) or device
				 * is copied to through a pipe: through the descriptor itself the jailed root
				 * could fchmod it setuid, chown it, reopen it to read what was there, and
				 * write to it after this process is gone (red-team run of 2026-12-04) */
				if (fifo_or_sock) continue;
			}
			if (k == 0 && fifo_or_sock && !isatty(0)) continue;
			int p[2];
			if (pipe2(p, O_CLOEXEC) != 0) die_errno("pipe");
			if (k == 0) {
				child_fd[0] = p[0];
				if (is_devnull(&st)) {
					close(p[1]);
					continue;
				}
				fcntl(p[1], F_SETFL, O_NONBLOCK);
				pumps[np++] = (struct pump){ .src = 0, .dst = p[1], .to_child = 1, .eof_char = -1 };
			} else {
				child_fd[k] = p[1];
				pumps[np++] = (struct pump){ .src = p[0], .dst = k, .to_child = 0, .eof_char = -1 };
			}
		}
	}
	int wake_p[2] = { -1, -1 };
	if (np) {
		if (pipe2(wake_p, O_CLOEXEC | O_NONBLOCK) != 0) die_errno("pipe");
		wake_w = wake_p[1];
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = wake;
		sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
		sigaction(SIGCHLD, &sa, NULL);
		sigaction(SIGWINCH, &sa, NULL);
		signal(SIGPIPE, SIG_IGN);
	}

	child = fork();
	if (child < 0) die_errno("fork");
	if (child == 0) {
		sigset_t none;
		sigemptyset(&none);
		signal(SIGCHLD, SIG_DFL);
		signal(SIGWINCH, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		tty_raw = 0; /* the parent restores the caller's terminal, not this process */
		if (setsid() < 0) die_errno("setsid");
		if (slave >= 0 && ioctl(slave, TIOCSCTTY, 0) != 0) die_errno("cannot make the pty the controlling terminal");
		/* root of the jail's user namespace (its range's first uid on the host), with that
		 * namespace's capabilities: the filter and the drop below apply there */
		if (userns >= 0 && (setns(userns, CLONE_NEWUSER) != 0 || setgroups(0, NULL) != 0 ||
		                    setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0))
			die_errno("cannot join the user namespace of %ld", target);
		for (int k = 0; k < 3; k++)
			if (child_fd[k] >= 0 && dup2(child_fd[k], k) < 0) die_errno("dup2");
		close_above_stdio();
		install_seccomp(allow);
		drop_capabilities(keep);
		if (cwd && chdir(cwd) != 0) die_errno("cannot enter %s in the jail", cwd);
		if (have_user && (setgroups((size_t)ngroups, groups) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0))
			die_errno("cannot become uid %u gid %u in the jail", (unsigned)uid, (unsigned)gid);
		execvp(program[0], program);
		die_errno("cannot run %s", program[0]);
	}
	for (int k = 0; k < 3; k++)
		if (child_fd[k] >= 0 && (k == 0 || child_fd[k] != child_fd[k - 1])) close(child_fd[k]);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = forward;
	sa.sa_flags = SA_RESTART;
	int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
	for (size_t k = 0; k < sizeof forwarded / sizeof forwarded[0]; k++) sigaction(forwarded[k], &sa, NULL);
	int status;
	if (np) {
		copy_loop(pumps, np, wake_p[0], master);
		status = reaped_status;
		restore_tty();
	} else {
		while (waitpid(child, &status, 0) < 0)
			if (errno != EINTR) die_errno("waitpid");
	}
	if (WIFEXITED(status)) return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/*
 * The fast path of `jailyard exec NAME PROGRAM [ARGS...]` (bin/jailyard.js runs it without
 * starting Node):
 *
 *   jy-enter --fast FILE NODE SCRIPT SKIP ARG...
 *
 * ARG... are jailyard's own arguments, the program and its arguments from the SKIP-th on.
 * FILE is the jail's enter file (src/platform/linux/exec.ts writes it at start, removes it
 * at stop): the arguments and the environment the CLI's exec gives jy-enter. When it is
 * missing, not root's own, or its pid 1 is not the process that started with the jail (the
 * start time in /proc/PID/stat), or this is not root, nothing is changed and `NODE SCRIPT
 * ARG...` runs instead: the CLI decides as ever. Otherwise this process becomes what the
 * CLI would have started: signals at their defaults and none blocked, the open-file limit
 * raised as Node raises its own, / as working directory, the jail's environment (TERM the
 * caller's when it is a plain name, else dumb) and a pty when fds 0 and 1 are terminals.
 */
#define FAST_MAX (64 << 10)

__attribute__((noreturn)) static void fast_fallback(char **argv) {
	/* NODE SCRIPT ARG...: SKIP's slot is taken by moving NODE and SCRIPT up one */
	argv[5] = argv[4];
	argv[4] = argv[3];
	execvp(argv[4], &argv[4]);
	fprintf(stderr, "jailyard: cannot run %s: %s\n", argv[4], strerror(errno));
	_exit(127);
}

/* Field 22 of /proc/PID/stat (the start time), or "" when there is no such process. */
static void start_time_of(long pid, char *out, size_t size) {
	char path[64], buf[1024];
	out[0] = 0;
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0) return;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p) return;
	/* after ") ": field 3 (the state) is the first, field 22 the 20th */
	for (int field = 2; field < 22 && p; field++) p = strchr(p + 1, ' ');
	if (!p) return;
	size_t len = strcspn(p + 1, " ");
	if (len + 1 > size) return;
	memcpy(out, p + 1, len);
	out[len] = 0;
}

/* Node's own start-up (node.cc PlatformInit): the soft open-file limit raised to the hard. */
static void raise_nofile_like_node(void) {
	struct rlimit lim;
	if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == lim.rlim_max) return;
	rlim_t min = lim.rlim_cur, max = 1 << 20;
	if (lim.rlim_max != RLIM_INFINITY) min = max = lim.rlim_max;
	do {
		lim.rlim_cur = min + (max - min) / 2;
		if (setrlimit(RLIMIT_NOFILE, &lim)) max = lim.rlim_cur;
		else min = lim.rlim_cur;
	} while (min + 1 < max);
}

/* TERM as the CLI passes it on: the caller's when a plain name, else dumb (exec.ts termOf). */
static int plain_term(const char *t) {
	size_t n = t ? strlen(t) : 0;
	if (n < 1 || n > 64 || !isalnum((unsigned char)t[0])) return 0;
	for (size_t k = 1; k < n; k++)
		if (!isalnum((unsigned char)t[k]) && !strchr("._+-", t[k])) return 0;
	return 1;
}

static int fast_main(int argc, char **argv) {
	if (argc < 7) fast_fallback(argv);
	char *end;
	long skip = strtol(argv[5], &end, 10);
	if (*end || skip < 1 || 6 + skip >= argc) fast_fallback(argv);
	if (geteuid() != 0) fast_fallback(argv);
	int fd = open(argv[2], O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0) fast_fallback(argv);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) || st.st_size >= FAST_MAX)
		fast_fallback(argv);
	char *text = malloc(FAST_MAX);
	if (!text) fast_fallback(argv);
	ssize_t got = read(fd, text, FAST_MAX - 1);
	close(fd);
	if (got <= 0) fast_fallback(argv);
	text[got] = 0;

	static char *env[32], term[80];
	static char *args[64];
	int nenv = 0, nargs = 0, seen_version = 0, have_keep = 0, have_seccomp = 0, ncg = 0;
	long target = 0;
	const char *start = NULL, *pidns = NULL;
	args[nargs++] = "jy-enter";
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (!next) fast_fallback(argv); /* a file cut short */
		*next++ = 0;
		char *value = strchr(line, ' ');
		if (!value) fast_fallback(argv);
		*value++ = 0;
		if (!seen_version) {
			if (strcmp(line, "jy-enter-fast") != 0 || strcmp(value, "1") != 0) fast_fallback(argv);
			seen_version = 1;
		} else if (!strcmp(line, "target")) {
			target = strtol(value, &end, 10);
			if (*end || target <= 0) fast_fallback(argv);
		} else if (!strcmp(line, "start-time")) {
			start = value;
		} else if (!strcmp(line, "pidns")) {
			pidns = value;
		} else if (!strcmp(line, "cgroup") && ncg < MAX_CG) {
			args[nargs++] = "--cgroup";
			args[nargs++] = value;
			ncg++;
		} else if (!strcmp(line, "keep-caps") && !have_keep) {
			args[nargs++] = "--keep-caps";
			args[nargs++] = value;
			have_keep = 1;
		} else if (!strcmp(line, "seccomp") && !have_seccomp) {
			args[nargs++] = "--seccomp";
			args[nargs++] = value;
			have_seccomp = 1;
		} else if (!strcmp(line, "env") && nenv < 30) {
			if (!strcmp(value, "TERM")) {
				const char *t = getenv("TERM");
				snprintf(term, sizeof term, "TERM=%s", plain_term(t) ? t : "dumb");
				env[nenv++] = term;
			} else if (strchr(value, '=')) {
				env[nenv++] = value;
			} else {
				fast_fallback(argv);
			}
		} else {
			fast_fallback(argv);
		}
	}
	if (!seen_version || !target || !start || !have_keep || !have_seccomp) fast_fallback(argv);
	char now[32];
	start_time_of(target, now, sizeof now);
	if (!now[0] || strcmp(now, start) != 0) fast_fallback(argv);

	static char target_s[32];
	snprintf(target_s, sizeof target_s, "%ld", target);
	args[nargs++] = "--target";
	args[nargs++] = target_s;
	if (pidns) {
		args[nargs++] = "--expect-pidns";
		args[nargs++] = (char *)pidns;
	}
	/* the CLI's default for a terminal: a pty of the program's own when stdin and stdout are */
	if (isatty(0) && isatty(1)) args[nargs++] = "--pty";
	args[nargs++] = "--";
	int first = nargs;
	char **full = calloc((size_t)(nargs + argc), sizeof *full);
	if (!full) fast_fallback(argv);
	memcpy(full, args, (size_t)first * sizeof *full);
	for (int k = 6 + (int)skip; k < argc; k++) full[nargs++] = argv[k];
	full[nargs] = NULL;

	if (getenv("JAILYARD_TRACE_FAST")) {
		static const char mark[] = "jailyard: exec: fast path\n";
		if (write(2, mark, sizeof mark - 1) < 0) { /* tracing only */ }
	}
	/* what Node's spawn gives its child: default dispositions for 1-31, an empty mask */
	for (int sig = 1; sig < 32; sig++)
		if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	raise_nofile_like_node();
	if (chdir("/") != 0) die_errno("chdir /");
	env[nenv] = NULL;
	environ = env;
	fast = 1;
	return enter_main(nargs, full);
}

int main(int argc, char **argv) {
	area = argv[0];
	area_end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
	if (argc > 1 && !strcmp(argv[1], "--fast")) return fast_main(argc, argv);
	return enter_main(argc, argv);
}
