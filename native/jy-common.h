/*
 * What jailyard's native helpers share: fatal errors with errno, and moving oneself into a
 * cgroup. Each helper defines DIE_PREFIX and DIE_STATUS before including this.
 */
#ifndef JY_COMMON_H
#define JY_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Prints "PREFIX: message: strerror(errno)" (errno only when set) and exits DIE_STATUS. */
static void die(const char *fmt, ...) {
	va_list ap;
	int err = errno;
	fputs(DIE_PREFIX ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err) fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	exit(DIE_STATUS);
}

/* Moves this process into the cgroup DIR (writing "0": the writer itself). */
static void join_cgroup(const char *dir) {
	char path[4096];
	errno = 0;
	if ((size_t)snprintf(path, sizeof path, "%s/cgroup.procs", dir) >= sizeof path) die("cgroup path too long");
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1) die("cannot join cgroup %s", dir);
	close(fd);
}

#endif
