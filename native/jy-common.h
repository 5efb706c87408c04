/*
 * What jailyard's native helpers share: fatal errors (die for a message, die_errno for a
 * failed call), moving oneself into a cgroup, and dropping capabilities. Each helper
 * defines DIE_PREFIX and DIE_STATUS before including this.
 */
#ifndef JY_COMMON_H
#define JY_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* Prints "PREFIX: message" (plus ": strerror(ERR)" when ERR is not 0) and exits DIE_STATUS. */
__attribute__((noreturn)) static void jy_vdie(int err, const char *fmt, va_list ap) {
	fputs(DIE_PREFIX ": ", stderr);
	vfprintf(stderr, fmt, ap);
	if (err) fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	exit(DIE_STATUS);
}

/* A fatal error that is not a failed call: the message alone. */
__attribute__((noreturn, format(printf, 1, 2), unused)) static void die(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	jy_vdie(0, fmt, ap);
}

/* A call failed: the message and what errno says. Call right after the failing call. */
__attribute__((noreturn, format(printf, 1, 2), unused)) static void die_errno(const char *fmt, ...) {
	int err = errno;
	va_list ap;
	va_start(ap, fmt);
	jy_vdie(err, fmt, ap);
}

/* Moves this process into the cgroup DIR (writing "0": the writer itself). */
__attribute__((unused)) static void join_cgroup(const char *dir) {
	char path[4096];
	if ((size_t)snprintf(path, sizeof path, "%s/cgroup.procs", dir) >= sizeof path) die("cgroup path too long");
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1) die_errno("cannot join cgroup %s", dir);
	close(fd);
}

/* KEEP: comma-separated capability numbers, e.g. "0,1,3"; 0 on a malformed list. */
__attribute__((unused)) static int parse_caps(const char *keep, unsigned long long *mask) {
	*mask = 0;
	for (const char *p = keep; *p != '\0';) {
		char *end;
		unsigned long cap = strtoul(p, &end, 10);
		if (end == p || cap > 63 || (*end != ',' && *end != '\0')) return 0;
		*mask |= 1ULL << cap;
		p = *end == ',' ? end + 1 : end;
	}
	return 1;
}

/*
 * Drops every capability not in MASK from the bounding set and clears the ambient set: the
 * next exec (as root) gets at most MASK. Called by the host's own helper right before it
 * runs anything of the jail, never by a program of the jail's tree.
 */
__attribute__((unused)) static void drop_capabilities(unsigned long long mask) {
	for (int cap = 0; cap < 64; cap++) {
		if (mask & (1ULL << cap)) continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
			if (errno == EINVAL) break; /* past the kernel's last capability */
			die_errno("cannot drop capability %d", cap);
		}
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
		die_errno("cannot clear the ambient capabilities");
}

#endif
