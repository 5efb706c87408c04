/*
 * jy-spawner: starts programs for jailyard's Linux driver, so that node never forks.
 *
 * node's child_process.spawn forks the whole node process and blocks its main thread until
 * the child has exec'd: ~2.5-5 ms per program on the test machines, two of them per jail
 * start. This small static process is started once per driver and starts them instead
 * (posix_spawn: no copy of its memory), from requests on its stdin; it relays the children's output
 * and exit statuses on its stdout. It exits when its stdin closes (jailyard exited); its
 * children live on, as detached children of node's would.
 *
 * Frames, both ways: u32 payload length (host order), payload; the codes and values are
 * named in jy-spawner.h.
 * Requests:
 *   'S' u32 id, u8 flags (SPAWNER_FLAG_SETSID), u8 out, u8 err (SPAWNER_OUT_*: /dev/null, a
 *       pipe, or appended to the path given, created 0666 less the umask, as node's 'a'
 *       would), then NUL-terminated: out path, err path, cwd; u32 argc, u32 envc; argc + envc
 *       NUL-terminated strings. argv[0] is looked up in the PATH of envp.
 *   'C' u32 id: stop relaying that child's output (its pipes are closed).
 * Replies:
 *   'P' u32 id, i32 pid         the child runs its program
 *   'F' u32 id, i32 errno       it could not (nothing else follows for that id)
 *   'O' / 'E' u32 id, bytes     output on its stdout / stderr
 *   'X' u32 id, i32 status      it exited (wait status), after all of its output
 * Exits 125 on a malformed request or a broken reply pipe.
 */
#define _GNU_SOURCE
#define DIE_PREFIX "jy-spawner"
#define DIE_STATUS 125
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/wait.h>
#include "jy-common.h"
#include "jy-spawner.h"

extern char **environ;

struct child {
	uint32_t id;
	pid_t pid;
	int out, err; /* read ends, -1 when done */
	int exited;
	int status;
};

static struct child *kids;
static size_t nkids, capkids;
static int sigpipe_w = -1;

static void on_sigchld(int sig) {
	(void)sig;
	int e = errno;
	if (write(sigpipe_w, "c", 1) < 0) { /* full: a wake-up is pending anyway */ }
	errno = e;
}

static void write_all(const void *buf, size_t len) {
	const char *p = buf;
	while (len) {
		ssize_t n = write(1, p, len);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) die_errno("reply");
		p += n;
		len -= (size_t)n;
	}
}

static void reply(char type, uint32_t id, const void *data, uint32_t len) {
	uint32_t total = 1 + 4 + len;
	char head[9];
	memcpy(head, &total, 4);
	head[4] = type;
	memcpy(head + 5, &id, 4);
	write_all(head, sizeof head);
	if (len) write_all(data, len);
}

static void reply_int(char type, uint32_t id, int32_t v) {
	reply(type, id, &v, 4);
}

/* Reads exactly len bytes from stdin; 0 on EOF before the first byte. */
static int read_all(void *buf, size_t len) {
	char *p = buf;
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(0, p + got, len - got);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) die_errno("request");
		if (n == 0) {
			if (got == 0) return 0;
			die("request cut short");
		}
		got += (size_t)n;
	}
	return 1;
}

/* The next NUL-terminated string of the request, or die. */
static char *next_str(char **at, char *end) {
	char *s = *at;
	char *nul = memchr(s, '\0', (size_t)(end - s));
	if (!nul) {
		die("malformed request");
	}
	*at = nul + 1;
	return s;
}

static uint32_t next_u32(char **at, char *end) {
	uint32_t v;
	if (end - *at < 4) {
		die("malformed request");
	}
	memcpy(&v, *at, 4);
	*at += 4;
	return v;
}

static void maybe_finish(size_t i) {
	struct child *c = &kids[i];
	if (!c->exited || c->out >= 0 || c->err >= 0) return;
	reply_int(SPAWNER_REPLY_EXIT, c->id, c->status);
	kids[i] = kids[--nkids];
}

static void close_output(struct child *c) {
	if (c->out >= 0) close(c->out);
	if (c->err >= 0) close(c->err);
	c->out = c->err = -1;
}

/* Opens what one of the child's output fds should be; for mode 1 also our read end. */
static int output_fd(uint8_t mode, const char *path, int *read_end) {
	*read_end = -1;
	if (mode == SPAWNER_OUT_PIPE) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0) return -1;
		*read_end = p[0];
		return p[1];
	}
	if (mode == SPAWNER_OUT_APPEND) return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0666);
	return open("/dev/null", O_WRONLY | O_CLOEXEC);
}

/*
 * Starts ARGV with posix_spawn: glibc clones with CLONE_VM | CLONE_VFORK, so the child shares
 * our memory until its exec instead of copying our page tables and tearing them down again
 * (a fork's copy and exit_mmap were ~1 ms per program on the test machine, a paravirtualised
 * VM where every page-table write is a hypercall). The child gets a session of its own when
 * asked, IN / OUT / ERR as fds 0-2, nothing else of ours (closefrom 3), CWD, default signal
 * dispositions for what we ignore or handle, an empty mask. An exec failure comes back as the
 * return value (glibc reaps that child). ARGV[0] is looked up in the PATH of ENVP.
 */
static int start_child(pid_t *pid, uint8_t flags, int in, int out, int err, const char *cwd, char **argv, char **envp) {
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int e = posix_spawn_file_actions_init(&fa);
	if (e) return e;
	if ((e = posix_spawnattr_init(&attr))) {
		posix_spawn_file_actions_destroy(&fa);
		return e;
	}
	sigset_t none, dflt;
	sigemptyset(&none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGCHLD);
	sigaddset(&dflt, SIGPIPE);
	short sflags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | ((flags & SPAWNER_FLAG_SETSID) ? POSIX_SPAWN_SETSID : 0);
	if (!e) e = posix_spawnattr_setflags(&attr, sflags);
	if (!e) e = posix_spawnattr_setsigmask(&attr, &none);
	if (!e) e = posix_spawnattr_setsigdefault(&attr, &dflt);
	if (!e) e = posix_spawn_file_actions_adddup2(&fa, in, 0);
	if (!e) e = posix_spawn_file_actions_adddup2(&fa, out, 1);
	if (!e) e = posix_spawn_file_actions_adddup2(&fa, err, 2);
	if (!e) e = posix_spawn_file_actions_addchdir_np(&fa, cwd);
	if (!e) e = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (!e) {
		/* posix_spawnp searches the PATH of our environment: the program's, for this call */
		char **own = environ;
		environ = envp;
		e = posix_spawnp(pid, argv[0], &fa, &attr, argv, envp);
		environ = own;
	}
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return e;
}

static void spawn_one(char *p, char *end) {
	uint32_t id = next_u32(&p, end);
	if (end - p < 3) {
		die("malformed request");
	}
	uint8_t flags = (uint8_t)p[0], out_mode = (uint8_t)p[1], err_mode = (uint8_t)p[2];
	p += 3;
	char *out_path = next_str(&p, end), *err_path = next_str(&p, end), *cwd = next_str(&p, end);
	uint32_t argc = next_u32(&p, end), envc = next_u32(&p, end);
	if (argc == 0 || argc > 65536 || envc > 65536) {
		die("malformed request");
	}
	char **argv = calloc(argc + 1, sizeof *argv), **envp = calloc(envc + 1, sizeof *envp);
	if (!argv || !envp) die_errno("calloc");
	for (uint32_t i = 0; i < argc; i++) argv[i] = next_str(&p, end);
	for (uint32_t i = 0; i < envc; i++) envp[i] = next_str(&p, end);

	int out_r = -1, err_r = -1;
	int out_w = output_fd(out_mode, out_path, &out_r);
	int err_w = out_w >= 0 ? output_fd(err_mode, err_path, &err_r) : -1;
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int32_t failure = 0;
	pid_t pid = -1;
	if (out_w < 0 || err_w < 0 || in < 0) failure = errno;
	else failure = start_child(&pid, flags, in, out_w, err_w, cwd, argv, envp);
	if (out_w >= 0) close(out_w);
	if (err_w >= 0) close(err_w);
	if (in >= 0) close(in);
	free(argv);
	free(envp);
	if (failure) {
		if (out_r >= 0) close(out_r);
		if (err_r >= 0) close(err_r);
		reply_int(SPAWNER_REPLY_FAILED, id, failure);
		return;
	}
	if (nkids == capkids) {
		capkids = capkids ? capkids * 2 : 16;
		kids = realloc(kids, capkids * sizeof *kids);
		if (!kids) die_errno("realloc");
	}
	kids[nkids++] = (struct child){ .id = id, .pid = pid, .out = out_r, .err = err_r, .exited = 0, .status = 0 };
	reply_int(SPAWNER_REPLY_PID, id, pid);
}

static void handle_request(void) {
	uint32_t len;
	if (!read_all(&len, 4)) exit(0); /* jailyard closed us: its children live on */
	if (len < 1 || len > SPAWNER_MAX_FRAME) die("bad frame length %u", len);
	char *buf = malloc(len);
	if (!buf) die_errno("malloc");
	read_all(buf, len);
	char *p = buf + 1, *end = buf + len;
	if (buf[0] == SPAWNER_REQ_SPAWN) spawn_one(p, end);
	else if (buf[0] == SPAWNER_REQ_CLOSE_OUTPUT) {
		uint32_t id = next_u32(&p, end);
		for (size_t i = 0; i < nkids; i++) {
			if (kids[i].id != id) continue;
			close_output(&kids[i]);
			maybe_finish(i);
			break;
		}
	} else {
		die("unknown request %d", buf[0]);
	}
	free(buf);
}

static void reap(void) {
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < nkids; i++) {
			if (kids[i].pid != pid) continue;
			kids[i].exited = 1;
			kids[i].status = status;
			maybe_finish(i);
			break;
		}
	}
}

int main(void) {
	int sp[2];
	if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) < 0) die_errno("pipe");
	sigpipe_w = sp[1];
	struct sigaction sa = { 0 };
	sa.sa_handler = on_sigchld;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	if (sigaction(SIGCHLD, &sa, NULL) < 0) die_errno("sigaction");
	signal(SIGPIPE, SIG_IGN);
	struct pollfd *fds = NULL;
	size_t capfds = 0;
	for (;;) {
		size_t want = 2 + 2 * nkids;
		if (want > capfds) {
			capfds = want * 2;
			fds = realloc(fds, capfds * sizeof *fds);
			if (!fds) die_errno("realloc");
		}
		size_t n = 0;
		fds[n++] = (struct pollfd){ .fd = 0, .events = POLLIN };
		fds[n++] = (struct pollfd){ .fd = sp[0], .events = POLLIN };
		for (size_t i = 0; i < nkids; i++) {
			fds[n++] = (struct pollfd){ .fd = kids[i].out, .events = POLLIN };
			fds[n++] = (struct pollfd){ .fd = kids[i].err, .events = POLLIN };
		}
		if (poll(fds, n, -1) < 0) {
			if (errno == EINTR) continue;
			die_errno("poll");
		}
		if (fds[1].revents) {
			char drain[64];
			while (read(sp[0], drain, sizeof drain) > 0) {}
			reap();
		}
		/* output before requests: a 'C' may close these very fds */
		for (size_t k = 2; k < n; k++) {
			if (!fds[k].revents || fds[k].fd < 0) continue;
			for (size_t i = 0; i < nkids; i++) {
				int *fd = kids[i].out == fds[k].fd ? &kids[i].out : kids[i].err == fds[k].fd ? &kids[i].err : NULL;
				if (!fd) continue;
				char buf[16384];
				ssize_t r = read(*fd, buf, sizeof buf);
				if (r > 0) reply(fd == &kids[i].out ? SPAWNER_REPLY_STDOUT : SPAWNER_REPLY_STDERR, kids[i].id, buf, (uint32_t)r);
				else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
					close(*fd);
					*fd = -1;
					maybe_finish(i);
				}
				break;
			}
		}
		if (fds[0].revents) handle_request();
	}
}
