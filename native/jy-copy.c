/* jy-copy: the first LENGTH bytes of one file into another, holes kept, for host-side copies
 * of a jail's files (src/portable/tree.ts: snapshot, clone, rollback) that Node cannot make
 * safely: it has no SEEK_DATA, and copyFileSync copies the size it finds when it starts, not
 * the size the walk looked at.
 *
 *   jy-copy LENGTH   stdin: the source (a regular file, the descriptor the walk checked);
 *                    stdout: the copy (a regular file, empty). Copies at most LENGTH bytes
 *                    (fewer when the source is shorter now), only its data: the holes
 *                    (SEEK_DATA/SEEK_HOLE; where the filesystem has none, every block is read)
 *                    and blocks of zeros are not written. The copy's size is what was read.
 *
 * The bound is the point: the source may be written while it is copied (a jail sharing the
 * tree), and a file made 10 TiB long by ftruncate after the walk's lstat, or grown as fast as
 * it is read, must not be copied past the size the walk saw (which the space check counted).
 * Exits 0, or 1 with a message (ENOSPC named as strerror says: "No space left on device"). */
#define _GNU_SOURCE
#define DIE_PREFIX "jy-copy"
#define DIE_STATUS 1
#include <sys/stat.h>
#include "jy-common.h"

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

int main(int argc, char **argv) {
	if (argc != 2) die("usage: jy-copy LENGTH < SOURCE > COPY");
	char *end;
	errno = 0;
	long long len = strtoll(argv[1], &end, 10);
	if (errno || *end != '\0' || end == argv[1] || len < 0) die("bad length %s", argv[1]);
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
