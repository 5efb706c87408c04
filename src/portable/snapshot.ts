// Snapshots of a stopped jail's writable part, kept in its own folder
// (STATE/jails/J/snapshots/NAME/: the parts as copies, reflinked where the filesystem can, and
// snapshot.json with the time, the skeleton pin and the sizes), so they go with the jail
// when it is removed and are never in an export or a clone. Rollback puts a snapshot's parts
// back: each current part is moved aside (same folder, so a rename), the snapshot's copied
// in, and only then are the old ones removed; a failure puts the old ones back.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { JailyardError } from '../errors.ts';
import { jailStateDir, skeletonOf } from '../layout.ts';
import type { JailRecord } from '../store/types.ts';
import { readPinned, type PinnedSkeleton } from '../skeleton/hooks.ts';
import { requireQuiet } from './export.ts';
import { checkPartKind, holdsLayers, jailParts, partPaths, skipInPart, type PartName } from './parts.ts';
import { checkSpace, copyExact, noSpace } from './tree.ts';
import { alive } from './stopped.ts';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface SnapshotInfo {
  name: string;
  createdAt: string;
  parts: PartName[];
  entries: number;
  bytes: number;
  pin: PinnedSkeleton | null;
  notes: string[];
}

export function snapshotsDir(stateDir: string, jail: string): string {
  return join(jailStateDir(stateDir, jail), 'snapshots');
}

function checkName(name: string, jail: string): string {
  if (!NAME_RE.test(name) || name.includes('..'))
    throw new JailyardError(
      'JY_ERR_USAGE',
      `bad snapshot name ${JSON.stringify(name)}: letters, digits, "_", "-", "." (not "..") up to 64 characters`,
      { jail },
    );
  return name;
}

/** A default name: the time, to the second (UTC), e.g. 20261202-231501. */
export function snapshotName(now = new Date()): string {
  return now.toISOString().replace(/[-:]/g, '').replace('T', '-').replace(/\..*$/, '');
}

export function listSnapshots(stateDir: string, jail: string): SnapshotInfo[] {
  const dir = snapshotsDir(stateDir, jail);
  if (!existsSync(dir)) return [];
  const out: SnapshotInfo[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!NAME_RE.test(name)) continue;
    try {
      out.push(JSON.parse(readFileSync(join(dir, name, 'snapshot.json'), 'utf8')) as SnapshotInfo);
    } catch {
      // a snapshot being made (no snapshot.json yet) or a broken one
    }
  }
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.name.localeCompare(b.name));
}

function requireSnapshot(stateDir: string, jail: string, name: string): SnapshotInfo {
  checkName(name, jail);
  const found = listSnapshots(stateDir, jail).find((s) => s.name === name);
  if (!found)
    throw new JailyardError('JY_ERR_SNAPSHOT_NOT_FOUND', `jail "${jail}" has no snapshot "${name}"`, { jail });
  return found;
}

export function createSnapshot(
  stateDir: string,
  record: JailRecord,
  name: string | undefined,
  mountsBelow: (dir: string) => string[],
): SnapshotInfo {
  const snap = checkName(name ?? snapshotName(), record.name);
  requireQuiet(stateDir, record, 'snapshot', mountsBelow);
  const dir = snapshotsDir(stateDir, record.name);
  const final = join(dir, snap);
  if (existsSync(final))
    throw new JailyardError('JY_ERR_USAGE', `jail "${record.name}" has a snapshot "${snap}" already`, {
      jail: record.name,
    });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // what a snapshot command killed part way left (its temp copy, a removal's renamed folder)
  for (const n of readdirSync(dir)) {
    const m = /^\.(?:tmp|rm)-.*-(\d+)$/.exec(n);
    if (m && !alive(Number(m[1]))) rmSync(join(dir, n), { recursive: true, force: true });
  }
  const parts = jailParts(stateDir, record);
  for (const p of parts) checkPartKind(p, record.name);
  checkSpace(
    parts.map((p) => ({ src: p.path, destDir: dir, skip: skipInPart(p.name) })),
    record.name,
    'snapshot',
  );
  const tmp = join(dir, `.tmp-${snap}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o700 });
  try {
    const info: SnapshotInfo = {
      name: snap,
      createdAt: new Date().toISOString(),
      parts: [],
      entries: 0,
      bytes: 0,
      pin: (skeletonOf(record) && readPinned(stateDir, record.name)) || null,
      notes: [],
    };
    for (const p of parts) {
      const s = copyExact(p.path, join(tmp, p.name), skipInPart(p.name), { overlay: holdsLayers(p.name) });
      info.parts.push(p.name);
      info.entries += s.entries;
      info.bytes += s.bytes;
      info.notes.push(...s.notes.map((n) => `${p.name}/${n}`));
    }
    writeFileSync(join(tmp, 'snapshot.json'), `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, final);
    return info;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw noSpace(e, record.name, 'snapshot');
  }
}

export function removeSnapshot(stateDir: string, jail: string, name: string): void {
  requireSnapshot(stateDir, jail, name);
  const dir = join(snapshotsDir(stateDir, jail), name);
  // out of the list first (a rename), then its files
  const gone = join(snapshotsDir(stateDir, jail), `.rm-${name}-${process.pid}`);
  renameSync(dir, gone);
  rmSync(gone, { recursive: true, force: true });
}

export function rollbackSnapshot(
  stateDir: string,
  record: JailRecord,
  name: string,
  mountsBelow: (dir: string) => string[],
): SnapshotInfo {
  const snap = requireSnapshot(stateDir, record.name, name);
  requireQuiet(stateDir, record, 'rollback', mountsBelow);
  const pin = skeletonOf(record) ? readPinned(stateDir, record.name) : undefined;
  if (snap.pin && pin && (snap.pin.name !== pin.name || snap.pin.version !== pin.version))
    throw new JailyardError(
      'JY_ERR_INVALID_TRANSITION',
      `snapshot "${name}" was taken on skeleton ${snap.pin.name}@${snap.pin.version}, the jail is now on ${pin.name}@${pin.version}: upgrade it back first`,
      { jail: record.name, param: 'skeleton' },
    );
  const from = join(snapshotsDir(stateDir, record.name), name);
  const parts = partPaths(stateDir, record);
  const fresh = (path: string) => `${path}.rollback-new-${process.pid}`;
  const aside = (path: string) => `${path}.rollback-old-${process.pid}`;
  // 1. the snapshot's parts copied beside the jail's (same folder: the swap is renames); a
  //    failure or a crash here changes nothing of the jail. The jail's current parts stay
  //    until the copies are in place: the copies need room beside them.
  const taken = parts.filter((p) => snap.parts.includes(p.name));
  for (const p of taken) mkdirSync(dirname(p.path), { recursive: true, mode: 0o700 });
  checkSpace(
    taken.map((p) => ({ src: join(from, p.name), destDir: dirname(p.path) })),
    record.name,
    'rollback',
  );
  try {
    for (const p of taken) copyExact(join(from, p.name), fresh(p.path), () => false, { overlay: holdsLayers(p.name) });
  } catch (e) {
    for (const p of parts) rmSync(fresh(p.path), { recursive: true, force: true });
    throw noSpace(e, record.name, 'rollback');
  }
  // 2. the swap: renames only (a crash in between is finished or undone before the next
  //    export, clone or snapshot command: finishRollbacks in parts.ts)
  const moved: string[] = [];
  const placed: string[] = [];
  try {
    for (const p of parts) {
      if (existsSync(p.path)) {
        renameSync(p.path, aside(p.path));
        moved.push(p.path);
      }
      if (snap.parts.includes(p.name)) {
        renameSync(fresh(p.path), p.path);
        placed.push(p.path);
      }
    }
  } catch (e) {
    for (const p of placed.reverse()) renameSync(p, fresh(p));
    for (const p of moved.reverse()) renameSync(aside(p), p);
    for (const p of parts) rmSync(fresh(p.path), { recursive: true, force: true });
    throw e;
  }
  // 3. the old parts go
  for (const p of moved) rmSync(aside(p), { recursive: true, force: true });
  return snap;
}
