/*
 * jy-hold: what a jail's pid 1 (tini) keeps running while the jail lives (the holder that
 * `persist` needs: tini exits when its child does). It waits for a signal, forever; the
 * jail's stop kills it with the jail's pid namespace. Bound read-only into every jail at
 * /.jailyard/hold by jy-stage (--holder), as tini is at /.jailyard/tini.
 *
 * A program of its own, not the jail's `sleep infinity`: the exec of a dynamically linked
 * sleep (its loader, libc's relocations) was ~6% of all CPU of starting 100 thin jails at
 * once, and its ~100 KiB PSS a third of a jail's overhead. Without libc, too (a statically
 * linked glibc's start-up alone, CPU features, tunables, IRELATIVE relocations, was still
 * ~4%): its own _start and one raw system call, 12 KiB resident.
 * build: -nostdlib (scripts/build-native.sh reads this line)
 */
#include <asm/unistd.h>

void _start(void) __attribute__((noreturn, used));

void _start(void) {
	for (;;) {
#if defined(__x86_64__)
		long nr = __NR_pause;
		__asm__ volatile("syscall" : "+a"(nr) : : "rcx", "r11", "memory");
#elif defined(__aarch64__)
		/* no pause(2) there: ppoll with no fds and no timeout waits for a signal */
		register long x8 __asm__("x8") = __NR_ppoll;
		register long x0 __asm__("x0") = 0;
		register long x1 __asm__("x1") = 0;
		register long x2 __asm__("x2") = 0;
		register long x3 __asm__("x3") = 0;
		__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
#else
#error "jy-hold: no raw system call for this architecture"
#endif
	}
}
