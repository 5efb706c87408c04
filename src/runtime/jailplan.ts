// From a stored jail to what the driver needs: its context (root path, state folder) and
// its complete mount plan: the skeleton's mounts, then `mount` and `mount.fstab` lines, then
// devfs, then the guest folder's mount point (the jail's own env, read-only at /run/jailyard,
// bound by the driver inside the jail's mount namespace).

import { readFileSync } from 'node:fs';
import { isAbsolute, join, normalize, relative } from 'node:path';
import { JailyardError } from '../errors.ts';
import { parseFstab, parseFstabLine, type FstabEntry } from '../conf/fstab.ts';
import type { CreateFacts, JailContext } from '../platform/driver.ts';
import type { MountPlan, MountStep } from '../skeleton/plan.ts';
import type { JailRecord } from '../store/types.ts';
import { jailRoot, jailStateDir } from '../layout.ts';
import { paramBool, paramInt, paramList, paramString } from '../conf/spec.ts';

/** The parent of a nested jail ("a.b" -> "a"), undefined for a top-level jail. */
export function parentName(name: string): string | undefined {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(0, dot) : undefined;
}

/** A nested jail's parent as its context needs it: its root, and its facts while it runs. */
export interface ParentInfo {
  root: string;
  facts?: CreateFacts;
}

export function buildContext(stateDir: string, record: JailRecord, parent?: ParentInfo): JailContext {
  return {
    // meta and env ride along for drivers whose kernel keeps them (FreeBSD 15)
    spec: { name: record.name, params: { ...record.params, meta: record.meta, env: record.env } },
    name: record.name,
    jid: record.jid,
    path: jailRoot(stateDir, record, parent?.root),
    stateDir: jailStateDir(stateDir, record.name),
    ...(parent?.facts ? { parent: parent.facts } : {}),
    ...(parent ? { parentPath: parent.root } : {}),
  };
}

/**
 * A jail's context from stored records alone (`getJail` reads one): a nested jail's path lies
 * in its parent's root. What `exec` needs, without the service and the code it loads.
 */
export function contextFromRecords(
  stateDir: string,
  record: JailRecord,
  getJail: (name: string) => JailRecord | undefined,
): JailContext {
  const parentOf = (r: Pick<JailRecord, 'name'>): JailRecord | undefined => {
    const p = parentName(r.name);
    return p ? getJail(p) : undefined;
  };
  const rootOf = (r: JailRecord): string => {
    const parent = parentOf(r);
    return jailRoot(stateDir, r, parent ? rootOf(parent) : undefined);
  };
  const parent = parentOf(record);
  const info = parent
    ? { root: rootOf(parent), ...(parent.runtime?.create ? { facts: parent.runtime.create } : {}) }
    : undefined;
  return buildContext(stateDir, record, info);
}

/**
 * What a nested jail may not use (yet): its mounts are made from the host, so `mount` and
 * `mount.fstab` could name host paths its parent cannot see; a skeleton child's writable
 * part is seeded by the skeleton module at a host `path`, so it takes no `path`.
 */
export function checkNestedParams(record: Pick<JailRecord, 'name' | 'params'>): void {
  if (!parentName(record.name)) return;
  for (const param of ['mount', 'mount.fstab']) {
    if (paramList(record.params, param).some((v) => v !== '')) {
      throw new JailyardError(
        'JY_ERR_PARAM_VALUE',
        `${param} is not supported for a nested jail (its mounts could name paths outside its parent)`,
        { jail: record.name, param },
      );
    }
  }
  if (paramString(record.params, 'skeleton') && paramString(record.params, 'path')) {
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      'a nested skeleton jail takes no path (its root is in the state folder)',
      { jail: record.name, param: 'path' },
    );
  }
}

/** Addresses of ip4.addr / ip6.addr without interface and prefix ("em0|10.0.0.1/24" -> 10.0.0.1). */
export function addressesOf(record: Pick<JailRecord, 'params'>): { param: string; address: string }[] {
  return ['ip4.addr', 'ip6.addr'].flatMap((param) =>
    paramList(record.params, param)
      .flatMap((e) => e.split(','))
      .map((e) => e.trim())
      .filter(Boolean)
      .map((e) => ({
        param,
        address: (e.includes('|') ? e.slice(e.indexOf('|') + 1) : e).trim().split(/[\s/]/)[0]!.toLowerCase(),
      })),
  );
}

/**
 * jail(8)'s rules for starting a nested jail, as FreeBSD's kernel checks them: the parent
 * runs; every ancestor's children.max (default 0) is above its running descendants; the
 * child's addresses are among its parent's (it shares the parent's network).
 * `ancestors` is nearest first, each with how many of its descendants run now.
 */
export function checkNestedStart(
  child: Pick<JailRecord, 'name' | 'params'>,
  ancestors: { record: JailRecord; runningDescendants: number }[],
): void {
  const parent = ancestors[0];
  if (!parent) return;
  if (parent.record.state !== 'running') {
    throw new JailyardError(
      'JY_ERR_DEPEND',
      `the parent jail "${parent.record.name}" is ${parent.record.state}; a nested jail runs only inside a running parent`,
      { jail: child.name },
    );
  }
  for (const a of ancestors) {
    const max = paramInt(a.record.params, 'children.max') ?? 0;
    if (a.runningDescendants >= max) {
      throw new JailyardError(
        'JY_ERR_PARAM_VALUE',
        `cannot start "${child.name}": jail "${a.record.name}" has children.max=${max} and ${a.runningDescendants} running child jail(s)`,
        { jail: a.record.name, param: 'children.max' },
      );
    }
  }
  const allowed = new Set(addressesOf(parent.record).map((a) => a.address));
  for (const a of addressesOf(child)) {
    if (!allowed.has(a.address)) {
      throw new JailyardError(
        'JY_ERR_ADDRESS',
        `address ${a.address} is not one of the parent jail "${parent.record.name}"'s addresses`,
        { jail: child.name, param: a.param },
      );
    }
  }
}

function insideRoot(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * The plan with each bind of the jail's own `mount` and `mount.fstab` lines whose source lies
 * in a jail's tree (`trees`: every jail's root and its folder of the state folder, which the
 * jail writes) marked with the innermost such tree (MountStep `within`): the driver resolves
 * that source inside it, as the jail sees it, never through a symlink the jail made.
 */
export function markJailTrees(plan: MountPlan, trees: readonly string[]): MountPlan {
  const mounts = plan.mounts.map((m) => {
    if (m.kind !== 'bind' || (m.origin !== 'mount' && m.origin !== 'mount.fstab')) return m;
    const within = trees.filter((t) => insideRoot(t, normalize(m.source))).sort((a, b) => b.length - a.length)[0];
    return within === undefined ? m : { ...m, within };
  });
  return { ...plan, mounts };
}

/** One fstab entry as a plan step (nullfs is a bind mount on Linux). */
export function fstabStep(entry: FstabEntry, root: string, jail: string, origin: string): MountStep {
  const target = normalize(entry.target);
  if (!isAbsolute(target) || !insideRoot(root, target)) {
    throw new JailyardError('JY_ERR_PATH', `mount point ${entry.target} is not inside the jail's path ${root}`, {
      jail,
      param: origin,
      pos: entry.pos,
    });
  }
  const ro = entry.options.includes('ro');
  switch (entry.fstype) {
    case 'nullfs':
    case 'bind': {
      const options = entry.options.filter((o) => o !== 'ro' && o !== 'rw');
      return {
        kind: 'bind',
        source: entry.source,
        target,
        readonly: ro,
        origin,
        ...(options.length ? { options } : {}),
      };
    }
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
  // an empty entry names no file (config.c check_intparams): `mount.fstab = "";` in a jail
  // turns off a global one
  for (const file of paramList(record.params, 'mount.fstab').filter((f) => f !== '')) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new JailyardError('JY_ERR_PARAM_VALUE', `cannot read fstab ${file}: ${(e as Error).message}`, {
        jail: record.name,
        param: 'mount.fstab',
      });
    }
    for (const e of parseFstab(text, file)) steps.push(fstabStep(e, root, record.name, 'mount.fstab'));
  }
  return steps;
}

/**
 * The whole plan: `base` (the skeleton's plan, or an empty one for a jail with its own
 * path), then mount/mount.fstab, devfs (mount.devfs), and the guest folder's mount point.
 */
export function completePlan(_stateDir: string, record: JailRecord, root: string, base?: MountPlan): MountPlan {
  const plan: MountPlan = base
    ? {
        root: base.root,
        mkdirs: [...base.mkdirs],
        symlinks: [...base.symlinks],
        mounts: [...base.mounts],
        ...(base.files ? { files: [...base.files] } : {}),
        ...(base.disk ? { disk: base.disk } : {}),
      }
    : { root, mkdirs: [], symlinks: [], mounts: [] };
  plan.mounts.push(...paramMounts(record, root));
  if (paramBool(record.params, 'mount.devfs')) {
    plan.mkdirs.push(join(root, 'dev'));
    plan.mounts.push({ kind: 'devfs', target: join(root, 'dev'), origin: 'mount.devfs' });
  }
  // The guest folder's mount point only: the driver's create step binds the folder there in
  // the jail's own mount namespace (in the host's view a local user could reach its socket).
  // With it the other mount points the create step uses (proc, tini at /.jailyard/tini, the
  // holder at /.jailyard/hold):
  // made by the mounts step, they are recorded, so a stop takes them out of an admin's
  // `path` again (the create step still checks each is a real directory of the jail's).
  // (dev too: without mount.devfs the stage mounts a minimal /dev there when the root has
  // none)
  if (!plan.mkdirs.includes(join(root, 'dev'))) plan.mkdirs.push(join(root, 'dev'));
  plan.mkdirs.push(join(root, 'proc'), join(root, 'run', 'jailyard'), join(root, '.jailyard'));
  plan.files = [...(base?.files ?? []), join(root, '.jailyard', 'tini'), join(root, '.jailyard', 'hold')];
  return plan;
}
