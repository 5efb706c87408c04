/*
 * jy-capdrop: the first program jailyard runs inside a jail's root (for pid 1 at start and
 * for every `exec`). It is linked statically and bound read-only from the host into the jail
 * at /.jailyard/capdrop, so nothing of the jail's own tree -- its binaries, its libraries,
 * its /etc/ld.so.preload -- runs before the capabilities are dropped. A jailed root that
 * replaces /usr/bin/setpriv or preloads a library gains nothing.
 *
 *   jy-capdrop [--detach-old-root] KEEP -- PROGRAM [ARGS...]
 *
 * KEEP is a comma-separated list of capability numbers that stay in the bounding set; every
 * other capability is dropped from it (and the ambient set is cleared), then PROGRAM is
 * executed (looked up in PATH). With --detach-old-root it first detaches the mount stacked on
 * "." (the host's old root after `pivot_root . .`) and changes to "/".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/prctl.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static int usage(void) {
	fprintf(stderr, "usage: jy-capdrop [--detach-old-root] KEEP -- PROGRAM [ARGS...]\n");
	return 2;
}

int main(int argc, char **argv) {
	int i = 1, detach = 0;
	unsigned long long keep = 0;
	if (i < argc && strcmp(argv[i], "--detach-old-root") == 0) {
		detach = 1;
		i++;
	}
	if (i + 2 >= argc || strcmp(argv[i + 1], "--") != 0)
		return usage();
	for (char *p = argv[i]; *p != '\0';) {
		char *end;
		unsigned long cap = strtoul(p, &end, 10);
		if (end == p || cap > 63 || (*end != ',' && *end != '\0'))
			return usage();
		keep |= 1ULL << cap;
		p = *end == ',' ? end + 1 : end;
	}
	i += 2;
	if (detach) {
		if (umount2(".", MNT_DETACH) != 0) {
			perror("jy-capdrop: cannot detach the old root");
			return 111;
		}
		if (chdir("/") != 0) {
			perror("jy-capdrop: chdir /");
			return 111;
		}
	}
	for (int cap = 0; cap < 64; cap++) {
		if (keep & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
			if (errno == EINVAL)
				break; /* past the kernel's last capability */
			perror("jy-capdrop: PR_CAPBSET_DROP");
			return 111;
		}
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
		perror("jy-capdrop: clearing ambient capabilities");
		return 111;
	}
	execvp(argv[i], &argv[i]);
	fprintf(stderr, "jy-capdrop: cannot run %s: %s\n", argv[i], strerror(errno));
	return 127;
}
