/*
 * jy-ctl: `jailyard [--state DIR] start|stop|restart NAME...` without Node, when a daemon
 * (`jailyard serve`) serves the state folder. bin/jailyard.js's sh line runs it as
 *
 *   jy-ctl NODE SCRIPT ARG...
 *
 * where ARG... are the command's own arguments. It sends the request the CLI sends with
 * --host (POST /v1/batch/VERB, src/api/client.ts) to the daemon's unix socket and prints what
 * the CLI prints (src/cli/jails.ts printBatch, src/cli/main.ts for errors, the lifecycle's
 * progress lines that the daemon hands back with `progress: true`), on stderr, with the CLI's
 * exit status. Whenever it cannot do exactly that before anything was asked of the daemon
 * (another option, a name the CLI would read otherwise, no daemon, a socket that is not
 * root's own 0600 one, a daemon that refuses the caller), it runs NODE SCRIPT ARG... in its
 * own place (exec): the CLI as if jy-ctl had not been there.
 *
 * Two starts of Node are 4-5x a `crun run` on their own (docs/benchmarks.md): this is how a
 * start + stop from the command line gets to the lifecycle's own cost.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char **fallback_argv;

/* A later than B. */
static int later(const struct timespec *a, const struct timespec *b) {
	return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/* Whether anything in the folder FD (taken over, closed here), or below it, is newer than
 * T, as bin/jailyard.js's distCurrent looks: every entry's mtime (a symlink's target's), into
 * every folder that is not a symlink; anything it cannot read counts as newer. */
static int newer_below(int fd, const struct timespec *t, int depth) {
	DIR *d = depth < 32 ? fdopendir(fd) : NULL;
	if (!d) {
		close(fd);
		return 1;
	}
	int newer = 0;
	for (struct dirent *e; !newer && (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
		struct stat st;
		if (fstatat(fd, e->d_name, &st, 0) != 0 || later(&st.st_mtim, t)) newer = 1;
		else if (e->d_type == DT_DIR || (e->d_type == DT_UNKNOWN && fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))) {
			int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			newer = sub < 0 || newer_below(sub, t, depth + 1);
		}
	}
	closedir(d);
	return newer;
}

/*
 * What bin/jailyard.js checks at every run before it runs dist/ (its distCurrent: nothing
 * under src/, nor a tsconfig, newer than dist/.built), done here for the CLI this hands the
 * command to: a stat of each of ~210 files is ~3 ms in Node, ~0.3 ms here. Told as
 * JAILYARD_DIST_BUILT=<dist/.built's mtime in ns>, which the bin takes only while the
 * stamp still has that mtime (and removes from its environment). Nothing is told for a
 * package without src/ (the bin runs dist/ then anyway) or when anything is newer.
 */
static void tell_dist_current(const char *script) {
	unsetenv("JAILYARD_DIST_BUILT");
	const char *slash = strrchr(script, '/');
	char root[4096], path[4200];
	int n = slash ? snprintf(root, sizeof root, "%.*s/..", (int)(slash - script), script) : snprintf(root, sizeof root, "..");
	if (n < 0 || (size_t)n >= sizeof root) return;
	struct stat built, st;
	snprintf(path, sizeof path, "%s/dist/.built", root);
	if (stat(path, &built) != 0) return;
	static const char *const configs[] = {"tsconfig.json", "tsconfig.build.json"};
	for (size_t k = 0; k < 2; k++) {
		snprintf(path, sizeof path, "%s/%s", root, configs[k]);
		if (stat(path, &st) == 0 && later(&st.st_mtim, &built.st_mtim)) return;
	}
	snprintf(path, sizeof path, "%s/src", root);
	int src = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src < 0) return;
	if (fstat(src, &st) != 0 || later(&st.st_mtim, &built.st_mtim)) {
		close(src);
		return;
	}
	if (newer_below(src, &built.st_mtim, 0)) return;
	char ns[32];
	snprintf(ns, sizeof ns, "%lld", (long long)built.st_mtim.tv_sec * 1000000000LL + built.st_mtim.tv_nsec);
	setenv("JAILYARD_DIST_BUILT", ns, 1);
}

/* The CLI in jy-ctl's place: NODE SCRIPT ARG... */
__attribute__((noreturn)) static void fallback(void) {
	tell_dist_current(fallback_argv[1]);
	execvp(fallback_argv[0], fallback_argv);
	fprintf(stderr, "jailyard: cannot run %s: %s\n", fallback_argv[0], strerror(errno));
	_exit(127);
}

/* A name the CLI takes as a jail name as it is: letters, digits and ._-, not an option. */
static int plain_name(const char *s) {
	if (!*s || *s == '-') return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("._-", *s)))
			return 0;
	return 1;
}

/* An absolute folder the CLI's path.resolve leaves as it is (no "." or ".." part, none hidden). */
static int plain_dir(const char *s) { return s && s[0] == '/' && !strstr(s, "/."); }

/* ---- a growing byte buffer ---- */
struct buf {
	char *p;
	size_t n, cap;
};

static void put(struct buf *b, const char *s, size_t n) {
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + n + 1) cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			fprintf(stderr, "jailyard: out of memory\n");
			_exit(1);
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}
static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

/* a JSON string's contents, escaped */
static void put_json_string(struct buf *b, const char *s) {
	puts_(b, "\"");
	for (; *s; s++) {
		if (*s == '"' || *s == '\\') put(b, "\\", 1);
		put(b, s, 1);
	}
	puts_(b, "\"");
}

/* ---- JSON: just enough to read the daemon's answers ---- */
enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };
struct json {
	enum jtype type;
	int boolean;
	double num;
	char *str; /* J_STR: bytes (may hold NULs), strlen = len */
	size_t len;
	struct json *kids; /* J_ARR, J_OBJ: items (objects: key in `key`) */
	size_t nkids;
	char *key;
	struct json *next;
};

struct parser {
	const char *p, *end;
	int depth;
};

static void ws(struct parser *ps) {
	while (ps->p < ps->end && strchr(" \t\r\n", *ps->p)) ps->p++;
}

static void utf8(struct buf *b, unsigned long c) {
	char o[4];
	size_t n;
	if (c < 0x80) {
		o[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		o[0] = (char)(0xC0 | (c >> 6));
		o[1] = (char)(0x80 | (c & 0x3F));
		n = 2;
	} else if (c < 0x10000) {
		o[0] = (char)(0xE0 | (c >> 12));
		o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		o[2] = (char)(0x80 | (c & 0x3F));
		n = 3;
	} else {
		o[0] = (char)(0xF0 | (c >> 18));
		o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
		o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
		o[3] = (char)(0x80 | (c & 0x3F));
		n = 4;
	}
	put(b, o, n);
}

static int hex4(struct parser *ps, unsigned long *out) {
	if (ps->end - ps->p < 4) return 0;
	unsigned long v = 0;
	for (int i = 0; i < 4; i++) {
		char c = *ps->p++;
		v <<= 4;
		if (c >= '0' && c <= '9') v |= (unsigned long)(c - '0');
		else if (c >= 'a' && c <= 'f') v |= (unsigned long)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F') v |= (unsigned long)(c - 'A' + 10);
		else return 0;
	}
	*out = v;
	return 1;
}

static int jstring(struct parser *ps, char **out, size_t *len) {
	struct buf b = {0};
	put(&b, "", 0);
	if (ps->p >= ps->end || *ps->p != '"') return 0;
	ps->p++;
	while (ps->p < ps->end && *ps->p != '"') {
		char c = *ps->p++;
		if ((unsigned char)c < 0x20) return 0;
		if (c != '\\') {
			put(&b, &c, 1);
			continue;
		}
		if (ps->p >= ps->end) return 0;
		c = *ps->p++;
		const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
		const char *at = strchr(from, c);
		if (c && at) {
			put(&b, to + (at - from), 1);
		} else if (c == 'u') {
			unsigned long u, lo;
			if (!hex4(ps, &u)) return 0;
			/* a lone surrogate becomes U+FFFD, as a JavaScript string printed as UTF-8 */
			if (u >= 0xD800 && u < 0xDC00 && ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
				struct parser save = *ps;
				ps->p += 2;
				if (hex4(ps, &lo) && lo >= 0xDC00 && lo < 0xE000) u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
				else *ps = save;
			}
			if (u >= 0xD800 && u < 0xE000) u = 0xFFFD;
			utf8(&b, u);
		} else {
			return 0;
		}
	}
	if (ps->p >= ps->end) return 0;
	ps->p++;
	*out = b.p;
	*len = b.n;
	return 1;
}

static struct json *jvalue(struct parser *ps);

static struct json *jnew(enum jtype t) {
	struct json *j = calloc(1, sizeof *j);
	if (!j) _exit(1);
	j->type = t;
	return j;
}

static int lit(struct parser *ps, const char *w) {
	size_t n = strlen(w);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0) return 0;
	ps->p += n;
	return 1;
}

static struct json *jvalue(struct parser *ps) {
	ws(ps);
	if (ps->p >= ps->end || ++ps->depth > 64) return NULL;
	struct json *j = NULL;
	char c = *ps->p;
	if (c == '{' || c == '[') {
		j = jnew(c == '{' ? J_OBJ : J_ARR);
		char close = c == '{' ? '}' : ']';
		ps->p++;
		ws(ps);
		struct json **tail = &j->kids;
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
		} else {
			for (;;) {
				char *key = NULL;
				size_t klen;
				ws(ps);
				if (j->type == J_OBJ) {
					if (!jstring(ps, &key, &klen)) return NULL;
					ws(ps);
					if (ps->p >= ps->end || *ps->p++ != ':') return NULL;
				}
				struct json *v = jvalue(ps);
				if (!v) return NULL;
				v->key = key;
				*tail = v;
				tail = &v->next;
				j->nkids++;
				ws(ps);
				if (ps->p >= ps->end) return NULL;
				if (*ps->p == ',') {
					ps->p++;
					continue;
				}
				if (*ps->p++ != close) return NULL;
				break;
			}
		}
	} else if (c == '"') {
		j = jnew(J_STR);
		if (!jstring(ps, &j->str, &j->len)) return NULL;
	} else if (lit(ps, "true") || lit(ps, "false")) {
		j = jnew(J_BOOL);
		j->boolean = ps->p[-1] == 'e' && ps->p[-2] == 'u';
	} else if (lit(ps, "null")) {
		j = jnew(J_NULL);
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		char tmp[64];
		size_t n = 0;
		while (ps->p < ps->end && n < sizeof tmp - 1 && strchr("+-.eE0123456789", *ps->p)) tmp[n++] = *ps->p++;
		tmp[n] = 0;
		char *e;
		j = jnew(J_NUM);
		j->num = strtod(tmp, &e);
		if (*e) return NULL;
	}
	ps->depth--;
	return j;
}

static struct json *jparse(const char *p, size_t n) {
	struct parser ps = {p, p + n, 0};
	struct json *j = jvalue(&ps);
	ws(&ps);
	return j && ps.p == ps.end ? j : NULL;
}

static struct json *jget(const struct json *o, const char *key) {
	if (!o || o->type != J_OBJ) return NULL;
	struct json *found = NULL; /* JSON.parse: the last of equal keys wins */
	for (struct json *k = o->kids; k; k = k->next)
		if (!strcmp(k->key, key)) found = k;
	return found;
}
static const char *jstr(const struct json *o, const char *key) {
	struct json *v = jget(o, key);
	return v && v->type == J_STR ? v->str : NULL;
}

/* ---- the CLI's texts ---- */

/* io.err: the text, and a newline unless it ends with one */
static void line(struct buf *out, const char *s, size_t n) {
	put(out, s, n);
	if (!n || s[n - 1] != '\n') put(out, "\n", 1);
}

/* A JavaScript number as String() prints an integer one */
static void put_num(struct buf *b, const struct json *v) {
	char t[64];
	if (!v) {
		puts_(b, "undefined");
		return;
	}
	if (v->type == J_NUM && v->num == (double)(long long)v->num) snprintf(t, sizeof t, "%lld", (long long)v->num);
	else if (v->type == J_NUM) snprintf(t, sizeof t, "%.17g", v->num);
	else if (v->type == J_STR) {
		put(b, v->str, v->len);
		return;
	} else snprintf(t, sizeof t, "%s", v->type == J_BOOL ? (v->boolean ? "true" : "false") : "null");
	puts_(b, t);
}

/* The error codes the CLI ends with 2 for (src/cli/main.ts); every other one is 1. */
static int describe_error(struct buf *out, const struct json *body, int status) {
	struct buf t = {0};
	puts_(&t, "jailyard: ");
	int parts = 0;
	const struct json *pos = jget(body, "pos");
	if (pos && pos->type == J_OBJ) {
		put_num(&t, jget(pos, "file"));
		puts_(&t, ":");
		put_num(&t, jget(pos, "line"));
		puts_(&t, ":");
		put_num(&t, jget(pos, "col"));
		parts++;
	}
	static const struct { const char *key, *before, *after; } place[] = {
		{"jail", "jail \"", "\""}, {"param", "parameter \"", "\""}, {"key", "key \"", "\""}, {"step", "step ", ""}};
	for (size_t i = 0; i < sizeof place / sizeof place[0]; i++) {
		const struct json *v = jget(body, place[i].key);
		if (!v || v->type == J_NULL) continue;
		if (parts++) puts_(&t, ", ");
		puts_(&t, place[i].before);
		put_num(&t, v);
		puts_(&t, place[i].after);
	}
	if (parts) puts_(&t, ": ");
	const struct json *message = jget(body, "message");
	if (message && message->type != J_NULL) {
		put_num(&t, message);
	} else {
		char h[32];
		snprintf(h, sizeof h, "HTTP %d", status);
		puts_(&t, h);
	}
	for (const char *k = "excerpt"; k; k = strcmp(k, "excerpt") ? NULL : "output") {
		const struct json *v = jget(body, k);
		if (!v || v->type == J_NULL || (v->type == J_STR && !v->len)) continue;
		puts_(&t, "\n");
		put_num(&t, v);
	}
	line(out, t.p, t.n);
	const char *code = jstr(body, "code");
	return code && !strcmp(code, "JY_ERR_USAGE") ? 2 : 1;
}

/* ---- HTTP over the unix socket ---- */

static int write_all(int fd, const char *p, size_t n) {
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) return 0;
		p += w;
		n -= (size_t)w;
	}
	return 1;
}

static void flush_err(struct buf *out) {
	if (out->n) (void)write_all(2, out->p, out->n);
}

/* The daemon went away after it had the request: what `--host` says then. */
__attribute__((noreturn)) static void lost(const char *sock, const char *why) {
	fprintf(stderr, "jailyard: step connect: cannot reach the daemon at unix://%s: %s\n", sock, why);
	exit(1);
}

/* The daemon's unix socket for `state` (NULL: the default), connected; falls back to the CLI
 * when there is none, or it is not root's own 0600 one as `jailyard serve` makes it. */
static int connect_daemon(const char *state, struct sockaddr_un *addr) {
	*addr = (struct sockaddr_un){.sun_family = AF_UNIX};
	/* the socket `jailyard serve` makes for that state folder (src/cli/commands/serve.ts) */
	int len = state ? snprintf(addr->sun_path, sizeof addr->sun_path, "%s/jailyard.sock", state)
	                : snprintf(addr->sun_path, sizeof addr->sun_path, "/var/run/jailyard.sock");
	if (len < 0 || (size_t)len >= sizeof addr->sun_path) fallback();
	/* only root's own socket, 0600 as serve makes it: anyone else's could answer anything */
	struct stat st;
	if (geteuid() != 0 || lstat(addr->sun_path, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 07777) != 0600)
		fallback();
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)addr, sizeof *addr) != 0) fallback();
	/* the lstat above looked at a path whose folders may change before the connect: the
	 * process that answers must be root's too */
	struct ucred peer;
	socklen_t plen = sizeof peer;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &plen) != 0 || peer.uid != 0) fallback();
	signal(SIGPIPE, SIG_IGN);
	return fd;
}

struct answer {
	int status;
	char *content;
	size_t clen;
};

/* Sends `req` (a whole HTTP request asking to close the connection) and reads the answer.
 * A request the daemon did not get whole was not run: the CLI can still do it. */
static struct answer roundtrip(int fd, const char *sock, const struct buf *req) {
	if (!write_all(fd, req->p, req->n)) fallback();
	struct buf res = {0};
	char chunk[65536];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) lost(sock, errno == ECONNRESET ? "ECONNRESET" : strerror(errno));
		if (r == 0) break;
		put(&res, chunk, (size_t)r);
	}
	close(fd);
	struct answer a;
	char *hend = res.p ? strstr(res.p, "\r\n\r\n") : NULL;
	if (!hend || sscanf(res.p, "HTTP/1.%*d %d", &a.status) != 1) lost(sock, "other side closed");
	*hend = 0;
	a.content = hend + 4;
	a.clen = res.n - (size_t)(a.content - res.p);
	/* header names are case-insensitive */
	for (char *h = res.p; *h; h++) *h = (char)((*h >= 'A' && *h <= 'Z') ? *h + 32 : *h);
	if (strstr(res.p, "\r\ntransfer-encoding: chunked")) {
		char *w = a.content;
		char *p = a.content, *end = a.content + a.clen;
		for (;;) {
			char *e;
			unsigned long size = strtoul(p, &e, 16);
			char *crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
			if (!crlf || e == p) lost(sock, "other side closed");
			p = crlf + 2;
			if (!size) break;
			/* the size is the other side's word: compared without size + 2 (it may wrap) */
			if ((size_t)(end - p) < 2 || size > (size_t)(end - p) - 2) lost(sock, "other side closed");
			memmove(w, p, size);
			w += size;
			p += size + 2;
		}
		a.clen = (size_t)(w - a.content);
	} else {
		char *cl = strstr(res.p, "\r\ncontent-length:");
		if (cl) {
			unsigned long want = strtoul(cl + 17, NULL, 10);
			if (want > a.clen) lost(sock, "other side closed");
			a.clen = want;
		}
	}
	return a;
}

/*
 * jail(8), jls(8) or `jailyard ls` with ARGS, run by the daemon as the CLI runs them
 * (src/api/host-tools.ts, src/cli/host-front.ts): the arguments go as they are, each ending
 * with a NUL byte; the answer is "STATUS OUTLEN ERRLEN\n", stdout's bytes, stderr's bytes.
 * A 4xx answer means nothing was done (a form the daemon does not run, an older daemon, a
 * caller it refuses): the CLI runs the command instead.
 */
static int host_tool(const char *state, const char *verb, int argc, char **argv) {
	struct buf body = {0}, req = {0};
	put(&body, "", 0);
	for (int k = 0; k < argc; k++) put(&body, argv[k], strlen(argv[k]) + 1);
	struct sockaddr_un addr;
	int fd = connect_daemon(state, &addr);
	char head[256];
	snprintf(head, sizeof head,
	         "POST /v1/host/%s HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/octet-stream\r\n"
	         "content-length: %zu\r\nconnection: close\r\n\r\n",
	         verb, body.n);
	puts_(&req, head);
	put(&req, body.p, body.n);
	struct answer a = roundtrip(fd, addr.sun_path, &req);
	if (a.status >= 400 && a.status < 500) fallback();
	int status = -1;
	size_t olen = 0, elen = 0;
	char *nl = a.status == 200 ? memchr(a.content, '\n', a.clen) : NULL;
	if (!nl || sscanf(a.content, "%d %zu %zu", &status, &olen, &elen) != 3 || status < 0 || status > 255 ||
	    olen > a.clen || elen > a.clen - olen || (size_t)(nl + 1 - a.content) != a.clen - olen - elen) {
		struct buf out = {0};
		struct json *json = a.clen ? jparse(a.content, a.clen) : NULL;
		int code = describe_error(&out, json && json->type == J_OBJ ? json : NULL, a.status);
		flush_err(&out);
		return code;
	}
	if (getenv("JAILYARD_TRACE_FAST")) fputs("jailyard: ctl: fast path\n", stderr);
	(void)write_all(1, nl + 1, olen);
	(void)write_all(2, nl + 1 + olen, elen);
	return status;
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: jy-ctl NODE SCRIPT ARG...\n");
		return 127;
	}
	fallback_argv = &argv[1];
	int i = 3;
	const char *state = NULL;
	if (i < argc && !strcmp(argv[i], "--state")) {
		if (i + 1 >= argc) fallback();
		state = argv[i + 1];
		if (!plain_dir(state)) fallback();
		i += 2;
	}
	if (i >= argc) fallback();
	const char *verb = argv[i++], *past = NULL;
	int tool = !strcmp(verb, "jail") || !strcmp(verb, "jls") || !strcmp(verb, "ls");
	if (!strcmp(verb, "start")) past = "started";
	else if (!strcmp(verb, "stop")) past = "stopped";
	else if (!strcmp(verb, "restart")) past = "restarted";
	else if (!tool) fallback();
	if (!tool) {
		if (i >= argc) fallback();
		for (int k = i; k < argc; k++)
			if (!plain_name(argv[k])) fallback();
	}
	if (getenv("JAILYARD_HOST") || (getenv("JAILYARD_SRC") && !strcmp(getenv("JAILYARD_SRC"), "1"))) fallback();
	/* settings of the caller's environment that the CLI would act on and the daemon has its own of */
	static const char *const own_env[] = {"JAILYARD_DEFAULTS", "JAILYARD_USERNS_REGISTRY", "JAILYARD_STORE_BUSY_MS",
	                                      "JAILYARD_SPAWNER", "JAILYARD_CRASH_AT"};
	for (size_t k = 0; k < sizeof own_env / sizeof own_env[0]; k++)
		if (getenv(own_env[k])) fallback();
	if (!state) {
		state = getenv("JAILYARD_STATE");
		if (state && !plain_dir(state)) fallback();
	}
	/* the daemon prints for a pipe: on a terminal, the values a jail chose (hostnames, meta,
	 * env) are shown escaped, which only the caller's own ls and jls know to do
	 * (src/cli/jls.ts) */
	if (tool && strcmp(verb, "jail") && isatty(1)) fallback();
	if (tool) return host_tool(state, verb, argc - i, argv + i);

	struct sockaddr_un addr;
	int fd = connect_daemon(state, &addr);
	const char *sock = addr.sun_path;

	/* what the CLI sends with --host (`parallel` is its -p default), and progress: true */
	struct buf body = {0}, req = {0};
	puts_(&body, "{\"names\":[");
	for (int k = i; k < argc; k++) {
		if (k > i) puts_(&body, ",");
		put_json_string(&body, argv[k]);
	}
	puts_(&body, "],\"parallel\":1,\"progress\":true}");
	char head[256];
	snprintf(head, sizeof head,
	         "POST /v1/batch/%s HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
	         "content-length: %zu\r\nconnection: close\r\n\r\n",
	         verb, body.n);
	puts_(&req, head);
	put(&req, body.p, body.n);
	struct answer a = roundtrip(fd, sock, &req);
	int status = a.status;
	char *content = a.content;
	size_t clen = a.clen;
	/* the unix socket refuses a caller inside a jail (401); an unknown route (404) or a
	 * request body it does not know (400 without outcomes: a daemon from before `progress`,
	 * which allows no other property) is an older daemon's. Nothing was done: the CLI does it */
	struct json *json = clen ? jparse(content, clen) : NULL;
	const char *code = jstr(json, "code");
	if (status == 401 || (status == 404 && code && !strcmp(code, "JY_ERR_ROUTE_NOT_FOUND")) ||
	    (status == 400 && !jget(json, "outcomes")))
		fallback();
	if (getenv("JAILYARD_TRACE_FAST")) fputs("jailyard: ctl: fast path\n", stderr);

	struct buf out = {0};
	int exit_code = 0;
	struct json *outcomes = jget(json, "outcomes");
	if (outcomes) {
		/* a batch answers with its outcomes whatever its status (src/api/client.ts batch) */
		struct json *progress = jget(json, "progress");
		if (progress && progress->type == J_ARR)
			for (struct json *p = progress->kids; p; p = p->next) {
				struct buf t = {0};
				put_num(&t, jget(p, "jail"));
				puts_(&t, ": ");
				put_num(&t, jget(p, "text"));
				line(&out, t.p, t.n);
				free(t.p);
			}
		if (outcomes->type == J_ARR)
			for (struct json *o = outcomes->kids; o; o = o->next) {
				struct buf t = {0};
				put_num(&t, jget(o, "name"));
				puts_(&t, ": ");
				const char *s = jstr(o, "status");
				struct json *m = jget(o, "message");
				if (s && !strcmp(s, "ok")) {
					puts_(&t, past);
				} else {
					if (!s || strcmp(s, "skipped")) puts_(&t, "failed: ");
					if (m && m->type != J_NULL) put_num(&t, m);
					else put_num(&t, jget(o, "status"));
				}
				line(&out, t.p, t.n);
				free(t.p);
			}
		struct json *ok = jget(json, "ok");
		if (!ok || ok->type != J_BOOL || !ok->boolean) exit_code = 1;
	} else if (clen && !json) {
		/* not JSON: the text is the message (src/api/client.ts call) */
		struct buf t = {0};
		puts_(&t, "jailyard: ");
		put(&t, content, clen);
		line(&out, t.p, t.n);
		exit_code = 1;
	} else {
		exit_code = describe_error(&out, json && json->type == J_OBJ ? json : NULL, status);
	}
	flush_err(&out);
	return exit_code;
}
