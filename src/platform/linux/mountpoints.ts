// The mount points of a jail root in the state folder, made once and shared: a read-only
// lower layer of the root's own overlay (mounts.ts rootMount) holding, empty, every directory
// and file the start mounts something on (the plan's mkdirs, mount targets and files, which
// hold the stage's /proc, /run/jailyard and /.jailyard/{tini,hold} too: runtime/jailplan.ts
// completePlan). The merged root has them without one being made in the jail's own tree: a
// start makes no directory there and a removal deletes none. On a file system that skips
// recently deleted inodes (ext4 without a journal) that is what made back-to-back runs of
// 100 jails slower (docs/benchmarks.md, "100 jails").
//
// A layer is named by a hash of what it holds (STATE/mount-points/HASH), so jails with the
// same plan share one, and is never changed once in place (overlayfs wants its lower layers
// left alone while mounted): it is built in a temporary folder and renamed in. Layers are
// kept: tens of inodes each, one per set of mount points ever used in the state folder.
// What a jail does to these entries lands in its own tree, as for any file of its root: a
// copy-up; where a whiteout hides one, the next start makes it again in the jail's tree.
// overlayfs refuses to rename a directory of a lower layer (EXDEV, no redirect_dir): the jail
// cannot move a name that holds a mount point aside, as it could in its own tree.

import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { posix } from 'node:path';
import { mountPointsDir } from '../../layout.ts';
import type { MountPlan } from '../../skeleton/plan.ts';
import { isUnder } from './paths.ts';
import { pidAlive } from './proc.ts';

/** What a layer holds: paths relative to the root, without "." or "..". */
export interface PointSet {
  dirs: string[];
  files: string[];
}

/**
 * The mount points the plan and the stage need inside `root`, or undefined when they do not
 * make a tree (a path both a file and a directory, or leaving the root). `isDir` tells a
 * bind's source kind (a file's bind needs a file to mount on); undefined for one that cannot
 * be looked at, which is then left to the start as before.
 */
export function pointsOf(
  plan: MountPlan,
  root: string,
  isDir: (source: string) => boolean | undefined,
): PointSet | undefined {
  const dirs = new Set<string>();
  const files = new Set<string>();
  const rel = (p: string): string | undefined => {
    if (!isUnder(root, p)) return undefined;
    const r = posix.relative(root, posix.normalize(p));
    return r === '' || r === '..' || r.startsWith('../') ? undefined : r;
  };
  for (const d of plan.mkdirs) {
    const r = rel(d);
    if (r !== undefined) dirs.add(r);
  }
  for (const f of plan.files ?? []) {
    const r = rel(f);
    if (r !== undefined) files.add(r);
  }
  for (const m of plan.mounts) {
    if (m.kind === 'proc') continue;
    const r = rel(m.target);
    if (r === undefined) continue;
    const dir = m.kind === 'bind' ? isDir(m.source) : true;
    if (dir === true) dirs.add(r);
    else if (dir === false) files.add(r);
  }
  // every parent a directory, and no path both a file and a directory
  for (const p of [...dirs, ...files]) for (let up = posix.dirname(p); up !== '.'; up = posix.dirname(up)) dirs.add(up);
  for (const f of files) if (dirs.has(f)) return undefined;
  return { dirs: [...dirs].sort(), files: [...files].sort() };
}

/** The folder of the shared layers of the state folder a jail's folder (STATE/jails/NAME)
 * is in. */
export function layersDir(jailDir: string): string {
  return mountPointsDir(posix.dirname(posix.dirname(posix.normalize(jailDir))));
}

/** The layer holding `points` in `dir` (made the first time): owned by root, directories
 * 0755, files 0644 and empty. */
export function pointLayer(dir: string, points: PointSet): string {
  const { createHash } = process.getBuiltinModule('node:crypto');
  const name = createHash('sha256')
    .update(JSON.stringify([1, points.dirs, points.files]))
    .digest('hex')
    .slice(0, 24);
  const layer = posix.join(dir, name);
  if (lstatSync(layer, { throwIfNoEntry: false })?.isDirectory()) return layer;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  sweepUnfinished(dir);
  const tmp = `${layer}.new-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    mkdirSync(tmp, { mode: 0o755 });
    for (const d of points.dirs) mkdirSync(posix.join(tmp, d), { mode: 0o755 });
    for (const f of points.files) closeSync(openSync(posix.join(tmp, f), 'wx', 0o644));
    // mkdir and open apply the umask: the modes are set as listed
    chmodSync(tmp, 0o755);
    for (const d of points.dirs) chmodSync(posix.join(tmp, d), 0o755);
    for (const f of points.files) chmodSync(posix.join(tmp, f), 0o644);
    renameSync(tmp, layer);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    // another start made the same layer first
    if (lstatSync(layer, { throwIfNoEntry: false })?.isDirectory()) return layer;
    throw e;
  }
  return layer;
}

/** Removes the temporary folders of starts that died while building a layer. */
function sweepUnfinished(dir: string): void {
  for (const e of readdirSync(dir)) {
    const pid = /\.new-(\d+)-[a-z0-9]*$/.exec(e)?.[1];
    if (pid !== undefined && Number(pid) !== process.pid && !pidAlive(Number(pid)))
      rmSync(posix.join(dir, e), { recursive: true, force: true });
  }
}
