/* jy-peer: who is on the other end of the daemon's unix sockets (src/api/peer.ts).
 *
 * Node cannot ask SO_PEERCRED. This helper runs for the daemon's lifetime as its child: for
 * each line "FD\n" on stdin it takes a copy of the daemon's descriptor FD (pidfd_getfd, the
 * parent is root and we are its child), asks the kernel for the peer's credentials and
 * answers "FD PID UID MNTNS PIDNS\n" (namespaces as /proc/PID/ns links, "-" when gone), or
 * "FD - - - -\n" when it cannot tell. The daemon decides; this only reports.
 *
 * SO_PEERCRED names the process that connected, by number. That process may have exited
 * since (a child of it now holds the socket) and its number been reused by another: so the
 * namespaces are read only while a pidfd of the connecting process itself (SO_PEERPIDFD,
 * Linux 6.5; else pidfd_open of the number, which cannot tell reuse before it) shows it still
 * alive afterwards; otherwise they are "-", which the daemon refuses. */
#define _GNU_SOURCE
#define DIE_PREFIX "jy-peer"
#define DIE_STATUS 1
#include <limits.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include "jy-common.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

static void ns_link(pid_t pid, const char *kind, char *out, size_t size) {
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, kind);
	ssize_t n = readlink(path, out, size - 1);
	if (n <= 0) {
		strcpy(out, "-");
		return;
	}
	out[n] = '\0';
}

int main(void) {
	int pidfd = (int)syscall(SYS_pidfd_open, getppid(), 0);
	if (pidfd < 0) die_errno("pidfd_open");
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		char *end;
		long fd = strtol(line, &end, 10);
		if (end == line || fd < 0 || fd > INT_MAX) continue;
		int copy = (int)syscall(SYS_pidfd_getfd, pidfd, (int)fd, 0);
		struct ucred cred;
		socklen_t len = sizeof cred;
		int ok = copy >= 0 && getsockopt(copy, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0;
		int peer = -1;
		if (ok) {
			socklen_t plen = sizeof peer;
			if (getsockopt(copy, SOL_SOCKET, SO_PEERPIDFD, &peer, &plen) != 0) peer = (int)syscall(SYS_pidfd_open, cred.pid, 0);
		}
		if (copy >= 0) close(copy);
		if (!ok) {
			printf("%ld - - - -\n", fd);
		} else {
			char mnt[64], pidns[64];
			ns_link(cred.pid, "mnt", mnt, sizeof mnt);
			ns_link(cred.pid, "pid", pidns, sizeof pidns);
			/* read while the connecting process itself was alive, or not at all */
			if (peer < 0 || syscall(SYS_pidfd_send_signal, peer, 0, NULL, 0) != 0) {
				strcpy(mnt, "-");
				strcpy(pidns, "-");
			}
			printf("%ld %d %u %s %s\n", fd, (int)cred.pid, (unsigned)cred.uid, mnt, pidns);
		}
		if (peer >= 0) close(peer);
		fflush(stdout);
	}
	return 0;
}
