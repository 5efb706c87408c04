/*
 * jy-hold: what a jail's pid 1 (tini) keeps running while the jail lives (the holder that
 * `persist` needs: tini exits when its child does). It waits for a signal, forever; the
 * jail's stop kills it with the jail's pid namespace. Bound read-only into every jail at
 * /.jailyard/hold by jy-stage (--holder), as tini is at /.jailyard/tini.
 *
 * A static program of its own, not the jail's `sleep infinity`: the exec of a dynamically
 * linked sleep (its loader, libc's relocations) was ~6% of all CPU of starting 100 thin
 * jails at once, and its ~100 KiB PSS a third of a jail's overhead.
 */
#include <unistd.h>

int main(void) {
	for (;;) pause();
}
