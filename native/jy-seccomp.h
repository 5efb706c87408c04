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
 * ~300 calls and denies the rest): the calls Docker denies that a jail could reach at all,
 * plus the newer mount API (the rules: native/gen/seccomp-filters.c). The capability drop
 * already stops most of them; the filter is the second wall, and the only one for what uid 0
 * may do without a capability (keyctl on root's keyrings, TIOCSTI into an inherited terminal,
 * new user namespaces). The i386 ABI gets the same rules (a denied call is not reachable
 * through int 0x80 either), and so does x32 where the kernel has it; any other ABI is killed.
 *
 * The filters are compiled by libseccomp at build time, one per set of the allow.* words that
 * change them (native/jy-seccomp-allow.h), with and without x32: native/build/
 * jy-seccomp-filters.h, written by native/gen/seccomp-filters.c. Building one at every start
 * and exec cost ~1 ms of CPU (libseccomp's rule database and code generation); loading a
 * ready one is a prctl.
 */
#ifndef JY_SECCOMP_H
#define JY_SECCOMP_H

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "jy-seccomp-allow.h"
#include "jy-seccomp-filters.h"

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
	unsigned bits = seccomp_allow_bits(allow);
	int x32 = 0;
#if defined(__x86_64__) && !defined(__ILP32__)
	/* x32 only where the kernel runs it (CONFIG_X86_X32_ABI; its getpid answers): elsewhere
	 * an x32 call is killed as a foreign arch, and the filter is ~30% cheaper */
	x32 = syscall(0x40000000 | SYS_getpid) > 0;
#endif
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &jy_seccomp_filters[x32][bits], 0, 0) != 0)
		die_errno("seccomp: cannot load the filter");
	if (!(bits & JY_ALLOW_MOUNT)) deny_newer_calls();
}

#endif
