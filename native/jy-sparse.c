/* jy-sparse: where a file's data is, without reading its holes: lseek(2)'s SEEK_DATA and
 * SEEK_HOLE, which Node has no API for. Two uses, both on a descriptor the caller opened and
 * checked (stdin: no path is resolved here), both bounded by a size the caller recorded:
 *
 *   jy-sparse map SIZE MAX < file
 *       prints the file's data regions below SIZE, one "OFFSET LENGTH\n" a line, in order,
 *       at most MAX lines: the MAX-th region reaches to SIZE (holes and all), so the output
 *       and the work stay bounded however many holes the file has. A filesystem without
 *       SEEK_DATA reports the whole file as data (one region). For export's sparse entries
 *       (src/platform/linux/sparse.ts, src/portable/archive.ts).
 *
 *   jy-sparse copy LENGTH < SOURCE > COPY
 *       copies the first LENGTH bytes of SOURCE into COPY (a regular file, empty), holes kept:
 *       only the data regions are read, and blocks of zeros are not written (where the
 *       filesystem has no SEEK_DATA, every block is read). Fewer when the source is shorter
 *       now; the copy's size is what was read. For host-side copies of a jail's files
 *       (src/portable/tree.ts: snapshot, clone, rollback). The bound is the point: the source
 *       may be written while it is copied (a jail sharing the tree), and a file made 10 TiB
 *       long by ftruncate after the walk's lstat, or grown as fast as it is read, must not be
 *       copied past the size the walk saw (which the space check counted).
 *
 * Exit 0, or 1 with a message (ENOSPC named as strerror says: "No space left on device"). */
#define _GNU_SOURCE
#define DIE_PREFIX "jy-sparse"
#define DIE_STATUS 1
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>
#include "jy-common.h"

static long long number(const char *s, const char *what) {
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0) die("%s: not a number: %s", what, s);
	return v;
}

static int map(int argc, char **argv) {
	if (argc != 4) die("usage: jy-sparse map SIZE MAX < file");
	off_t size = (off_t)number(argv[2], "SIZE");
	long long max = number(argv[3], "MAX");
	if (max < 1) die("MAX must be at least 1");
	long long lines = 0;
	off_t pos = 0;
	while (pos < size) {
		off_t data = lseek(0, pos, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO) break; /* no data after pos */
			if (errno == EINVAL) {     /* no SEEK_DATA here: all of it is data */
				data = pos;
			} else
				die_errno("SEEK_DATA at %jd", (intmax_t)pos);
		}
		if (data >= size) break;
		off_t hole;
		if (lines + 1 == max) {
			hole = size;
		} else {
			hole = lseek(0, data, SEEK_HOLE);
			if (hole < 0) {
				if (errno != EINVAL && errno != ENXIO) die_errno("SEEK_HOLE at %jd", (intmax_t)data);
				hole = size;
			}
			if (hole > size) hole = size;
			/* the file changed meanwhile (a hole where SEEK_DATA saw data): to the end */
			if (hole <= data) hole = size;
		}
		printf("%jd %jd\n", (intmax_t)data, (intmax_t)(hole - data));
		lines++;
		pos = hole;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

#define BUF (1 << 20)
#define BLK 4096

static char buf[BUF];
static const char zero[BLK];

/* Writes buf[0..n) at pos of fd 1 but its zero blocks (aligned on the file's offsets). */
static void put(off_t pos, size_t n) {
	size_t off = 0;
	while (off < n) {
		size_t len = BLK - (size_t)((pos + (off_t)off) % BLK);
		if (len > n - off) len = n - off;
		if (memcmp(buf + off, zero, len) != 0) {
			for (size_t w = 0; w < len;) {
				ssize_t r = pwrite(1, buf + off + w, len - w, pos + (off_t)(off + w));
				if (r < 0) die_errno("write");
				w += (size_t)r;
			}
		}
		off += len;
	}
}

/* Copies [from, to) of fd 0; returns where the source ended (to, or earlier at its EOF). */
static off_t copy_range(off_t from, off_t to) {
	off_t pos = from;
	while (pos < to) {
		size_t want = (size_t)(to - pos < BUF ? to - pos : BUF);
		ssize_t n = pread(0, buf, want, pos);
		if (n < 0) die_errno("read");
		if (n == 0) return pos;
		put(pos, (size_t)n);
		pos += n;
	}
	return pos;
}

static int copy(int argc, char **argv) {
	if (argc != 3) die("usage: jy-sparse copy LENGTH < SOURCE > COPY");
	long long len = number(argv[2], "LENGTH");
	struct stat in, out;
	if (fstat(0, &in) < 0 || fstat(1, &out) < 0) die_errno("fstat");
	if (!S_ISREG(in.st_mode) || !S_ISREG(out.st_mode)) die("source and copy must be regular files");
	if (out.st_size != 0) die("the copy is not empty");
	off_t limit = (off_t)len, size = 0, pos = 0;
	for (;;) {
		if (pos >= limit) break;
		off_t data = lseek(0, pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO) {
			/* holes to the end: the source's size now, bounded */
			struct stat now;
			if (fstat(0, &now) < 0) die_errno("fstat");
			size = now.st_size < limit ? now.st_size : limit;
			if (size < pos) size = pos;
			break;
		}
		if (data < 0) {
			/* no SEEK_DATA here: read every block, write the data */
			size = copy_range(pos, limit);
			break;
		}
		if (data >= limit) {
			size = limit;
			break;
		}
		off_t hole = lseek(0, data, SEEK_HOLE);
		if (hole < 0) die_errno("lseek");
		if (hole > limit) hole = limit;
		off_t got = copy_range(data, hole);
		size = got;
		if (got < hole) break; /* shrank meanwhile */
		pos = hole;
	}
	if (ftruncate(1, size) < 0) die_errno("ftruncate");
	return 0;
}

int main(int argc, char **argv) {
	if (argc >= 2 && strcmp(argv[1], "map") == 0) return map(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "copy") == 0) return copy(argc, argv);
	die("usage: jy-sparse map SIZE MAX < file | jy-sparse copy LENGTH < SOURCE > COPY");
}
