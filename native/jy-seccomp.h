/*
 * The jail's seccomp filter, shared by jy-stage (pid 1) and jy-enter (every exec).
 *
 *   install_seccomp(ALLOW)  ALLOW: comma-separated allowances from the jail's allow.*
 *                           parameters ("raw_sockets,socket_af,settime,read_msgbuf,mount"),
 *                           or "" for none (src/platform/linux/security.ts computes it).
 *
 * Called while the helper still holds CAP_SYS_ADMIN (no PR_SET_NO_NEW_PRIVS needed, so
 * setuid programs of the jail keep working), right before the capability drop and the exec
 * of the jail's first program. Denied calls fail with EPERM (clone3 with ENOSYS, so that libc
 * falls back to clone, whose flags the filter can read).
 *
 * A deny list over a default of "allow", modelled on Docker's default profile (which allows
 * ~300 calls and denies the rest): the calls below are the ones Docker denies that a jail
 * could reach at all, plus the newer mount API. The capability drop already stops most of
 * them; the filter is the second wall, and the only one for what uid 0 may do without a
 * capability (keyctl on root's keyrings, TIOCSTI into an inherited terminal, new user
 * namespaces). The i386 ABI gets the same rules (a denied call is not reachable through
 * int 0x80 either), and so does x32 where the kernel has it; any other ABI is killed
 * (libseccomp's default for a foreign arch).
 */
#ifndef JY_SECCOMP_H
#define JY_SECCOMP_H

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

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

/* Adds one rule; a call this libseccomp (or an added arch) does not know is skipped. */
static void seccomp_deny(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned count, const struct scmp_arg_cmp *cmp) {
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR) return;
	int rc = seccomp_rule_add_array(ctx, action, nr, count, cmp);
	/* -EDOM/-EINVAL: the call has no number (or no argument filtering) on some added arch
	 * (socket on i386 is multiplexed through socketcall, see below) */
	if (rc != 0 && rc != -EDOM && rc != -EINVAL && rc != -EEXIST) {
		errno = -rc;
		die_errno("seccomp: cannot add the rule for %s", name);
	}
}

#define SECCOMP_DENY(ctx, name) seccomp_deny((ctx), SCMP_ACT_ERRNO(EPERM), (name), 0, NULL)

/*
 * Calls newer than this libseccomp (Debian 12's 2.5.4 cannot name them, nor add them by
 * number): a second, hand-written filter. Calls from 424 on have one number on every arch
 * (x32 adds its bit, masked off here). open_tree_attr (467, Linux 6.15) is open_tree with
 * mount attributes: denied with the mount calls.
 */
static void deny_newer_calls(void) {
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~0x40000000U),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 467 /* open_tree_attr */, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof code / sizeof *code, .filter = code};
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) die_errno("seccomp: cannot load the filter of newer calls");
}

static void install_seccomp(const char *allow) {
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx) die("seccomp_init failed");
	/* installed with CAP_SYS_ADMIN instead of no_new_privs: setuid programs keep working */
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (rc == 0 && seccomp_arch_native() == SCMP_ARCH_X86_64) {
		rc = seccomp_arch_add(ctx, SCMP_ARCH_X86);
		/* x32 only where the kernel runs it (CONFIG_X86_X32_ABI; its getpid answers):
		 * elsewhere an x32 call is killed as a foreign arch, and the filter is ~30% cheaper */
		if ((rc == 0 || rc == -EEXIST) && syscall(0x40000000 | SYS_getpid) > 0)
			rc = seccomp_arch_add(ctx, SCMP_ARCH_X32);
		if (rc == -EEXIST) rc = 0;
	}
	if (rc != 0) {
		errno = -rc;
		die_errno("seccomp: cannot set up the filter");
	}

	static const char *denied[] = {
		/* kernel modules, kexec, reboot, swap, accounting, quotas, kernel log */
		"init_module", "finit_module", "delete_module", "create_module", "get_kernel_syms", "query_module",
		"kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
		"nfsservctl", "uselib", "_sysctl", "lookup_dcookie", "vm86", "vm86old", "iopl", "ioperm",
		/* kernel keyrings are per uid: root's are the host's */
		"keyctl", "add_key", "request_key",
		/* namespaces and the root of the tree */
		"setns", "pivot_root",
		/* tracing and kernel introspection */
		"bpf", "perf_event_open", "userfaultfd", "open_by_handle_at", "fanotify_init",
		/* io_uring: a large attack surface of its own, calls the filter cannot see (Docker
		 * denies it too since 2023; programs fall back to ordinary I/O) */
		"io_uring_setup", "io_uring_enter", "io_uring_register",
		NULL,
	};
	for (const char **n = denied; *n; n++) SECCOMP_DENY(ctx, *n);

	if (!seccomp_allows(allow, "mount")) {
		static const char *mounts[] = {"mount", "umount", "umount2", "move_mount", "open_tree", "open_tree_attr", "fsopen",
					       "fsmount", "fsconfig", "fspick", "mount_setattr", NULL};
		for (const char **n = mounts; *n; n++) SECCOMP_DENY(ctx, *n);
	}
	if (!seccomp_allows(allow, "settime")) {
		static const char *times[] = {"settimeofday", "stime", "clock_settime", "clock_settime64",
					      "clock_adjtime", "clock_adjtime64", NULL};
		for (const char **n = times; *n; n++) SECCOMP_DENY(ctx, *n);
	}
	if (!seccomp_allows(allow, "read_msgbuf")) SECCOMP_DENY(ctx, "syslog");

	/* no new namespaces: clone and unshare with any namespace flag (a user namespace would
	 * give the jail's root every capability over a tree of its own: the kernel's largest
	 * attack surface) */
	static const unsigned long nsflags[] = {CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
						CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};
	for (size_t k = 0; k < sizeof nsflags / sizeof *nsflags; k++) {
		struct scmp_arg_cmp flag = SCMP_A0(SCMP_CMP_MASKED_EQ, nsflags[k], nsflags[k]);
		seccomp_deny(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1, &flag);
		seccomp_deny(ctx, SCMP_ACT_ERRNO(EPERM), "unshare", 1, &flag);
	}
	/* CLONE_NEWTIME is the exit-signal byte for clone; it means a namespace for unshare only */
	struct scmp_arg_cmp newtime = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWTIME, CLONE_NEWTIME);
	seccomp_deny(ctx, SCMP_ACT_ERRNO(EPERM), "unshare", 1, &newtime);
	/* clone3 passes its flags in memory the filter cannot read */
	seccomp_deny(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);

	/* TIOCSTI / TIOCLINUX push input into a terminal the jail was handed; the kernel reads
	 * the command as 32 bits, so the high half is masked out (a set high bit is no way around) */
	static const unsigned long ttyio[] = {TIOCSTI, TIOCLINUX};
	for (size_t k = 0; k < sizeof ttyio / sizeof *ttyio; k++) {
		struct scmp_arg_cmp cmd = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, ttyio[k]);
		seccomp_deny(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, &cmd);
	}

	/* personality: the flags that switch off address-space randomisation or make data
	 * executable (Docker allows only a few fixed values); bit 31 set = the query 0xffffffff */
	static const unsigned long persona[] = {0x0040000 /* ADDR_NO_RANDOMIZE */, 0x0100000 /* MMAP_PAGE_ZERO */,
						0x0200000 /* ADDR_COMPAT_LAYOUT */, 0x0400000 /* READ_IMPLIES_EXEC */};
	for (size_t k = 0; k < sizeof persona / sizeof *persona; k++) {
		struct scmp_arg_cmp p = SCMP_A0(SCMP_CMP_MASKED_EQ, persona[k] | 0x80000000UL, persona[k]);
		seccomp_deny(ctx, SCMP_ACT_ERRNO(EPERM), "personality", 1, &p);
	}

	/* Sockets, as FreeBSD's jails have them: raw IP and packet sockets only with
	 * allow.raw_sockets (CAP_NET_RAW is kept then too); families other than unix, inet,
	 * inet6 and netlink (FreeBSD: local, inet, inet6, route) only with allow.socket_af. */
	if (!seccomp_allows(allow, "raw_sockets")) {
		static const int inet[] = {AF_INET, AF_INET6};
		for (size_t k = 0; k < 2; k++) {
			struct scmp_arg_cmp raw[] = {SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)inet[k]), SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW)};
			seccomp_deny(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 2, raw);
		}
		struct scmp_arg_cmp packet = SCMP_A0(SCMP_CMP_EQ, AF_PACKET);
		seccomp_deny(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 1, &packet);
	}
	if (!seccomp_allows(allow, "socket_af")) {
		/* every family but 1 (unix), 2 (inet), 10 (inet6), 16 (netlink), 17 (packet: above),
		 * as few masked ranges (each rule costs filter size and build time): 0, 3, 4-7, 8-9,
		 * 11, 12-15, and 18 up (any bit above the int the kernel reads lands there too) */
		static const struct { unsigned long mask, value; } fams[] = {
			{~0UL, 0}, {~0UL, 3}, {~3UL, 4}, {~1UL, 8}, {~0UL, 11}, {~3UL, 12},
		};
		for (size_t k = 0; k < sizeof fams / sizeof *fams; k++) {
			struct scmp_arg_cmp fam = SCMP_A0(SCMP_CMP_MASKED_EQ, fams[k].mask, fams[k].value);
			seccomp_deny(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 1, &fam);
		}
		struct scmp_arg_cmp high = SCMP_A0(SCMP_CMP_GE, AF_PACKET + 1);
		seccomp_deny(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 1, &high);
	}

	rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc != 0) {
		errno = -rc;
		die_errno("seccomp: cannot load the filter");
	}
	if (!seccomp_allows(allow, "mount")) deny_newer_calls();
}

#endif
