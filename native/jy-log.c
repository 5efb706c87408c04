/*
 * jy-log: the host-side writer of a jail's console log, with a size limit and one rotation.
 *
 *   jy-log [--max BYTES] [--index] LOGFILE
 *
 * It makes a pipe whose read end is its fd 0, prints "ready" on stdout, and from then on
 * copies what arrives in the pipe to LOGFILE. Writers open /proc/<its pid>/fd/0 for
 * writing (jy-stage's stderr, the exec.* commands' output): the jail holds only a pipe,
 * never the host file. When the file would grow past BYTES it is renamed to LOGFILE.1
 * (replacing the one before) and a new one is started: at most ~2 x BYTES on disk.
 *
 * Its lifetime is the writers': when whoever started it closes its stdout (after the
 * first writer opened the pipe), it closes its own write end; once every writer is gone
 * (the jail's processes ended), it writes what is left and exits. It never blocks the
 * writers for long: a reader thread takes everything from the pipe into a buffer at once;
 * when the file cannot keep up (a slow disk) the oldest buffered bytes give way, and the
 * count of what was dropped is written into the log.
 *
 * The log's directory is opened once (its last component never followed if a symlink);
 * the file is opened with O_NOFOLLOW, and a name that is not a regular file of its own
 * (a symlink, a FIFO, a hard link) is removed, never written through. Several jy-log on one file (the
 * jail's and an exec.* command's) take turns by flock on the directory, so the rotation
 * sees every writer's bytes. Errors go to stdout before "ready" (exit 111), else stderr.
 *
 * With --index (jailyard's own console log in the state folder, never an operator's
 * exec.consolelog), it also keeps LOGFILE.idx, a time index that `jailyard logs --since`
 * reads (src/runtime/logs.ts), so the log's bytes stay exactly what the jail wrote. One fixed
 * width record per run of writes: "FIRST LAST OFFSET\n" (IDX_REC bytes: unix seconds of the
 * run's first and last write, the log's size when the run began), i.e. the bytes from OFFSET
 * up to the next record's OFFSET were written between FIRST and LAST. A write in a new second
 * starts a new record, one in the same second extends LAST in place. Once the index reaches
 * a cap (1/16 of the limit, at least 64K) the last record only grows (coarser, never wrong).
 * It rotates with the log (LOGFILE.1.idx) and is opened as the log is: never through a
 * symlink, never a non-regular or hard-linked file.
 */
#define _GNU_SOURCE
#define DIE_PREFIX "jailyard log"
#define DIE_STATUS 111
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include "jy-common.h"

#define RING (256 * 1024)
#define CHUNK (64 * 1024)
#define MIN_MAX (64 * 1024)

static char ring[RING];
static size_t head, used;
static unsigned long long dropped; /* by the reader, under the lock */
static unsigned long long unwritten; /* by the writer (the main thread) only */
static int eof;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;

static int dirfd_ = -1, logfd = -1;
static const char *base;
static char rotated[512], fresh[512];
static unsigned long long max_bytes = 4ULL << 20;
static int indexing;
static char idxname[512], idxrotated[512];
#define IDX_REC 35

/* Copies n bytes into the ring at its end (n <= RING - used). */
static void ring_put(const char *p, size_t n) {
	size_t at = (head + used) % RING, first = RING - at < n ? RING - at : n;
	memcpy(ring + at, p, first);
	memcpy(ring, p + first, n - first);
	used += n;
}

/* Takes everything from the pipe as it comes. When the ring is full the OLDEST bytes in it
 * give way (counted as dropped): the newest lines always reach the log. */
static void *reader(void *arg) {
	(void)arg;
	static char buf[CHUNK];
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n < 0 && errno == EINTR) continue;
		pthread_mutex_lock(&lock);
		if (n <= 0) {
			eof = 1;
			pthread_cond_signal(&more);
			pthread_mutex_unlock(&lock);
			return NULL;
		}
		size_t over = used + (size_t)n > RING ? used + (size_t)n - RING : 0;
		head = (head + over) % RING;
		used -= over;
		dropped += over;
		ring_put(buf, (size_t)n);
		pthread_cond_signal(&more);
		pthread_mutex_unlock(&lock);
	}
}

/* Once the starter closes our stdout, our own write end goes: EOF then means no writer. */
static void *waiter(void *arg) {
	int w = *(int *)arg;
	struct pollfd p = { .fd = 1, .events = 0 };
	while (poll(&p, 1, -1) < 0 && errno == EINTR) {}
	close(w);
	return NULL;
}

/* Opens the log: never through a symlink, never a non-regular or hard-linked file. */
static int open_log(void) {
	for (int attempt = 0; attempt < 3; attempt++) {
		struct stat pre;
		/* never open a device or FIFO at all (an open alone may act) */
		if (fstatat(dirfd_, base, &pre, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(pre.st_mode) && !S_ISDIR(pre.st_mode)) {
			unlinkat(dirfd_, base, 0);
			continue;
		}
		int fd = openat(dirfd_, base, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0640);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1) return fd;
		if (fd >= 0) close(fd);
		/* a symlink (ELOOP), a FIFO, a device or a hard link where the log belongs: the
		 * name goes (never what it points to); a directory is moved aside */
		if (unlinkat(dirfd_, base, 0) != 0 && errno != ENOENT && renameat(dirfd_, base, dirfd_, rotated) != 0) break;
	}
	fprintf(stderr, "jailyard log: cannot open %s as a plain file: %s\n", base, strerror(errno));
	return -1;
}

/* LOGFILE -> LOGFILE.1, a new empty LOGFILE; the name never misses (readers tail it):
 * the new file is made aside and exchanged with the old one in one step. */
static void rotate_index(void) {
	if (indexing && renameat(dirfd_, idxname, dirfd_, idxrotated) != 0) unlinkat(dirfd_, idxrotated, 0);
}

static void rotate(void) {
	int fd = -1;
	for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
		fd = openat(dirfd_, fresh, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0640);
		if (fd < 0) unlinkat(dirfd_, fresh, 0); /* a leftover of a crash */
	}
	if (fd >= 0 && renameat2(dirfd_, fresh, dirfd_, base, RENAME_EXCHANGE) == 0) {
		renameat(dirfd_, fresh, dirfd_, rotated);
		rotate_index();
		close(logfd);
		logfd = fd;
		return;
	}
	if (fd >= 0) {
		close(fd);
		unlinkat(dirfd_, fresh, 0);
	}
	if (renameat(dirfd_, base, dirfd_, rotated) == 0) {
		rotate_index();
		close(logfd);
		logfd = open_log();
	}
}

static void write_all(const char *p, size_t n) {
	while (n > 0) {
		ssize_t w = write(logfd, p, n);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) {
			unwritten += n;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/* Notes in the index that bytes from the log's current size on are written now (under the
 * flock, before they are written). */
static void index_note(void) {
	if (!indexing || logfd < 0) return;
	struct stat lst, ist;
	if (fstat(logfd, &lst) != 0) return;
	long long now = (long long)time(NULL);
	int fd = openat(dirfd_, idxname, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0640);
	if (fd < 0 && errno == ELOOP) {
		unlinkat(dirfd_, idxname, 0);
		return;
	}
	if (fd < 0) return;
	if (fstat(fd, &ist) != 0 || !S_ISREG(ist.st_mode) || ist.st_nlink != 1) {
		close(fd);
		unlinkat(dirfd_, idxname, 0);
		return;
	}
	long long size = (long long)ist.st_size - (long long)ist.st_size % IDX_REC;
	long long cap = (long long)(max_bytes / 16 < MIN_MAX ? MIN_MAX : max_bytes / 16);
	char rec[64];
	long long first = 0, last = 0, off = 0;
	int have = size >= IDX_REC && pread(fd, rec, IDX_REC, size - IDX_REC) == IDX_REC && (rec[IDX_REC] = '\0', sscanf(rec, "%lld %lld %lld", &first, &last, &off) == 3);
	if (have && (last == now || size >= cap)) {
		/* the same run (or the index is full): its last second moves on */
		if (last != now && now > last) {
			snprintf(rec, sizeof rec, "%010lld %010lld %012lld\n", first, now, off);
			if (pwrite(fd, rec, IDX_REC, size - IDX_REC) != IDX_REC) {}
		}
	} else {
		snprintf(rec, sizeof rec, "%010lld %010lld %012lld\n", now, now, (long long)lst.st_size);
		if (pwrite(fd, rec, IDX_REC, size) != IDX_REC) {}
	}
	close(fd);
}

/* Appends one chunk, rotating first when it would take the file past the limit. */
static void put(const char *p, size_t n) {
	flock(dirfd_, LOCK_EX);
	struct stat now, mine;
	/* another jy-log may have rotated: write to the file that has the name now */
	if (logfd < 0 || fstatat(dirfd_, base, &now, AT_SYMLINK_NOFOLLOW) != 0 || fstat(logfd, &mine) != 0 || now.st_ino != mine.st_ino || now.st_dev != mine.st_dev) {
		if (logfd >= 0) close(logfd);
		logfd = open_log();
	}
	if (logfd >= 0 && fstat(logfd, &mine) == 0 && mine.st_size > 0 && (unsigned long long)mine.st_size + n > max_bytes) rotate();
	if (n > max_bytes) {
		unwritten += n - max_bytes;
		p += n - max_bytes;
		n = max_bytes;
	}
	if (logfd >= 0) {
		index_note();
		write_all(p, n);
	} else unwritten += n;
	flock(dirfd_, LOCK_UN);
}

int main(int argc, char **argv) {
	int i = 1;
	if (i + 1 < argc && !strcmp(argv[i], "--max")) {
		max_bytes = strtoull(argv[i + 1], NULL, 10);
		i += 2;
	}
	if (i < argc && !strcmp(argv[i], "--index")) {
		indexing = 1;
		i++;
	}
	if (argc - i != 1 || max_bytes < MIN_MAX) {
		printf("usage: jy-log [--max BYTES (>= %d)] [--index] LOGFILE\n", MIN_MAX);
		return 2;
	}
	/* errors before "ready" go to the starter, who reads our stdout */
	dup2(1, 2);
	signal(SIGPIPE, SIG_IGN);
	char *path = argv[i], *slash = strrchr(path, '/');
	char dir[4096];
	if (!slash || !slash[1] || (size_t)(slash - path) >= sizeof dir) die("not an absolute file path: %s", path);
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	base = slash + 1;
	if ((size_t)snprintf(rotated, sizeof rotated, "%s.1", base) >= sizeof rotated || (size_t)snprintf(fresh, sizeof fresh, "%s.new", base) >= sizeof fresh || (size_t)snprintf(idxname, sizeof idxname, "%s.idx", base) >= sizeof idxname || (size_t)snprintf(idxrotated, sizeof idxrotated, "%s.1.idx", base) >= sizeof idxrotated) die("name too long: %s", base);
	dirfd_ = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd_ < 0) die_errno("cannot open the directory %s", dir);
	logfd = open_log();
	if (logfd < 0) die_errno("cannot open %s", path);

	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0 || dup2(p[0], 0) != 0) die_errno("pipe");
	close(p[0]);
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	pthread_t r, w;
	int rc = pthread_create(&r, NULL, reader, NULL);
	if (rc == 0) rc = pthread_create(&w, NULL, waiter, &p[1]);
	if (rc != 0) {
		errno = rc; /* pthread_create returns its error instead of setting errno */
		die_errno("threads");
	}
	printf("ready\n");
	fflush(stdout);
	/* later messages: nowhere the starter must read (it may be gone) */
	if (devnull >= 0) dup2(devnull, 2);

	static char chunk[CHUNK];
	unsigned long long reported = 0;
	for (;;) {
		pthread_mutex_lock(&lock);
		while (!used && !eof) pthread_cond_wait(&more, &lock);
		size_t n = used < CHUNK ? used : CHUNK, first = RING - head < n ? RING - head : n;
		memcpy(chunk, ring + head, first);
		memcpy(chunk + first, ring, n - first);
		head = (head + n) % RING;
		used -= n;
		unsigned long long lost = dropped - reported + unwritten;
		reported = dropped;
		unwritten = 0;
		int done = eof && !used && !n;
		pthread_mutex_unlock(&lock);
		if (lost) {
			char note[96];
			int len = snprintf(note, sizeof note, "\n[jailyard: %llu bytes of console output dropped]\n", lost);
			put(note, (size_t)len);
		}
		if (n) put(chunk, n);
		if (done) break;
	}
	return 0;
}
