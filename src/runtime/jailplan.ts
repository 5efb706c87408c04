// From a stored jail to what the driver needs: its context (root path, state folder) and
// its complete mount plan: the skeleton's mounts, then `mount` and `mount.fstab` lines, then
// devfs, then the guest folder (the jail's own env, read-only at /run/jailyard).

import { readFileSync } from 'node:fs';
import { isAbsolute, join, normalize, relative } from 'node:path';
import { JailyardError } from '../errors.ts';
import { parseFstab, parseFstabLine, type FstabEntry } from '../conf/fstab.ts';
import type { JailContext } from '../platform/driver.ts';
import type { MountPlan, MountStep } from '../skeleton/plan.ts';
import type { JailRecord } from '../store/types.ts';
import { paramBool, paramList, paramString } from './params.ts';

/** jailyard's folder for one jail: console log, guest folder, writable parts. */
export function jailStateDir(stateDir: string, name: string): string {
  return join(stateDir, 'jails', name);
}

/** The jail's root: its `path`, or for a skeleton jail without one, state/jails/NAME/root. */
export function jailRoot(stateDir: string, record: Pick<JailRecord, 'name' | 'params'>): string {
  const path = paramString(record.params, 'path');
  if (path) return normalize(path);
  if (paramString(record.params, 'skeleton')) return join(jailStateDir(stateDir, record.name), 'root');
  throw new JailyardError('JY_ERR_PARAM_VALUE', 'a jail needs a path or a skeleton', { jail: record.name, param: 'path' });
}

export function guestDir(stateDir: string, name: string): string {
  return join(jailStateDir(stateDir, name), 'guest');
}

export function buildContext(stateDir: string, record: JailRecord, parent?: JailContext['parent']): JailContext {
  return {
    // meta and env ride along for drivers whose kernel keeps them (FreeBSD 15)
    spec: { name: record.name, params: { ...record.params, meta: record.meta, env: record.env } },
    name: record.name,
    jid: record.jid,
    path: jailRoot(stateDir, record),
    stateDir: jailStateDir(stateDir, record.name),
    ...(parent ? { parent } : {}),
  };
}

function insideRoot(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** One fstab entry as a plan step (nullfs is a bind mount on Linux). */
export function fstabStep(entry: FstabEntry, root: string, jail: string, origin: string): MountStep {
  const target = normalize(entry.target);
  if (!isAbsolute(target) || !insideRoot(root, target)) {
    throw new JailyardError('JY_ERR_PATH', `mount point ${entry.target} is not inside the jail's path ${root}`, { jail, param: origin, pos: entry.pos });
  }
  const ro = entry.options.includes('ro');
  switch (entry.fstype) {
    case 'nullfs':
    case 'bind':
      return { kind: 'bind', source: entry.source, target, readonly: ro, origin };
    case 'tmpfs':
      return { kind: 'tmpfs', target, options: entry.options.filter((o) => o !== 'rw'), origin };
    case 'procfs':
    case 'linprocfs':
    case 'proc':
      return { kind: 'proc', target, origin };
    case 'devfs':
      return { kind: 'devfs', target, origin };
    default:
      return { kind: 'fs', fstype: entry.fstype, source: entry.source, target, options: entry.options, origin };
  }
}

/** Mount steps from the `mount` (lines) and `mount.fstab` (file) parameters, in that order. */
export function paramMounts(record: JailRecord, root: string): MountStep[] {
  const steps: MountStep[] = [];
  paramList(record.params, 'mount').forEach((line, i) => {
    const e = parseFstabLine(line, { file: `jail ${record.name} parameter mount`, line: i + 1, col: 1 });
    if (e) steps.push(fstabStep(e, root, record.name, 'mount'));
  });
  for (const file of paramList(record.params, 'mount.fstab')) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new JailyardError('JY_ERR_PARAM_VALUE', `cannot read fstab ${file}: ${(e as Error).message}`, { jail: record.name, param: 'mount.fstab' });
    }
    for (const e of parseFstab(text, file)) steps.push(fstabStep(e, root, record.name, 'mount.fstab'));
  }
  return steps;
}

/**
 * The whole plan: `base` (the skeleton's plan, or an empty one for a jail with its own
 * path), then mount/mount.fstab, devfs (mount.devfs), and the guest folder.
 */
export function completePlan(stateDir: string, record: JailRecord, root: string, base?: MountPlan): MountPlan {
  const plan: MountPlan = base
    ? { root: base.root, mkdirs: [...base.mkdirs], symlinks: [...base.symlinks], mounts: [...base.mounts] }
    : { root, mkdirs: [], symlinks: [], mounts: [] };
  plan.mounts.push(...paramMounts(record, root));
  if (paramBool(record.params, 'mount.devfs')) {
    plan.mkdirs.push(join(root, 'dev'));
    plan.mounts.push({ kind: 'devfs', target: join(root, 'dev'), origin: 'mount.devfs' });
  }
  const guestTarget = join(root, 'run', 'jailyard');
  plan.mkdirs.push(guestTarget);
  plan.mounts.push({ kind: 'bind', source: guestDir(stateDir, record.name), target: guestTarget, readonly: true, origin: 'guest' });
  return plan;
}
