/*
 * Writes native/build/jy-seccomp-filters.h (scripts/build-native.sh runs it at build time):
 * the jail's seccomp filter, compiled by libseccomp into classic BPF once for every set of the
 * allow.* parameters that change it (native/jy-seccomp-allow.h), with and without the x32 ABI
 * (added where the kernel runs it: native/jy-seccomp.h picks at run time). jy-stage and
 * jy-enter then load a ready program with one prctl instead of building it at every jail
 * start and every exec (libseccomp's rule database, its code generation: ~1 ms of CPU each),
 * and no longer link libseccomp.
 *
 * The filter (what native/jy-seccomp.h describes): a deny list over a default of "allow",
 * modelled on Docker's default profile. The calls below are the ones Docker denies that a
 * jail could reach at all, plus the newer mount API; the i386 ABI gets the same rules, and so
 * does x32 in the variant that adds it; any other ABI is killed (libseccomp's default for a
 * foreign arch). The filter is installed without no_new_privs (the attribute set below: the
 * helpers hold CAP_SYS_ADMIN), so setuid programs of the jail keep working.
 *
 * Usage: seccomp-filters > jy-seccomp-filters.h (exit 1 and a message on stderr on failure).
 */
#define _GNU_SOURCE
#define DIE_PREFIX "jailyard seccomp-filters"
#define DIE_STATUS 1
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/filter.h>
#include "../jy-common.h"
#include "../jy-seccomp-allow.h"

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

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

/* The rules for the allow.* set ALLOW (its JY_ALLOW_* bits). */
static void add_rules(scmp_filter_ctx ctx, unsigned allow) {
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

	if (!(allow & JY_ALLOW_MOUNT)) {
		static const char *mounts[] = {"mount", "umount", "umount2", "move_mount", "open_tree", "open_tree_attr", "fsopen",
					       "fsmount", "fsconfig", "fspick", "mount_setattr", NULL};
		for (const char **n = mounts; *n; n++) SECCOMP_DENY(ctx, *n);
	}
	if (!(allow & JY_ALLOW_SETTIME)) {
		static const char *times[] = {"settimeofday", "stime", "clock_settime", "clock_settime64",
					      "clock_adjtime", "clock_adjtime64", NULL};
		for (const char **n = times; *n; n++) SECCOMP_DENY(ctx, *n);
	}
	if (!(allow & JY_ALLOW_READ_MSGBUF)) SECCOMP_DENY(ctx, "syslog");

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
	if (!(allow & JY_ALLOW_RAW_SOCKETS)) {
		static const int inet[] = {AF_INET, AF_INET6};
		for (size_t k = 0; k < 2; k++) {
			struct scmp_arg_cmp raw[] = {SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)inet[k]), SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW)};
			seccomp_deny(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 2, raw);
		}
		struct scmp_arg_cmp packet = SCMP_A0(SCMP_CMP_EQ, AF_PACKET);
		seccomp_deny(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 1, &packet);
	}
	if (!(allow & JY_ALLOW_SOCKET_AF)) {
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
	} else {
		/* not even with allow.socket_af: vsock has no network namespace, so it would reach the
		 * hypervisor (CID 2) and the host's own vsock listeners (CID 1) from any jail */
		struct scmp_arg_cmp vsock = SCMP_A0(SCMP_CMP_EQ, AF_VSOCK);
		seccomp_deny(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 1, &vsock);
	}
}

/* The filter for ALLOW, with x32's rules when X32, as classic BPF in BUF; its length in
 * instructions. */
static size_t build(unsigned allow, int x32, struct sock_filter **buf) {
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx) die("seccomp_init failed");
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (rc == 0 && seccomp_arch_native() == SCMP_ARCH_X86_64) {
		rc = seccomp_arch_add(ctx, SCMP_ARCH_X86);
		if ((rc == 0 || rc == -EEXIST) && x32) rc = seccomp_arch_add(ctx, SCMP_ARCH_X32);
		if (rc == -EEXIST) rc = 0;
	}
	if (rc != 0) {
		errno = -rc;
		die_errno("cannot set up the filter");
	}
	add_rules(ctx, allow);
	int fd = memfd_create("filter", MFD_CLOEXEC);
	if (fd < 0) die_errno("memfd_create");
	rc = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (rc != 0) {
		errno = -rc;
		die_errno("cannot export the filter");
	}
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % sizeof **buf) die("the exported filter has %lld bytes", (long long)size);
	*buf = malloc(size);
	if (!*buf || pread(fd, *buf, size, 0) != size) die_errno("cannot read the exported filter");
	close(fd);
	return size / sizeof **buf;
}

int main(void) {
	printf("/* Generated by native/gen/seccomp-filters.c (scripts/build-native.sh): do not edit. */\n");
	printf("#include <linux/filter.h>\n\n");
	for (int x32 = 0; x32 < 2; x32++) {
		for (unsigned allow = 0; allow < JY_ALLOW_SETS; allow++) {
			struct sock_filter *f;
			size_t n = build(allow, x32, &f);
			printf("static struct sock_filter jy_filter_%d_%u[%zu] = {\n", x32, allow, n);
			for (size_t k = 0; k < n; k++)
				printf("\t{0x%04x, %u, %u, 0x%08x},\n", f[k].code, f[k].jt, f[k].jf, f[k].k);
			printf("};\n");
			free(f);
		}
	}
	printf("\n/* [x32 added][allow.* bits] */\n");
	printf("static const struct sock_fprog jy_seccomp_filters[2][%d] = {\n", JY_ALLOW_SETS);
	for (int x32 = 0; x32 < 2; x32++) {
		printf("\t{\n");
		for (unsigned allow = 0; allow < JY_ALLOW_SETS; allow++)
			printf("\t\t{sizeof jy_filter_%d_%u / sizeof *jy_filter_%d_%u, jy_filter_%d_%u},\n", x32, allow, x32, allow, x32, allow);
		printf("\t},\n");
	}
	printf("};\n");
	if (fflush(stdout) != 0 || ferror(stdout)) die_errno("cannot write the filters");
	return 0;
}
