// jailyard's native helpers (native/*.c), built statically by `npm install` (prepare):
//   jy-stage    makes a jail's namespaces and is its pid 1 until tini (src/platform/linux/create.ts)
//   jy-enter    runs a program inside a running jail (src/platform/linux/exec.ts)
// Both drop the capabilities themselves before anything of the jail's own tree runs: a
// jailed root owns that tree, every program and library in it may be its.
//   jy-mount    runs a batch of mount/umount calls in one process (src/platform/linux/mountops.ts)
//   jy-spawner  starts the other programs for us, so node never forks (src/platform/linux/spawner.ts)
//   jy-log      a jail's console log relay: size limit, rotation (src/platform/linux/console.ts)
//   jy-peer     tells the daemon which process is at the other end of a unix socket
//               (src/api/peer.ts; optional: without it the sockets' file modes decide)
//   jy-guest    jail, jls and sysctl inside every jail (guest-bin/, bound at /run/jailyard/bin)
//   jy-xattr    overlayfs's opaque marks (src/platform/linux/whiteout.ts)
//   jy-sparse   a file's data regions, its holes unread (src/platform/linux/sparse.ts), and a
//               bounded copy with the holes kept (src/portable/tree.ts)
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { JailyardError } from '../../errors.ts';

const built = (name: string) => fileURLToPath(new URL(`../../../native/build/${name}`, import.meta.url));

export const JY_MOUNT = built('jy-mount');
export const JY_STAGE = built('jy-stage');
export const JY_ENTER = built('jy-enter');
export const JY_SPAWNER = built('jy-spawner');
/** What a jail's tini keeps running (native/jy-hold.c), bound at /.jailyard/hold. */
export const JY_HOLD = built('jy-hold');
/** The folder of the in-jail tools (jy-guest as jail, jls, sysctl; scripts/build-native.sh). */
export const JY_GUEST_TOOLS = built('guest-bin');
/** overlayfs's opaque mark on directories, read and written for copies of a layer (native/jy-xattr.c). */
export const JY_XATTR = built('jy-xattr');
/** SEEK_DATA/SEEK_HOLE (native/jy-sparse.c): `map`, a file's data regions for export's sparse
 * entries; `copy`, a bounded copy with holes kept for host-side copies of a jail's files. */
export const JY_SPARSE = built('jy-sparse');

/**
 * Whether the process `pid` runs jy-stage (by program name, so jails started by another
 * install of jailyard, at another path, are recognised too).
 */
export function isStageProcess(pid: number | string): boolean {
  try {
    const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
    return argv0 === 'jy-stage' || argv0.endsWith('/jy-stage');
  } catch {
    return false;
  }
}

/** Throws a clear error when a helper was not built (no C compiler at install time). */
export function checkNative(step = 'create'): void {
  const missing = [JY_MOUNT, JY_STAGE, JY_ENTER, JY_HOLD, built('jy-log')].filter((p) => !existsSync(p));
  if (missing.length) {
    throw new JailyardError(
      'JY_ERR_PLATFORM',
      `missing ${missing.join(', ')}: run npm install (or bash scripts/build-native.sh; needs gcc and libc6-dev)`,
      { step },
    );
  }
}
