// The runtime's view of skeletons (SkeletonHooks in src/runtime/service.ts): seed a jail's
// writable part at create, give its skeleton mount plan at start, upgrade its writable part.
// The version a jail was seeded from is pinned in <jail state>/skeleton.json, so a jail
// naming a bare `NAME` keeps mounting the version its /etc came from until it is upgraded
// (never half on one version and half on another).

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { JailyardError } from '../errors.ts';
import { currentPlatform, loadDefaults } from '../defaults.ts';
import type { SkeletonHooks } from '../runtime/service.ts';
import type { JailRecord } from '../store/types.ts';
import type { MountPlan } from './plan.ts';
import { readLayout } from './layout.ts';
import { planMounts, skeletonLists } from './planner.ts';
import { parseSkeletonRef, resolveSkeleton, type SkeletonVersion } from './registry.ts';
import { copyTree, seedWritable } from './writable.ts';
import { upgradeWritable, type UpgradeAction, type UpgradeResult } from './merge.ts';

export interface PinnedSkeleton {
  name: string;
  version: number;
}

const jailDir = (stateDir: string, name: string): string => join(stateDir, 'jails', name);

/** The jail's root: `path`, else <state>/jails/NAME/root (same rule as runtime/jailplan.ts). */
function rootOf(stateDir: string, record: Pick<JailRecord, 'name' | 'params'>): string {
  const p = record.params['path'];
  return typeof p === 'string' && p !== '' ? p : join(jailDir(stateDir, record.name), 'root');
}

function skeletonParam(record: Pick<JailRecord, 'name' | 'params'>): string {
  const s = record.params['skeleton'];
  if (typeof s !== 'string' || s === '') throw new JailyardError('JY_ERR_PARAM_VALUE', 'the jail has no skeleton', { jail: record.name, param: 'skeleton' });
  return s;
}

export function readPinned(stateDir: string, jail: string): PinnedSkeleton | undefined {
  const file = join(jailDir(stateDir, jail), 'skeleton.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as PinnedSkeleton) : undefined;
}

export function writePinned(stateDir: string, jail: string, pin: PinnedSkeleton): void {
  const dir = jailDir(stateDir, jail);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'skeleton.json');
  writeFileSync(`${file}.tmp`, JSON.stringify(pin) + '\n');
  renameSync(`${file}.tmp`, file);
}

/** The skeleton version a jail uses: NAME@N, else its pinned version, else the latest. */
export function jailSkeleton(stateDir: string, record: Pick<JailRecord, 'name' | 'params'>): SkeletonVersion & { name: string } {
  const param = skeletonParam(record);
  const ref = parseSkeletonRef(param);
  const pin = readPinned(stateDir, record.name);
  const version = ref.version ?? (pin && pin.name === ref.name ? pin.version : undefined);
  try {
    return resolveSkeleton(stateDir, version === undefined ? ref.name : `${ref.name}@${version}`);
  } catch (e) {
    if (e instanceof JailyardError) throw new JailyardError(e.code, e.message, { ...e.place, jail: record.name, param: 'skeleton' });
    throw e;
  }
}

/** Seeds the jail's writable part (or its full copy) from its skeleton; pins the version. */
export function prepareJail(stateDir: string, record: Pick<JailRecord, 'name' | 'params'>): void {
  const platform = currentPlatform();
  const defaults = loadDefaults();
  const skel = jailSkeleton(stateDir, record);
  const lists = skeletonLists(record.name, record.params, defaults, platform);
  const root = rootOf(stateDir, record);
  const state = jailDir(stateDir, record.name);
  const rules = defaults.skeleton.seed?.[platform] ?? {};
  switch (lists.strategy) {
    case 'nullfs':
    case 'basejail':
      mkdirSync(root, { recursive: true, mode: 0o755 });
      seedWritable(skel.seedRoot, root, lists.writable, { rules, jail: record.name });
      break;
    case 'overlay':
      mkdirSync(root, { recursive: true, mode: 0o755 });
      break;
    case 'full':
      mkdirSync(dirname(root), { recursive: true, mode: 0o755 });
      copyTree(skel.root, root, { jail: record.name });
      break;
  }
  if (lists.rwmounts.length && lists.strategy !== 'full') {
    mkdirSync(join(state, 'rw'), { recursive: true, mode: 0o755 });
    seedWritable(skel.root, join(state, 'rw'), lists.rwmounts, { rules: { copy: lists.rwmounts }, jail: record.name });
  }
  writePinned(stateDir, record.name, { name: skel.name, version: skel.version });
}

/** The jail's skeleton mount plan (before the runtime appends mount/fstab/devfs/guest). */
export function planJail(stateDir: string, record: Pick<JailRecord, 'name' | 'params'>, root: string): MountPlan {
  const platform = currentPlatform();
  const defaults = loadDefaults();
  const skel = jailSkeleton(stateDir, record);
  const lists = skeletonLists(record.name, record.params, defaults, platform);
  return planMounts({
    jail: record.name,
    root,
    stateDir: jailDir(stateDir, record.name),
    strategy: lists.strategy,
    skeletonRoot: skel.root,
    layout: readLayout(skel.root, [...lists.romounts, ...lists.rwmounts]),
    romounts: lists.romounts,
    rwmounts: lists.rwmounts,
    writable: lists.writable,
    platform,
    basejail: lists.basejail,
  });
}

/**
 * Moves a (stopped) thin jail's writable part to another version of its skeleton: 3-way
 * merge against the version it was seeded from; pins the new version on success. The
 * caller then sets the jail's `skeleton` parameter to `NAME@N` (or keeps bare NAME).
 */
export function upgradeJail(stateDir: string, record: Pick<JailRecord, 'name' | 'params'>, toRef: string): UpgradeResult & { actions: UpgradeAction[]; from: number; to: number } {
  const from = jailSkeleton(stateDir, record);
  const to = resolveSkeleton(stateDir, toRef);
  if (to.name !== from.name) throw new JailyardError('JY_ERR_PARAM_VALUE', `cannot upgrade from skeleton "${from.name}" to "${to.name}"`, { jail: record.name, param: 'skeleton' });
  const lists = skeletonLists(record.name, record.params, loadDefaults(), currentPlatform());
  let res: UpgradeResult & { actions: UpgradeAction[] } = { touched: [], conflicts: [], actions: [] };
  if (lists.strategy === 'nullfs' || lists.strategy === 'basejail') {
    res = upgradeWritable({ jail: record.name, jailRoot: rootOf(stateDir, record), oldSeed: from.seedRoot, newSeed: to.seedRoot, dirs: lists.writable });
  } else if (lists.strategy === 'full') {
    throw new JailyardError('JY_ERR_PARAM_VALUE', 'a full-copy jail is independent of its skeleton: it cannot be upgraded in place', { jail: record.name, param: 'skeleton.strategy' });
  }
  writePinned(stateDir, record.name, { name: to.name, version: to.version });
  return { ...res, from: from.version, to: to.version };
}

/** The hooks object the local service takes. */
export function skeletonHooks(): SkeletonHooks {
  return {
    async prepare(stateDir, record) {
      prepareJail(stateDir, record);
    },
    plan(stateDir, record, root) {
      return planJail(stateDir, record, root);
    },
  };
}
