/*
 * The allow.* parameters that change the jail's seccomp filter, and their bits: a set of them
 * is the index of its filter in the table that native/gen/seccomp-filters.c writes at build
 * time (native/build/jy-seccomp-filters.h), and the set the generator builds each filter for.
 * Shared by the generator and by native/jy-seccomp.h; no libseccomp here.
 */
#ifndef JY_SECCOMP_ALLOW_H
#define JY_SECCOMP_ALLOW_H

#include <string.h>

enum {
	JY_ALLOW_MOUNT = 1 << 0,
	JY_ALLOW_SETTIME = 1 << 1,
	JY_ALLOW_READ_MSGBUF = 1 << 2,
	JY_ALLOW_RAW_SOCKETS = 1 << 3,
	JY_ALLOW_SOCKET_AF = 1 << 4,
	/* how many sets there are (the table's size) */
	JY_ALLOW_SETS = 1 << 5,
};

/* Whether NAME is one of the comma-separated words of ALLOW. */
static int seccomp_allows(const char *allow, const char *name) {
	size_t len = strlen(name);
	for (const char *p = allow; p && *p;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == len && !strncmp(p, name, n)) return 1;
		p = end ? end + 1 : NULL;
	}
	return 0;
}

/* ALLOW ("raw_sockets,socket_af,settime,read_msgbuf,mount", "" for none; other words are not
 * the filter's) as its bits. */
__attribute__((unused)) static unsigned seccomp_allow_bits(const char *allow) {
	static const struct { const char *name; unsigned bit; } words[] = {
		{"mount", JY_ALLOW_MOUNT},
		{"settime", JY_ALLOW_SETTIME},
		{"read_msgbuf", JY_ALLOW_READ_MSGBUF},
		{"raw_sockets", JY_ALLOW_RAW_SOCKETS},
		{"socket_af", JY_ALLOW_SOCKET_AF},
	};
	unsigned bits = 0;
	for (size_t k = 0; k < sizeof words / sizeof *words; k++)
		if (seccomp_allows(allow, words[k].name)) bits |= words[k].bit;
	return bits;
}

#endif
