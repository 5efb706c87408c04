// Where a jail's mounts are made. A top-level jail's mounts are made in the host's own mount
// table (host hooks see them). A nested jail's mounts are made in a PRIVATE mount namespace,
// a copy of the host's, held by a small process until the create step has copied it into
// the child's own namespace; then it is released and its mounts vanish with it.
//
// Why not mount inside the running parent's namespace (nsenter --mount --target parent)?
// After that setns every program is resolved in the parent's root, whose /etc (e.g.
// ld.so.preload) the parent's root user may write: jailyard would run code the parent
// controls with full capabilities. In a host copy every program is the host's own, a mount
// redirected by a racing parent lands in a namespace nobody keeps, and the kernel frees the
// mounts when the last jail process using them is gone (nothing to unmount, nothing to leak).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { JailyardError } from '../../errors.ts';
import { minimalEnv } from './host-env.ts';
import { waitFor } from './proc.ts';

/** How the mount code reaches one mount namespace: file paths and mount(8) commands. */
export interface MountView {
  /** The path to use from this process for `p` as that namespace sees it. */
  fs(p: string): string;
  /** argv running `cmd` (a host program) inside that namespace. */
  argv(cmd: string[]): string[];
  /** Its mount table. */
  mountinfo: string;
}

export const HOST_VIEW: MountView = { fs: (p) => p, argv: (cmd) => cmd, mountinfo: '/proc/self/mountinfo' };

function viewOf(pid: number): MountView {
  return {
    // /proc/PID/root walks that process's mount tree: node's own fs calls see its mounts.
    fs: (p) => `/proc/${pid}/root${p}`,
    argv: (cmd) => ['nsenter', `--target=${pid}`, '--mount', '--', ...cmd],
    mountinfo: `/proc/${pid}/mountinfo`,
  };
}

export interface HeldNamespace {
  pid: number;
  view: MountView;
  /** The nsenter argument that joins it. */
  nsFile: string;
  release(): Promise<void>;
}

/** Held namespaces by jail state folder: made by the mounts step, used by create (same process). */
const held = new Map<string, HeldNamespace>();

/**
 * Makes a private copy of the host's mount namespace, held by `sh -c read` on a pipe: it
 * ends when released, and by itself when this process dies (the pipe closes), so a crashed
 * jailyard leaves nothing. The state folder in its argv makes it findable.
 */
export async function holdMountNamespace(stateDir: string, jail: string): Promise<HeldNamespace> {
  await held.get(stateDir)?.release();
  const argv = [
    'unshare',
    '--mount',
    '--propagation',
    'private',
    '--',
    '/bin/sh',
    '-c',
    'read -r _ || :',
    'jailyard-mountns',
    stateDir,
  ];
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), {
    stdio: ['pipe', 'ignore', 'ignore'],
    env: minimalEnv(),
    cwd: '/',
  });
  child.stdin!.on('error', () => {});
  child.on('error', () => {});
  const pid = child.pid;
  const own = readlinkSync('/proc/self/ns/mnt');
  const entered = () => {
    try {
      return readlinkSync(`/proc/${pid}/ns/mnt`) !== own && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sh';
    } catch {
      return false;
    }
  };
  if (!pid || !(await waitFor(entered, 5000, 2))) {
    child.kill('SIGKILL');
    throw new JailyardError('JY_ERR_MOUNT', 'cannot make a private mount namespace (unshare --mount)', {
      jail,
      step: 'mount',
    });
  }
  const exited = new Promise<void>((r) =>
    child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r()),
  );
  const ns: HeldNamespace = {
    pid,
    view: viewOf(pid),
    nsFile: `/proc/${pid}/ns/mnt`,
    async release() {
      if (held.get(stateDir) === ns) held.delete(stateDir);
      child.stdin!.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
    },
  };
  held.set(stateDir, ns);
  return ns;
}

/** The namespace the mounts step of this jail made in this process, if any. */
export function heldNamespace(stateDir: string): HeldNamespace | undefined {
  return held.get(stateDir);
}
