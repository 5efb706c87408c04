/*
 * jy-enter: runs a program inside a running jail, like jexec(8), in one static process.
 *
 *   jy-enter [--cgroup DIR]... --target PID [--expect-pidns INODE] --keep-caps KEEP -- PROGRAM [ARGS...]
 *
 * It joins the cgroups DIR (writing "0" to DIR/cgroup.procs), then the ipc, uts, net, pid and
 * mount namespaces of PID (the jail's pid 1), takes PID's root and working directory, and
 * forks (a pid namespace applies to children only). The child drops every capability not
 * in KEEP (comma-separated numbers) from its bounding set and executes PROGRAM, looked up
 * in PATH inside the jail. Nothing of the jail's tree runs before that drop: the jail owns
 * its tree, so any program there (or a library it preloads) may be the jailed root's.
 * With --expect-pidns, PID's pid namespace must be that one (the inode of the link
 * /proc/PID/ns/pid, checked on the descriptor that is then joined): a jail whose pid 1 died
 * and whose pid number was reused is never entered.
 * The parent waits and exits with the child's status (128+signal when it was killed);
 * SIGTERM, SIGINT and SIGHUP sent to it are passed on. Errors: exit 125, message on stderr.
 */
#define _GNU_SOURCE
#define DIE_PREFIX "jy-enter"
#define DIE_STATUS 125
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "jy-common.h"

#define MAX_CG 8

static pid_t child;

static void forward(int sig) {
	if (child > 0) kill(child, sig);
}

int main(int argc, char **argv) {
	const char *cgroups[MAX_CG];
	int ncg = 0, i = 1;
	long target = 0;
	unsigned long long expect_pidns = 0, keep = 0;
	int have_keep = 0;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--cgroup") && i + 1 < argc && ncg < MAX_CG) {
			cgroups[ncg++] = argv[++i];
		} else if (!strcmp(argv[i], "--expect-pidns") && i + 1 < argc) {
			char *end;
			expect_pidns = strtoull(argv[++i], &end, 10);
			if (*end || !expect_pidns) {
				fprintf(stderr, "jy-enter: bad --expect-pidns\n");
				return 125;
			}
		} else if (!strcmp(argv[i], "--keep-caps") && i + 1 < argc) {
			if (!parse_caps(argv[++i], &keep)) {
				fprintf(stderr, "jy-enter: bad --keep-caps\n");
				return 125;
			}
			have_keep = 1;
		} else if (!strcmp(argv[i], "--target") && i + 1 < argc) {
			char *end;
			target = strtol(argv[++i], &end, 10);
			if (*end || target <= 0) target = 0;
		} else {
			break;
		}
	}
	if (!target || !have_keep || i + 1 >= argc || strcmp(argv[i], "--") != 0) {
		fprintf(stderr, "usage: jy-enter [--cgroup DIR]... --target PID [--expect-pidns INODE] --keep-caps KEEP -- PROGRAM [ARGS...]\n");
		return 125;
	}
	char **program = &argv[i + 1];

	for (int n = 0; n < ncg; n++) join_cgroup(cgroups[n]);

	char path[4096];

	/* Open everything of the target first: after the mount namespace, /proc is the jail's. */
	static const struct { const char *name; int type; } ns[] = {
		{"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET}, {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},
	};
	int fds[5];
	for (int n = 0; n < 5; n++) {
		snprintf(path, sizeof path, "/proc/%ld/ns/%s", target, ns[n].name);
		errno = 0;
		if ((fds[n] = open(path, O_RDONLY | O_CLOEXEC)) < 0) die("cannot open %s", path);
	}
	struct stat st;
	errno = 0;
	if (expect_pidns && (fstat(fds[3], &st) != 0 || (unsigned long long)st.st_ino != expect_pidns)) die("process %ld is not the jail's pid 1 any more", target);
	snprintf(path, sizeof path, "/proc/%ld/root", target);
	int rootfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(path, sizeof path, "/proc/%ld/cwd", target);
	int cwdfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	errno = 0;
	if (rootfd < 0 || cwdfd < 0) die("cannot open the root of process %ld", target);
	for (int n = 0; n < 5; n++) {
		errno = 0;
		if (setns(fds[n], ns[n].type) != 0) die("cannot join the %s namespace of %ld", ns[n].name, target);
		close(fds[n]);
	}
	errno = 0;
	if (fchdir(rootfd) != 0 || chroot(".") != 0) die("cannot enter the root of process %ld", target);
	if (fchdir(cwdfd) != 0) die("cannot enter the working directory of process %ld", target);
	close(rootfd);
	close(cwdfd);

	child = fork();
	if (child < 0) die("fork");
	if (child == 0) {
		drop_capabilities(keep);
		execvp(program[0], program);
		die("cannot run %s", program[0]);
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = forward;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	int status;
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR) die("waitpid");
	if (WIFEXITED(status)) return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}
