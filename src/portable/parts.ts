// A jail's writable part: what export, clone and snapshots carry. Everything else of a jail
// is its record (config, meta, env) or comes from its skeleton. Where each strategy keeps it
// (docs/skeletons.md, src/skeleton/hooks.ts prepareJail):
//   root       the jail's root (STATE/jails/J/root, or its `path`): nullfs/basejail jails'
//              seeded writable dirs, links and mount points; a full jail's whole tree; an
//              owned overlay jail's (empty) mount point
//   cow        STATE/jails/J/cow/<dir>/{upper,work}: the copy-on-write config dirs' layers
//   overlay    STATE/jails/J/overlay/{upper,work} (and ro/ layers of a live tree)
//   rw         STATE/jails/J/rw/<dir>: the sources of skeleton.rwmounts
//   disk.img   the limits.disk image holding all of the above
// Left out: the guest folder and env file (made again from the record), the console log,
// the exec fast path's files, the root mount's own empty layers (root-lower, root-work), the
// skeleton pin (written again from the archive's manifest) and `.jailyard` at the top of
// the root (the start's own holder and tini mount points).

import { existsSync, lstatSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { alive } from './stopped.ts';
import type { JailRecord } from '../store/types.ts';
import { JailyardError } from '../errors.ts';
import { jailRoot, jailStateDir } from '../layout.ts';
import type { JailSpec } from '../conf/spec.ts';

export const PART_NAMES = ['root', 'cow', 'overlay', 'rw', 'disk.img'] as const;
export type PartName = (typeof PART_NAMES)[number];

export interface Part {
  name: PartName;
  /** Where it is on this host. */
  path: string;
}

/** Entries of a part left out of every copy (relative to the part). */
export function skipInPart(part: PartName): (rel: string) => boolean {
  return part === 'root' ? (rel) => rel === '.jailyard' : () => false;
}

/** Whether a part holds overlay layers (whose directories may carry the opaque mark). */
export function holdsLayers(part: PartName): boolean {
  return part === 'cow' || part === 'overlay';
}

/** A nested jail lives in its parent's root: it travels with its parent, not alone. */
export function refuseNested(name: string, verb: string): void {
  if (name.includes('.'))
    throw new JailyardError(
      'JY_ERR_USAGE',
      `${verb} takes a top-level jail; a nested jail lives in its parent's root`,
      { jail: name },
    );
}

/** Where each part of the jail's writable part is on this host (also the missing ones). */
export function partPaths(stateDir: string, jail: JailSpec): Part[] {
  const dir = jailStateDir(stateDir, jail.name);
  return PART_NAMES.map((name) => ({ name, path: name === 'root' ? jailRoot(stateDir, jail) : join(dir, name) }));
}

/** The parts the jail has now. */
export function jailParts(stateDir: string, jail: JailSpec): Part[] {
  return partPaths(stateDir, jail).filter((p) => existsSync(p.path));
}

/** Whether the jail's root is its own `path` (an admin's folder) rather than in the state folder. */
export function rootOutsideState(stateDir: string, jail: JailSpec): boolean {
  return !jailRoot(stateDir, jail).startsWith(`${jailStateDir(stateDir, jail.name)}/`);
}

/** A part's kind on disk: a directory, or disk.img a regular file. */
export function checkPartKind(part: Part, jail: string): void {
  const st = lstatSync(part.path);
  const ok = part.name === 'disk.img' ? st.isFile() : st.isDirectory();
  if (!ok)
    throw new JailyardError('JY_ERR_PATH', `${part.path} is not a ${part.name === 'disk.img' ? 'file' : 'directory'}`, {
      jail,
    });
}

const LEFT = /\.rollback-(new|old)-(\d+)$/;

/**
 * What a rollback killed part way left beside the jail's parts: the new copies it was making
 * (removed), and the parts it had moved aside (put back when their place is empty, i.e. the
 * swap did not finish; removed when the new part is in place, i.e. it did).
 */
export function finishRollbacks(stateDir: string, record: JailRecord): void {
  for (const p of partPaths(stateDir, record)) {
    const dir = dirname(p.path);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    const base = p.path.slice(dir.length + 1);
    for (const n of names) {
      if (!n.startsWith(`${base}.rollback-`)) continue;
      const m = LEFT.exec(n);
      if (!m || alive(Number(m[2]))) continue;
      const left = join(dir, n);
      if (m[1] === 'old' && !existsSync(p.path)) renameSync(left, p.path);
      else rmSync(left, { recursive: true, force: true });
    }
  }
}
