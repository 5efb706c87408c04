// Upgrading a thin jail's writable part from skeleton version A to B (etcupdate-style):
// per path, old = A's seed, new = B's seed, jail = the jail's copy.
//   jail == new or old == new      -> nothing to do (the jail's copy stays)
//   jail == old                    -> take new (write / mkdir / delete)
//   both changed, all text         -> line 3-way merge; clean -> write the merge
//   otherwise                      -> conflict: the jail's copy stays, new goes to FILE.jailyard-new
// snapshotTree/snapshotPaths read (fs), planUpgrade decides (pure), applyUpgrade writes:
// everything is staged in a temp dir inside the jail root first, then renamed into place,
// with the replaced entries kept until the end so a failure puts them all back.

import {
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  rmdirSync,
  type Stats,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { JailyardError } from '../errors.ts';
import { openSame, pinnedEntry } from './pinned.ts';
import { merge3 } from './diff3.ts';
import type { MountPlan } from './plan.ts';
import { checkListEntry, lstatOrUndefined, openDirInRoot, splitRel } from './paths.ts';
import { copyFileNoFollow, copySymlink, writeFileNoFollow } from './tree.ts';

export type TreeEntry =
  | {
      type: 'file';
      mode: number;
      uid: number;
      gid: number;
      size: number;
      hash: string /** utf8 content for small text files */;
      text?: string;
    }
  | { type: 'symlink'; target: string }
  | { type: 'dir'; mode: number; uid: number; gid: number }
  | { type: 'other' };

/** Relative path -> entry. Plain data so the planner can be tested with literals. */
export type TreeSnapshot = Record<string, TreeEntry>;

/** Files up to this size without NUL bytes are merged line by line. */
const MAX_TEXT = 1 << 20;

function readEntry(path: string, st: Stats): TreeEntry {
  if (st.isSymbolicLink()) {
    try {
      return { type: 'symlink', target: readlinkSync(path) };
    } catch {
      // no longer a link: what is there now was not looked at
      return { type: 'other' };
    }
  }
  if (st.isDirectory()) return { type: 'dir', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  if (!st.isFile()) return { type: 'other' };
  // the inode lstat saw, never a link, or a FIFO swapped in (O_NONBLOCK: no open blocks)
  const fd = openSame(path, st, constants.O_RDONLY | constants.O_NONBLOCK);
  if (fd === undefined) return { type: 'other' };
  const h = createHash('sha256');
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    const buf = Buffer.allocUnsafe(1 << 16);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      total += n;
      if (total <= MAX_TEXT) chunks.push(Buffer.from(buf.subarray(0, n)));
    }
  } finally {
    closeSync(fd);
  }
  const entry: TreeEntry = {
    type: 'file',
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    size: total,
    hash: h.digest('hex'),
  };
  if (total <= MAX_TEXT) {
    const content = Buffer.concat(chunks);
    if (!content.includes(0)) entry.text = content.toString('utf8');
  }
  return entry;
}

/** Every entry under `dirs` of a trusted tree (a skeleton's seed), symlinks not followed. */
export function snapshotTree(root: string, dirs: string[]): TreeSnapshot {
  const snap: TreeSnapshot = {};
  const visit = (rel: string): void => {
    const st = lstatOrUndefined(join(root, rel));
    if (!st) return;
    snap[rel] = readEntry(join(root, rel), st);
    if (st.isDirectory()) for (const name of readdirSync(join(root, rel)).sort()) visit(`${rel}/${name}`);
  };
  for (const d of dirs) visit(checkListEntry(d, { param: 'skeleton.writable' }));
  return snap;
}

/**
 * The jail's side, only for `paths` (the union of old and new: paths only the jail has are
 * never touched). A path whose parent is not a real directory in the jail (a symlink the
 * jail made) is recorded as `other` under that parent, never followed.
 */
export function snapshotPaths(root: string, paths: string[]): TreeSnapshot {
  const snap: TreeSnapshot = {};
  const blocked = new Set<string>();
  // an entry is read through its directory held open (openDirInRoot): the tree may be
  // written meanwhile, and a directory swapped for a link to a host folder must not make
  // host root read the host's file as the jail's
  const readAt = (rel: string): TreeEntry | undefined => {
    const parts = splitRel(rel);
    let fd: number;
    try {
      fd = openDirInRoot(root, parts.slice(0, -1).join('/'), null);
    } catch {
      return undefined;
    }
    try {
      const entry = pinnedEntry(fd, parts[parts.length - 1]!);
      const st = lstatOrUndefined(entry);
      return st ? readEntry(entry, st) : undefined;
    } finally {
      closeSync(fd);
    }
  };
  for (const rel of [...paths].sort()) {
    const parts = splitRel(rel);
    let ok = true;
    for (let i = 1; i < parts.length && ok; i++) {
      const prefix = parts.slice(0, i).join('/');
      if (blocked.has(prefix)) ok = false;
      else {
        const st = lstatOrUndefined(join(root, prefix));
        if (st && !st.isDirectory()) {
          blocked.add(prefix);
          const e = snap[prefix] ?? readAt(prefix);
          if (e) snap[prefix] = e;
          ok = false;
        } else if (!st) ok = false;
      }
    }
    if (!ok) continue;
    const e = readAt(rel);
    if (e) snap[rel] = e;
  }
  return snap;
}

export type UpgradeAction =
  | { kind: 'mkdir'; path: string; mode: number; uid: number; gid: number }
  | { kind: 'take'; path: string; reason: 'unchanged-by-jail' | 'added-upstream' }
  | { kind: 'delete'; path: string }
  | { kind: 'merge'; path: string; text: string; mode: number; uid: number; gid: number }
  | {
      kind: 'conflict';
      path: string;
      reason: string /** where the new version goes, if there is one */;
      newPath?: string;
      conflicts?: number;
    };

function equal(x: TreeEntry | undefined, y: TreeEntry | undefined): boolean {
  if (!x || !y) return x === y;
  if (x.type !== y.type) return false;
  if (x.type === 'file' && y.type === 'file') return x.hash === y.hash && x.mode === y.mode;
  if (x.type === 'symlink' && y.type === 'symlink') return x.target === y.target;
  return true;
}

export const NEW_SUFFIX = '.jailyard-new';

/** Decides, per path, what an upgrade does. Pure: all three sides come in as data. */
export function planUpgrade(input: { old: TreeSnapshot; new: TreeSnapshot; jail: TreeSnapshot }): UpgradeAction[] {
  const { old: O, new: N, jail: J } = input;
  const paths = [...new Set([...Object.keys(O), ...Object.keys(N)])].sort();
  const actions: UpgradeAction[] = [];
  const blockedBy = (p: string): string | undefined => {
    const parts = splitRel(p);
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const e = J[prefix];
      if (e && e.type !== 'dir') return prefix;
    }
    return undefined;
  };
  for (const p of paths) {
    const o = O[p];
    const n = N[p];
    const j = J[p];
    if (equal(j, n) || equal(o, n)) continue;
    const blocker = blockedBy(p);
    if (blocker) {
      if (n)
        actions.push({ kind: 'conflict', path: p, reason: `the jail replaced ${blocker} with a ${J[blocker]!.type}` });
      continue;
    }
    if (equal(j, o)) {
      if (!n) {
        // a directory the jail kept as it was: its removed children are handled one by one
        if (j?.type !== 'dir') actions.push({ kind: 'delete', path: p });
      } else if (n.type === 'dir') {
        if (j?.type !== 'dir') actions.push({ kind: 'mkdir', path: p, mode: n.mode, uid: n.uid, gid: n.gid });
      } else if (n.type === 'other') continue;
      else if (j?.type === 'dir')
        actions.push({
          kind: 'conflict',
          path: p,
          reason: 'a directory in the jail, not a directory in the new version',
          newPath: p + NEW_SUFFIX,
        });
      else actions.push({ kind: 'take', path: p, reason: o ? 'unchanged-by-jail' : 'added-upstream' });
      continue;
    }
    // changed by both
    if (
      o?.type === 'file' &&
      j?.type === 'file' &&
      n?.type === 'file' &&
      o.text !== undefined &&
      j.text !== undefined &&
      n.text !== undefined
    ) {
      const m = merge3(o.text, j.text, n.text);
      if (m.clean) {
        const mode = j.mode === o.mode ? n.mode : j.mode;
        actions.push({ kind: 'merge', path: p, text: m.text, mode, uid: j.uid, gid: j.gid });
      } else
        actions.push({
          kind: 'conflict',
          path: p,
          reason: `${m.conflicts.length} conflicting chunk(s)`,
          newPath: p + NEW_SUFFIX,
          conflicts: m.conflicts.length,
        });
      continue;
    }
    if (!n) actions.push({ kind: 'conflict', path: p, reason: 'removed in the new version but changed by the jail' });
    else if (n.type === 'dir') {
      if (!j) actions.push({ kind: 'mkdir', path: p, mode: n.mode, uid: n.uid, gid: n.gid });
      else if (j.type !== 'dir')
        actions.push({ kind: 'conflict', path: p, reason: `a ${j.type} in the jail, a directory in the new version` });
    } else if (n.type !== 'other') {
      const why = !j
        ? 'deleted by the jail, changed in the new version'
        : j.type === 'dir'
          ? 'a directory in the jail'
          : !o
            ? 'added by both'
            : 'changed by both (not text)';
      actions.push({
        kind: 'conflict',
        path: p,
        reason: why,
        ...(j?.type === 'dir' ? {} : { newPath: p + NEW_SUFFIX }),
      });
    }
  }
  return actions;
}

/** A change applyUpgrade is about to make, listed first (see src/runtime/intent.ts): a rename,
 * a directory made in the jail, a stage folder (holding the new entries and the replaced ones);
 * and, before those, the views they are made in when the jail's tree is mounted for the merge
 * (copy-on-write dirs, a disk image: upgradeJail): undoing or finishing them later needs the
 * same views mounted again, since their paths are the mounted ones. */
export type JournalOp =
  | { op: 'rename'; from: string; to: string }
  | { op: 'mkdir'; path: string }
  | { op: 'stage'; path: string }
  | { op: 'views'; plan: MountPlan };

export interface UpgradeResult {
  /** Paths written, created or deleted in the jail (incl. .jailyard-new files). */
  touched: string[];
  conflicts: { path: string; reason: string; newPath?: string }[];
}

/**
 * Applies `actions` to the jail root, taking new entries from `newRoot`. All or nothing:
 * on failure every replaced entry is put back and created ones removed.
 */
export function applyUpgrade(
  jailRoot: string,
  newRoot: string,
  actions: UpgradeAction[],
  opts: {
    jail?: string /** Dirs (relative) that are mounts of their own: staged inside. */;
    mounts?: string[];
    /** Lists every change before it is made. The stage folders (the replaced entries) are
     * then kept after success: the caller removes them once the upgrade is recorded, and a
     * crash before that can be undone from the list. */
    journal?: (op: JournalOp) => void;
  } = {},
): UpgradeResult {
  const journal = opts.journal;
  const place = opts.jail ? { jail: opts.jail, step: 'upgrade' } : { step: 'upgrade' };
  const rootSt = lstatOrUndefined(jailRoot);
  if (!rootSt?.isDirectory()) throw new JailyardError('JY_ERR_PATH', `jail root ${jailRoot} is not a directory`, place);
  // The jail's tree may be written while this runs (a jail sharing it): every directory is
  // reached through the one above it, held open, never by a path from the root again (a
  // directory swapped for a link to a host folder fails the step instead of making host root
  // rename in the host folder), and every rename and mkdir goes through those descriptors.
  // The journal names the real paths, for a recovery after a crash.
  const held: number[] = [];
  const hold = (rel: string, modeOf: ((prefix: string) => number) | null = () => 0o755, made?: string[]): number => {
    const fd = openDirInRoot(jailRoot, rel, modeOf, opts.jail, made);
    held.push(fd);
    return fd;
  };
  // renames cannot cross filesystems: one stage dir per mount the targets are on
  const stages = new Map<string, { real: string; fd: number }>();
  const stageFor = (target: string): { real: string; fd: number } => {
    const mount =
      (opts.mounts ?? []).filter((m) => target.startsWith(`${m}/`)).sort((a, b) => b.length - a.length)[0] ?? '';
    let stage = stages.get(mount);
    if (!stage) {
      const at = mount === '' ? jailRoot : join(jailRoot, ...splitRel(mount));
      const parent = hold(mount);
      let name: string;
      if (journal) {
        // named and listed before it is made: a crash in between leaves nothing unlisted
        name = `.jailyard-upgrade-${process.pid}-${stages.size}`;
        journal({ op: 'stage', path: join(at, name) });
        mkdirSync(pinnedEntry(parent, name), { mode: 0o700 });
      } else name = basename(mkdtempSync(pinnedEntry(parent, '.jailyard-upgrade-')));
      const fd = openSync(pinnedEntry(parent, name), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      held.push(fd);
      stage = { real: join(at, name), fd };
      stages.set(mount, stage);
    }
    return stage;
  };
  const removeStages = (): void => {
    for (const { fd } of stages.values())
      for (const name of readdirSync(pinnedEntry(fd, '.'))) rmSync(pinnedEntry(fd, name), { force: true });
    for (const { real } of stages.values()) rmSync(real, { recursive: true, force: true });
  };
  const undo: (() => void)[] = [];
  const result: UpgradeResult = { touched: [], conflicts: [] };
  try {
    // 1. stage every new entry (nothing of the jail changes yet)
    const staged = new Map<number, { from: string; real: string; to: string }>();
    actions.forEach((a, i) => {
      const dest = a.kind === 'conflict' ? a.newPath : a.path;
      if (dest === undefined || a.kind === 'mkdir' || a.kind === 'delete') {
        if (a.kind === 'conflict') result.conflicts.push({ path: a.path, reason: a.reason });
        return;
      }
      const stage = stageFor(dest);
      const at = pinnedEntry(stage.fd, `n${i}`);
      const real = join(stage.real, `n${i}`);
      if (a.kind === 'take' || (a.kind === 'conflict' && a.newPath)) {
        const src = join(newRoot, a.path);
        const st = lstatSync(src);
        if (st.isSymbolicLink()) copySymlink(src, at, st);
        else if (st.isFile()) copyFileNoFollow(src, at, st);
        else return;
        staged.set(i, { from: at, real, to: a.kind === 'take' ? a.path : a.newPath! });
      } else if (a.kind === 'merge') {
        writeFileNoFollow(at, a.text, a);
        staged.set(i, { from: at, real, to: a.path });
      }
      if (a.kind === 'conflict')
        result.conflicts.push({ path: a.path, reason: a.reason, ...(a.newPath ? { newPath: a.newPath } : {}) });
    });
    // 2. commit: renames only, each with its undo registered as soon as it is done
    actions.forEach((a, i) => {
      if (a.kind === 'mkdir') {
        const parts = splitRel(a.path);
        // create missing components one by one so undo removes exactly those, each through
        // its parent held open
        let dir = hold('', null);
        parts.forEach((part, k) => {
          const rel = parts.slice(0, k + 1).join('/');
          const entry = pinnedEntry(dir, part);
          if (!lstatOrUndefined(entry)) {
            journal?.({ op: 'mkdir', path: join(jailRoot, rel) });
            mkdirSync(entry, { mode: k === parts.length - 1 ? a.mode : 0o755 });
            undo.push(() => rmdirSync(entry));
            result.touched.push(rel);
          }
          try {
            dir = openSync(entry, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
          } catch {
            throw new JailyardError(
              'JY_ERR_PATH',
              `"${rel}" under ${jailRoot} is a symlink or non-directory, refusing to write through it`,
              place,
            );
          }
          held.push(dir);
        });
        return;
      }
      const move = staged.get(i);
      const target = move?.to ?? (a.kind === 'delete' ? a.path : undefined);
      if (!target) return;
      const parent = hold(dirname(target) === '.' ? '' : dirname(target));
      const dest = pinnedEntry(parent, basename(target));
      const realDest = join(jailRoot, target);
      const existing = lstatOrUndefined(dest);
      if (existing?.isDirectory())
        throw new JailyardError('JY_ERR_UPGRADE_CONFLICT', `${target} is a directory in the jail`, place);
      if (existing) {
        const stage = stageFor(target);
        const backup = pinnedEntry(stage.fd, `b${i}`);
        journal?.({ op: 'rename', from: realDest, to: join(stage.real, `b${i}`) });
        renameSync(dest, backup);
        undo.push(() => renameSync(backup, dest));
      }
      if (move) {
        journal?.({ op: 'rename', from: move.real, to: realDest });
        renameSync(move.from, dest);
        undo.push(() => renameSync(dest, move.from));
      }
      result.touched.push(target);
    });
  } catch (e) {
    for (const u of undo.reverse()) {
      try {
        u();
      } catch {
        // keep undoing the rest; the stage dir below still holds what could not go back
      }
    }
    try {
      removeStages();
    } finally {
      for (const fd of held) closeSync(fd);
    }
    throw e instanceof JailyardError
      ? e
      : new JailyardError('JY_ERR_STEP_FAILED', `upgrade failed, nothing changed: ${(e as Error).message}`, place, {
          cause: e,
        });
  }
  try {
    if (!journal) removeStages();
  } finally {
    for (const fd of held) closeSync(fd);
  }
  return result;
}

/** Snapshot, plan and apply in one go; the caller switches the jail's `skeleton` after. */
export function upgradeWritable(input: {
  jail: string;
  jailRoot: string;
  oldSeed: string;
  newSeed: string;
  dirs: string[];
  /** Dirs mounted on their own (copy-on-write overlays) */
  mounts?: string[];
  journal?: (op: JournalOp) => void;
}): UpgradeResult & { actions: UpgradeAction[] } {
  const old = snapshotTree(input.oldSeed, input.dirs);
  const neu = snapshotTree(input.newSeed, input.dirs);
  const jail = snapshotPaths(input.jailRoot, [...new Set([...Object.keys(old), ...Object.keys(neu)])]);
  const actions = planUpgrade({ old, new: neu, jail });
  return {
    ...applyUpgrade(input.jailRoot, input.newSeed, actions, {
      jail: input.jail,
      mounts: input.mounts ?? [],
      ...(input.journal ? { journal: input.journal } : {}),
    }),
    actions,
  };
}
