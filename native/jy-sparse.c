/* jy-sparse: where a file's data is, without reading its holes: lseek(2)'s SEEK_DATA and
 * SEEK_HOLE, which Node has no API for. An export (src/portable/archive.ts) stores a sparse
 * file as a GNU tar sparse entry: its data regions only.
 *
 *   jy-sparse SIZE MAX < file
 *
 * reads the file on its stdin (the descriptor the caller opened and checked: no path is
 * resolved here) and prints its data regions below SIZE (the size the caller recorded),
 * one "OFFSET LENGTH\n" a line, in order, at most MAX lines: the MAX-th region reaches to
 * SIZE (holes and all), so the output and the work stay bounded however many holes the
 * file has. A filesystem without SEEK_DATA reports the whole file as data (one region).
 * Exit 1 with a message on an error. */
#define _GNU_SOURCE
#define DIE_PREFIX "jy-sparse"
#define DIE_STATUS 1
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include "jy-common.h"

static long long number(const char *s, const char *what) {
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0) die("%s: not a number: %s", what, s);
	return v;
}

int main(int argc, char **argv) {
	if (argc != 3) die("usage: jy-sparse SIZE MAX < file");
	off_t size = (off_t)number(argv[1], "SIZE");
	long long max = number(argv[2], "MAX");
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
