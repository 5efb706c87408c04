/*
 * jy-enter: runs a program inside a running jail, like jexec(8), in one static process.
 *
 *   jy-enter [--cgroup DIR]... --target PID [--expect-pidns INODE] --keep-caps KEEP
 *            [--seccomp ALLOW] [--pty] -- PROGRAM [ARGS...]
 *
 * It closes every descriptor above 2 it inherited, leaves its caller's session, joins the
 * cgroups DIR (writing "0" to DIR/cgroup.procs), then the ipc, uts, net, pid and mount
 * namespaces of PID (the jail's pid 1), takes PID's root and working directory, and forks (a
 * pid namespace applies to children only). When PID is in a user namespace of its own (a
 * user-namespace jail), the child joins it too, last, as its root. Before that fork it blanks its argument area: the
 * child is in the jail's pid namespace, and its /proc/PID/cmdline must name no host path,
 * cgroup or pid. The child starts a session of its own (it never has the caller's terminal
 * as controlling terminal, so TIOCSTI cannot type into it), closes every descriptor above 2,
 * installs the jail's seccomp filter (ALLOW: native/jy-seccomp.h), drops
 * every capability not in KEEP (comma-separated numbers) from its bounding set and executes
 * PROGRAM, looked up in PATH inside the jail. Nothing of the jail's tree runs before that
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
 *   to or from; a standard input that is not a pipe or socket (a host file, a device) is
 *   copied through a pipe too (the jail's root could chmod or reopen a host file through
 *   the descriptor), /dev/null as input is an empty pipe, and /dev/null as output is the
 *   jail's own /dev/null. Pipes, sockets and output files cross as they are (a daemon the
 *   program leaves running may write to them after this process is gone).
 *
 * This process waits and exits with the child's status (128+signal when it was killed);
 * SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to it are passed on to the
 * child's process group. Errors: exit 125, message on stderr.
 */
#define _GNU_SOURCE
#define DIE_PREFIX "jy-enter"
#define DIE_STATUS 125
#include <poll.h>
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

int main(int argc, char **argv) {
	/* nothing the caller holds open reaches the jail (runc CVE-2024-21626) */
	close_above_stdio();
	/* not dumpable until the exec resets it: the child is in the jail's pid namespace from the
	 * fork, and its /proc files (fd, mem, environ, exe) stay root-of-the-host-only meanwhile */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* out of the caller's process group: signals come once, from the caller, and go on to the
	 * child's group (a terminal's SIGINT would otherwise reach us and the caller both) */
	setsid();

	const char *cgroups[MAX_CG];
	const char *allow = "";
	int ncg = 0, i = 1, want_pty = 0;
	long target = 0;
	unsigned long long expect_pidns = 0, keep = 0;
	int have_keep = 0;
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
		} else if (!strcmp(argv[i], "--target") && i + 1 < argc) {
			char *end;
			target = strtol(argv[++i], &end, 10);
			if (*end || target <= 0) target = 0;
		} else {
			break;
		}
	}
	if (!target || !have_keep || i + 1 >= argc || strcmp(argv[i], "--") != 0) {
		fprintf(stderr, "usage: jy-enter [--cgroup DIR]... --target PID [--expect-pidns INODE] --keep-caps KEEP [--seccomp ALLOW] [--pty] -- PROGRAM [ARGS...]\n");
		return 125;
	}
	/* Every argument used later is copied out, then the argument area (host paths of the
	 * cgroups, the host pid of the jail's pid 1) is blanked before the fork: the child is in
	 * the jail's pid namespace from its first instruction, and /proc/PID/cmdline reads just
	 * "jy-enter" there (and on the host). */
	int nprog = argc - (i + 1);
	char **program = calloc((size_t)nprog + 1, sizeof *program);
	if (!program || !(allow = strdup(allow))) die_errno("calloc");
	for (int k = 0; k < nprog; k++)
		if (!(program[k] = strdup(argv[i + 1 + k]))) die_errno("strdup");
	for (int k = 0; k < ncg; k++)
		if (!(cgroups[k] = strdup(cgroups[k]))) die_errno("strdup");
	char *area = argv[0], *area_end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
	memset(area, 0, (size_t)(area_end - area));
	strcpy(area, "jy-enter");
	/* the kernel reads cmdline up to arg_end: shorten it so no trail of NULs shows */
	prctl(PR_SET_MM, PR_SET_MM_ARG_END, (unsigned long)(area + sizeof "jy-enter"), 0, 0);

	for (int n = 0; n < ncg; n++) join_cgroup(cgroups[n]);

	char path[4096];

	/* Open everything of the target first: after the mount namespace, /proc is the jail's. */
	static const struct { const char *name; int type; } ns[] = {
		{"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET}, {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},
	};
	int fds[5];
	for (int n = 0; n < 5; n++) {
		snprintf(path, sizeof path, "/proc/%ld/ns/%s", target, ns[n].name);
		if ((fds[n] = open(path, O_RDONLY | O_CLOEXEC)) < 0) die_errno("cannot open %s", path);
	}
	struct stat st;
	if (expect_pidns) {
		if (fstat(fds[3], &st) != 0) die_errno("process %ld is not the jail's pid 1 any more", target);
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
	for (int n = 0; n < 5; n++) {
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
				if (is_devnull(&st)) child_fd[k] = jail_devnull();
				continue;
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
