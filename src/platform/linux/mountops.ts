// Mount calls as data, run in batches by native/jy-mount (one process per batch instead of
// one mount(8) per mount: a thin jail has a dozen). This module turns mount(8)-style option
// lists into mount(2) flags and data, builds the ops, and runs a batch, reporting exactly
// which ops took effect.
import { JY_MOUNT } from './native.ts';
import { run } from './proc.ts';

/** mount(2) flags (linux/mount.h). */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  REMOUNT: 32,
  MANDLOCK: 64,
  DIRSYNC: 128,
  NOSYMFOLLOW: 256,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  REC: 16384,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
  LAZYTIME: 1 << 25,
} as const;

export const MNT_DETACH = 2;

/** mount(8) option words that are flags of mount(2); each sets or clears bits. */
const FLAG_WORDS: Record<string, { set?: number; clear?: number }> = {
  ro: { set: MS.RDONLY },
  rw: { clear: MS.RDONLY },
  nosuid: { set: MS.NOSUID },
  suid: { clear: MS.NOSUID },
  nodev: { set: MS.NODEV },
  dev: { clear: MS.NODEV },
  noexec: { set: MS.NOEXEC },
  exec: { clear: MS.NOEXEC },
  sync: { set: MS.SYNCHRONOUS },
  async: { clear: MS.SYNCHRONOUS },
  dirsync: { set: MS.DIRSYNC },
  nosymfollow: { set: MS.NOSYMFOLLOW },
  noatime: { set: MS.NOATIME },
  atime: { clear: MS.NOATIME },
  nodiratime: { set: MS.NODIRATIME },
  diratime: { clear: MS.NODIRATIME },
  relatime: { set: MS.RELATIME },
  norelatime: { clear: MS.RELATIME },
  strictatime: { set: MS.STRICTATIME },
  lazytime: { set: MS.LAZYTIME },
  nolazytime: { clear: MS.LAZYTIME },
  // fstab words with no meaning for a mount made now
  defaults: {},
  auto: {},
  noauto: {},
  nouser: {},
  nofail: {},
};

/** mount(8)-style options split into mount(2) flags and the filesystem's own data string. */
export function parseMountOptions(options: readonly string[]): { flags: number; data: string } {
  let flags = 0;
  const data: string[] = [];
  for (const word of options.flatMap((o) => o.split(',')).filter(Boolean)) {
    const f = FLAG_WORDS[word];
    if (!f) {
      data.push(word);
      continue;
    }
    if (f.set) flags |= f.set;
    if (f.clear) flags &= ~f.clear;
  }
  return { flags, data: data.join(',') };
}

export type MountOp =
  | { op: 'm'; source: string; target: string; fstype: string; flags: number; data: string }
  | { op: 'u'; target: string; flags: number }
  | { op: 'f'; path: string }
  | { op: 'd'; path: string; mode: number }
  | { op: 'l'; target: string; path: string }
  | { op: 'o'; target: string; lower: string[]; upper: string; work: string; flags: number }
  | { op: 'i'; source: string; target: string; range: string; flags: number }
  /** The next op's source lies in `root`, a tree a jail writes: opened with no symlink
   * followed (native/jy-mount.c). */
  | { op: 'r'; root: string };

/** One op plus what it means to the caller: a description and the mount it creates. */
export interface BatchOp {
  op: MountOp;
  /** For errors: "tmpfs on /x". */
  what: string;
  /** The mount point this op creates (recorded for the undo), if it creates one. */
  creates?: string;
  /** What becomes invisible below this path once the op ran (later fs work must wait). */
  covers?: string;
  /** The mount this op creates is nosuid on the host, but the jail honours its setuid bits. */
  suid?: boolean;
}

/** Flags every mount of a jail's plan gets in the HOST's view: a local user must never run
 * a setuid program or open a device node the jailed root planted in its tree. */
export const HOST_MOUNT_FLAGS = MS.NOSUID | MS.NODEV;

export const ops = {
  /** mount --bind [-o ro,...]: a bind, then a remount with its flags (mount(2) ignores the
   * flags of a bind itself); `flags` are more MS_* bits for that remount (nosuid, nodev...). */
  bind(source: string, target: string, readonly: boolean, recursive = false, flags = 0, within?: string): BatchOp[] {
    const what = `${source} on ${target} (${recursive ? 'rbind' : 'bind'}${readonly ? ', ro' : ''})`;
    const first: BatchOp = {
      op: { op: 'm', source, target, fstype: '', flags: MS.BIND | (recursive ? MS.REC : 0), data: '' },
      what,
      creates: target,
      ...(source === target ? {} : { covers: target }),
    };
    const set = (readonly ? MS.RDONLY : 0) | flags;
    if (!set) return [...sourceInside(source, within), first];
    return [
      ...sourceInside(source, within),
      first,
      {
        op: { op: 'm', source: '', target, fstype: '', flags: MS.BIND | MS.REMOUNT | set, data: '' },
        what: `${target} ${readonly ? 'read-only' : 'flags'}`,
      },
    ];
  },
  /** mount -t TYPE -o OPTIONS SOURCE TARGET */
  fs(fstype: string, source: string, target: string, options: readonly string[]): BatchOp[] {
    const { flags, data } = parseMountOptions(options);
    return [
      {
        op: { op: 'm', source, target, fstype, flags, data },
        what: `${fstype} on ${target}`,
        creates: target,
        covers: target,
      },
    ];
  },
  /** An overlay whose layers the kernel shows as "." (no host path in the jail's mountinfo);
   * `flags`: ro, nosuid, nodev, noexec bits (MOUNT_ATTR_* share MS_*'s values). */
  overlay(lower: readonly string[], upper: string, work: string, target: string, flags: number): BatchOp[] {
    const attr = flags & (MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC);
    return [
      {
        op: { op: 'o', target, lower: [...lower], upper, work, flags: attr },
        what: `overlay on ${target}`,
        creates: target,
        covers: target,
      },
    ];
  },
  /** An idmapped bind (user-namespace jails, docs/userns.md): host uid u of `source` shows as
   * BASE+u; `range` "BASE,COUNT"; `flags`: ro, nosuid, nodev, noexec bits as for overlay. */
  idmap(source: string, target: string, range: string, readonly: boolean, flags = 0, within?: string): BatchOp[] {
    const attr = ((readonly ? MS.RDONLY : 0) | flags) & (MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC);
    return [
      ...sourceInside(source, within),
      {
        op: { op: 'i', source, target, range, flags: attr },
        what: `${source} on ${target} (idmapped ${range}${readonly ? ', ro' : ''})`,
        creates: target,
        covers: target,
      },
    ];
  },
  /** mount --make-private / --make-rprivate */
  private(target: string, recursive = false): BatchOp[] {
    return [
      {
        op: { op: 'm', source: '', target, fstype: '', flags: MS.PRIVATE | (recursive ? MS.REC : 0), data: '' },
        what: `${target} private`,
      },
    ];
  },
  file(path: string): BatchOp[] {
    return [{ op: { op: 'f', path }, what: `mount point ${path}` }];
  },
  mkdir(path: string, mode = 0o755): BatchOp[] {
    return [{ op: { op: 'd', path, mode }, what: `directory ${path}` }];
  },
  symlink(target: string, path: string): BatchOp[] {
    return [{ op: { op: 'l', target, path }, what: `symlink ${path}` }];
  },
  umount(target: string, detach = false): BatchOp[] {
    return [{ op: { op: 'u', target, flags: detach ? MNT_DETACH : 0 }, what: `unmount ${target}` }];
  },
};

/** The op that makes the next one open `source` inside `within` (a jail's tree) with no
 * symlink followed; none without `within`. */
function sourceInside(source: string, within: string | undefined): BatchOp[] {
  return within === undefined ? [] : [{ op: { op: 'r', root: within }, what: `${source} inside ${within}` }];
}

/** jy-mount's argv for a batch (no shell: every value is one argument). */
export function batchArgv(batch: readonly BatchOp[]): string[] {
  const argv = [JY_MOUNT];
  for (const { op } of batch) {
    switch (op.op) {
      case 'm':
        argv.push('m', op.source, op.target, op.fstype, String(op.flags), op.data);
        break;
      case 'u':
        argv.push('u', op.target, String(op.flags));
        break;
      case 'f':
        argv.push('f', op.path);
        break;
      case 'd':
        argv.push('d', op.path, op.mode.toString(8));
        break;
      case 'l':
        argv.push('l', op.target, op.path);
        break;
      case 'o':
        argv.push('o', op.target, op.lower.join(':'), op.upper, op.work, String(op.flags));
        break;
      case 'i':
        argv.push('i', op.source, op.target, op.range, String(op.flags));
        break;
      case 'r':
        argv.push('r', op.root);
        break;
    }
  }
  return argv;
}

export interface BatchResult {
  /** How many ops, from the first, took effect. */
  done: number;
  /** The failed op's message (jy-mount's stderr), when done < the batch's length. */
  error?: string;
}

/** Runs a batch (through `wrap`, e.g. nsenter into another mount namespace). */
export async function runBatch(
  batch: readonly BatchOp[],
  wrap: (argv: string[]) => string[] = (a) => a,
): Promise<BatchResult> {
  if (!batch.length) return { done: 0 };
  const r = await run(wrap(batchArgv(batch)));
  const m = /^done (\d+)$/m.exec(r.stdout);
  const done = m ? Number(m[1]) : 0;
  if (r.code === 0 && done === batch.length) return { done };
  return { done: Math.min(done, batch.length), error: (r.stderr || r.stdout).trim() || `jy-mount exited ${r.code}` };
}
