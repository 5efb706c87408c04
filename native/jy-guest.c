/*
 * jy-guest: the jail(8), jls(8) and sysctl(8) a jail runs inside itself. One static program,
 * bound read-only (nosuid, nodev) at /run/jailyard/bin in every jail, with the names jail,
 * jls and sysctl; it acts by the name it was called by (or by its first argument when
 * called as jy-guest).
 *
 *   sysctl [-neq] security.jail.env   prints the jail's own env (/run/jailyard/env), as
 *                  FreeBSD's sysctl prints a string: "security.jail.env: V\n", with -n
 *                  "V\n", with -e "security.jail.env=V\n". Any other name goes to the jail's
 *                  own /sbin/sysctl or /usr/sbin/sysctl with the same options; with none of
 *                  them: "sysctl: unknown oid 'NAME'", exit 1.
 *   sysctl [-deNnq] security.jail.children.max|security.jail.children.cur   the jail's own
 *                  children.max and the number of jails below it, as FreeBSD's kernel
 *                  counts them: asked of the host (below), one name at a time.
 *   jail ..., jls ...   the arguments go to the host, which runs its jail(8)/jls(8) front
 *                  for this jail (names are relative to it, it sees its descendants only)
 *                  and answers stdout, stderr and the exit status, which this prints and
 *                  exits with. The channel: the unix socket named by JAILYARD_TOOLS_SOCKET
 *                  (set by the host's jexec for the command it runs), else the daemon's guest
 *                  socket /run/jailyard/guest.sock. The host decides who asks by the socket
 *                  reached, never by what is sent.
 *
 * Wire form (src/api/guest-tools.ts): POST /tools/jail (or /tools/jls), HTTP/1.1,
 * Connection: close, body = every argument followed by a NUL byte. Answer 200 with the body
 * "STATUS OUTLEN ERRLEN\n" then OUTLEN bytes of stdout and ERRLEN bytes of stderr; any other
 * HTTP status is a refusal whose body is one line of text.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define GUEST_SOCKET "/run/jailyard/guest.sock"
#define ENV_FILE "/run/jailyard/env"
#define ENV_OID "security.jail.env"
/* the host answers at most two 4 MiB streams (guest-tools.ts): anything longer is not its */
#define MAX_ANSWER (9u << 20)

static const char *tool = "jy-guest";

static int host_main(int argc, char **argv);

static void write_all(int fd, const char *buf, size_t len) {
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) return;
		buf += n;
		len -= (size_t)n;
	}
}

static int fail(const char *msg) {
	fprintf(stderr, "%s: jailyard: %s\n", tool, msg);
	return 1;
}

/* ---- sysctl ---- */

/* The whole env file ("" when there is none: a jail without env). */
static char *read_env(size_t *len) {
	FILE *f = fopen(ENV_FILE, "re");
	char *buf = NULL;
	size_t size = 0;
	*len = 0;
	if (!f) return strdup("");
	for (;;) {
		if (*len + 4096 + 1 > size) {
			size = size ? size * 2 : 8192;
			char *next = realloc(buf, size);
			if (!next) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = next;
		}
		size_t n = fread(buf + *len, 1, 4096, f);
		*len += n;
		if (n < 4096) break;
	}
	fclose(f);
	buf[*len] = '\0';
	return buf;
}

static const char *const real_sysctl[] = {"/sbin/sysctl", "/usr/sbin/sysctl"};

/* The jail's own sysctl, or NULL when it has none. */
static const char *own_sysctl(void) {
	for (size_t i = 0; i < sizeof real_sysctl / sizeof *real_sysctl; i++)
		if (access(real_sysctl[i], X_OK) == 0) return real_sysctl[i];
	return NULL;
}

static int unknown_oid(const char *name, int quiet) {
	if (!quiet) {
		size_t n = strcspn(name, "=");
		fprintf(stderr, "sysctl: unknown oid '%.*s'\n", (int)n, name);
	}
	return 1;
}

/* One name handed to the jail's sysctl with the given options: its exit status. */
static int run_own(char **opts, int nopts, const char *name, int quiet) {
	const char *prog = own_sysctl();
	if (!prog) return unknown_oid(name, quiet);
	char **args = calloc((size_t)nopts + 3, sizeof *args);
	if (!args) return fail("out of memory");
	int a = 0;
	args[a++] = "sysctl";
	for (int i = 0; i < nopts; i++) args[a++] = opts[i];
	args[a++] = (char *)name;
	args[a] = NULL;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		execv(prog, args);
		_exit(127);
	}
	free(args);
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) < 0) return fail("cannot run the jail's sysctl");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int is_ours(const char *name) {
	size_t n = strcspn(name, "=");
	return n == strlen(ENV_OID) && !strncmp(name, ENV_OID, n);
}

/* The jail-tree names, which only the host can count. */
static int is_host(const char *name) {
	static const char *const oids[] = {"security.jail.children.max", "security.jail.children.cur"};
	size_t n = strcspn(name, "=");
	for (size_t i = 0; i < sizeof oids / sizeof *oids; i++)
		if (n == strlen(oids[i]) && !strncmp(name, oids[i], n)) return 1;
	return 0;
}

/* One jail-tree name asked of the host with the given options: its exit status. */
static int run_host(char **opts, int nopts, char *name) {
	char **args = calloc((size_t)nopts + 3, sizeof *args);
	if (!args) return fail("out of memory");
	int a = 0;
	args[a++] = "sysctl";
	for (int i = 0; i < nopts; i++) args[a++] = opts[i];
	args[a++] = name;
	args[a] = NULL;
	fflush(stdout);
	int status = host_main(a, args);
	free(args);
	return status;
}

static int sysctl_main(int argc, char **argv) {
	int nflag = 0, eflag = 0, qflag = 0, other_opt = 0, ours = 0, first = 1;
	/* options before the first name, as FreeBSD's getopt; "--" ends them */
	while (first < argc && argv[first][0] == '-' && argv[first][1]) {
		if (!strcmp(argv[first++], "--")) break;
		for (const char *c = argv[first - 1] + 1; *c; c++) {
			if (*c == 'n') nflag = 1;
			else if (*c == 'e') eflag = 1;
			else if (*c == 'q') qflag = 1;
			else other_opt = 1;
		}
	}
	int hosts = 0;
	for (int i = first; i < argc; i++) {
		ours += is_ours(argv[i]);
		hosts += is_host(argv[i]);
	}
	if (!ours && !hosts) {
		/* nothing of ours: the jail's own sysctl as if called directly */
		const char *prog = own_sysctl();
		if (!prog) {
			if (first >= argc) return fail("this jail has no sysctl of its own (/sbin/sysctl)");
			return unknown_oid(argv[first], qflag);
		}
		argv[0] = "sysctl";
		execv(prog, argv);
		perror("sysctl: exec");
		return 1;
	}
	if (other_opt && ours) {
		fprintf(stderr, "sysctl: only -n, -e and -q go with %s here\n", ENV_OID);
		return 1;
	}
	int status = 0;
	for (int i = first; i < argc; i++) {
		if (is_host(argv[i])) {
			int s = run_host(argv + 1, first - 1, argv[i]);
			if (s) status = s;
			continue;
		}
		if (!is_ours(argv[i])) {
			int s = run_own(argv + 1, first - 1, argv[i], qflag);
			if (s) status = s;
			continue;
		}
		if (strchr(argv[i], '=')) {
			/* as on FreeBSD: the jail reads its env, only the host sets it (jail -m env=) */
			if (!qflag) fprintf(stderr, "sysctl: oid '%s' is read only\n", ENV_OID);
			status = 1;
			continue;
		}
		size_t len;
		char *env = read_env(&len);
		if (!env) return fail("out of memory");
		if (!nflag) printf(eflag ? "%s=" : "%s: ", ENV_OID);
		fflush(stdout);
		write_all(1, env, len);
		write_all(1, "\n", 1);
		free(env);
	}
	return status;
}

/* ---- jail, jls ---- */

static int connect_to(const char *path) {
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (!path || !*path || strlen(path) >= sizeof addr.sun_path) return -1;
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *buf, size_t len) {
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int host_main(int argc, char **argv) {
	size_t body_len = 0;
	for (int i = 1; i < argc; i++) body_len += strlen(argv[i]) + 1;
	char head[256];
	int head_len = snprintf(head, sizeof head,
	                        "POST /tools/%s HTTP/1.1\r\nHost: guest\r\nContent-Type: application/octet-stream\r\n"
	                        "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	                        tool, body_len);
	char *req = malloc((size_t)head_len + body_len + 1);
	if (!req) return fail("out of memory");
	memcpy(req, head, (size_t)head_len);
	size_t at = (size_t)head_len;
	for (int i = 1; i < argc; i++) {
		size_t n = strlen(argv[i]) + 1;
		memcpy(req + at, argv[i], n);
		at += n;
	}

	int fd = connect_to(getenv("JAILYARD_TOOLS_SOCKET"));
	if (fd < 0) fd = connect_to(GUEST_SOCKET);
	if (fd < 0) {
		free(req);
		return fail("no channel to the host (run it under jexec or with jailyard serve running)");
	}
	/* a refused request (too large, too many at once) is answered and closed before all of
	 * it is sent: the answer is read either way */
	send_all(fd, req, at);
	free(req);
	/* no shutdown(SHUT_WR): the request ends by its Content-Length, and Node's HTTP server
	 * ends a half-closed connection before it answers; "Connection: close" ends the answer */

	size_t size = 65536, len = 0;
	char *ans = malloc(size + 1);
	if (!ans) return fail("out of memory");
	for (;;) {
		if (len == size) {
			if (size >= MAX_ANSWER) return fail("the host's answer is too long");
			size *= 2;
			char *next = realloc(ans, size + 1);
			if (!next) return fail("out of memory");
			ans = next;
		}
		ssize_t n = read(fd, ans + len, size - len);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) return fail("cannot read the host's answer");
		if (n == 0) break;
		len += (size_t)n;
	}
	close(fd);
	ans[len] = '\0';

	int http;
	char *body = memmem(ans, len, "\r\n\r\n", 4);
	if (sscanf(ans, "HTTP/1.%*d %d", &http) != 1 || !body) return fail("the host's answer is malformed");
	body += 4;
	size_t body_have = len - (size_t)(body - ans);
	if (http != 200) {
		/* a refusal: one line of text (too many requests, a request too large, ...) */
		size_t n = body_have;
		while (n && (body[n - 1] == '\n' || body[n - 1] == '\r')) n--;
		fprintf(stderr, "%s: jailyard: %.*s\n", tool, (int)(n > 1000 ? 1000 : n), body);
		return 1;
	}
	unsigned status;
	size_t out_len, err_len;
	int used = 0;
	/* "%n" right after the numbers, then the one newline by hand: a "\n" in the format would
	 * also swallow the blanks that begin stdout (jls' "   JID ...") */
	if (sscanf(body, "%u %zu %zu%n", &status, &out_len, &err_len, &used) != 3 || used <= 0 ||
	    (size_t)used >= body_have || body[used++] != '\n' ||
	    out_len > body_have || err_len > body_have || (size_t)used + out_len + err_len != body_have || status > 255)
		return fail("the host's answer is malformed");
	write_all(1, body + used, out_len);
	write_all(2, body + used + out_len, err_len);
	free(ans);
	return (int)status;
}

int main(int argc, char **argv) {
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	if (!strcmp(base, "jy-guest")) {
		if (argc < 2) {
			fprintf(stderr, "usage: jy-guest jail|jls|sysctl [ARGS...]\n");
			return 2;
		}
		argv++;
		argc--;
		base = argv[0];
	}
	if (!strcmp(base, "sysctl")) {
		tool = "sysctl";
		return sysctl_main(argc, argv);
	}
	if (!strcmp(base, "jail") || !strcmp(base, "jls")) {
		tool = !strcmp(base, "jail") ? "jail" : "jls";
		return host_main(argc, argv);
	}
	fprintf(stderr, "jy-guest: called as %s: only jail, jls and sysctl\n", base);
	return 2;
}
