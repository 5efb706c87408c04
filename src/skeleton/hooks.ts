// What the runtime asks of skeletons (its SkeletonHooks, src/runtime/service.ts): seed a jail's
// writable part at create, give its skeleton mount plan at start, upgrade its writable part.
// The version a jail was seeded from is pinned in <jail state>/skeleton.json, so a jail
// naming a bare `NAME` keeps mounting the version its /etc came from until it is upgraded
// (never half on one version and half on another).

import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { JailyardError, withContext } from '../errors.ts';
import { currentPlatform, loadDefaults, type Defaults } from '../defaults.ts';
import { paramString, parseSize, type JailSpec } from '../conf/spec.ts';
import { HOST_ROOT_SKELETON, jailRoot, jailStateDir, skeletonOf, skeletonPinFile } from '../layout.ts';
import type { MountPlan } from './plan.ts';
import { readLayout, withLayouts } from './layout.ts';
import { coveredByCow, cowSteps, planMounts, skeletonLists } from './planner.ts';
import { createSkeleton, listSkeletons, parseSkeletonRef, resolveSkeleton, type SkeletonVersion } from './registry.ts';
import { copyListed, copyTree, seedWritable, type SeedRules } from './writable.ts';
import { cowLower, cowLowers, seedRulesFor } from './cowlayer.ts';
import { ensureDirsInRoot } from './paths.ts';
import { upgradeWritable, type UpgradeAction, type UpgradeResult } from './merge.ts';

export interface PinnedSkeleton {
  name: string;
  version: number;
  /** The jail's copy-on-write dirs, fixed when it was seeded (a dir copied at create must
   * never get an overlay over it later, nor the other way round). Absent: none (jails made
   * before copy-on-write existed). */
  cow?: string[];
  /** limits.disk in bytes when the jail's writable part is an image (fixed at create). */
  disk?: number;
  /** Seeded for the narrowed view of a live tree (romounts + writable dirs only). An overlay
   * jail of a live tree made before that has its whole tree as its lower layer and its
   * changes in that overlay's upper layer: it keeps that layout until it is recreated. */
  live?: boolean;
}

function skeletonParam(record: JailSpec): string {
  const s = skeletonOf(record);
  if (!s)
    throw new JailyardError('JY_ERR_PARAM_VALUE', 'the jail has no skeleton', { jail: record.name, param: 'skeleton' });
  return s;
}

export function readPinned(stateDir: string, jail: string): PinnedSkeleton | undefined {
  const file = skeletonPinFile(stateDir, jail);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as PinnedSkeleton) : undefined;
}

export function writePinned(stateDir: string, jail: string, pin: PinnedSkeleton): void {
  const file = skeletonPinFile(stateDir, jail);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(pin)}\n`);
  renameSync(`${file}.tmp`, file);
}

/** The skeleton version a jail uses: NAME@N, else its pinned version, else the latest. */
export function jailSkeleton(stateDir: string, record: JailSpec): SkeletonVersion & { name: string } {
  const param = skeletonParam(record);
  const ref = parseSkeletonRef(param);
  const pin = readPinned(stateDir, record.name);
  const version = ref.version ?? (pin && pin.name === ref.name ? pin.version : undefined);
  try {
    return resolveSkeleton(stateDir, version === undefined ? ref.name : `${ref.name}@${version}`);
  } catch (e) {
    throw e instanceof JailyardError ? withContext(e, { place: { jail: record.name, param: 'skeleton' } }) : e;
  }
}

/** The writable dirs whose seed layer has something in it (a live tree's overlay jail keeps
 * them copy-on-write; the others are seeded as the jail's own empty dirs). */
function seededDirs(skel: SkeletonVersion, writable: string[], rules: SeedRules): string[] {
  return writable.filter((rel) => {
    const lower = cowLower(skel, rel, rules);
    return lower !== undefined && readdirOr(lower).length > 0;
  });
}

/**
 * The jail's root dir (0755: the jail's own users walk through its /), the directories on
 * the way to it 0700: with `path=/srv/jails/J` a local user must not reach the jail's tree
 * (a setuid copy the jailed root planted there is a plain file on the host while stopped).
 */
function makeRoot(root: string): void {
  mkdirSync(dirname(root), { recursive: true, mode: 0o700 });
  mkdirSync(root, { recursive: true, mode: 0o755 });
}

/** What the skeleton module needs of the platform driver to give a jail a size-limited
 * writable part (limits.disk; a Driver is one where the platform supports it). */
export interface DiskImages {
  /** Makes `image` of `bytes` holding the content of `from` (none: empty). */
  makeDiskImage?(image: string, bytes: number, from: string | undefined, jail: string): Promise<void>;
}

/** Seeds the jail's writable part (or its full copy) from its skeleton; pins the version. */
export async function prepareJail(stateDir: string, record: JailSpec, images: DiskImages = {}): Promise<void> {
  if (skeletonOf(record) === HOST_ROOT_SKELETON) await ensureHostRootSkeleton(stateDir);
  const platform = currentPlatform();
  const defaults = loadDefaults();
  const skel = jailSkeleton(stateDir, record);
  const lists = skeletonLists(record.name, record.params, defaults, platform);
  const root = jailRoot(stateDir, record);
  const state = jailStateDir(stateDir, record.name);
  const rules = seedRulesFor(skel, defaults, platform);
  const disk = diskLimit(record, defaults);
  if (disk !== undefined) {
    if (!images.makeDiskImage)
      throw new JailyardError('JY_ERR_PLATFORM', 'limits.disk needs a platform driver that makes disk images', {
        jail: record.name,
        param: 'limits.disk',
      });
    if (record.name.includes('.'))
      throw new JailyardError('JY_ERR_PARAM_VALUE', 'limits.disk is not supported for a nested jail', {
        jail: record.name,
        param: 'limits.disk',
      });
    // the image holds the whole writable part: no copy-on-write layers outside it
    lists.cow = [];
    if (lists.strategy !== 'full' && readdirOr(root).length > 0) {
      throw new JailyardError('JY_ERR_PATH', `limits.disk needs an empty or missing jail root, ${root} is not`, {
        jail: record.name,
        param: 'path',
      });
    }
  }
  const live = skel.kind === 'reference';
  // a live tree's overlay jail: its root is its own dir like a nullfs jail's, and every
  // writable dir the seed has something in is copy-on-write over the seed's layer
  if (live && lists.strategy === 'overlay')
    lists.cow = disk !== undefined ? [] : seededDirs(skel, lists.writable, rules);
  switch (live && lists.strategy === 'overlay' ? 'nullfs' : lists.strategy) {
    case 'nullfs':
    case 'basejail':
      makeRoot(root);
      // copy-on-write dirs are not copied: their layer is made once per skeleton version
      seedWritable(
        skel.seedRoot,
        root,
        lists.writable.filter((d) => !coveredByCow(d, lists.cow)),
        { rules, jail: record.name },
      );
      // the mount points of the copy-on-write dirs, so a stopped jail's tree is complete
      for (const [rel, lower] of Object.entries(cowLowers(skel, lists.cow, rules))) {
        if (lower !== undefined) ensureDirsInRoot(root, rel, () => 0o755, record.name);
      }
      break;
    case 'overlay':
      makeRoot(root);
      break;
    case 'full':
      mkdirSync(dirname(root), { recursive: true, mode: 0o700 });
      if (live) {
        // a copy of a live tree: its romounts dirs, and its config dirs from the seed by the
        // live rules; nothing else of it (the host's /home, /work, /boot... of `--from /`)
        makeRoot(root);
        copyListed(skel.root, root, lists.romounts, record.name);
        seedWritable(skel.seedRoot, root, lists.writable, { rules, jail: record.name });
      } else {
        copyTree(skel.root, root, { jail: record.name });
      }
      break;
  }
  if (lists.rwmounts.length && lists.strategy !== 'full') {
    mkdirSync(join(state, 'rw'), { recursive: true, mode: 0o755 });
    seedWritable(skel.root, join(state, 'rw'), lists.rwmounts, { rules: { copy: lists.rwmounts }, jail: record.name });
  }
  if (disk !== undefined) {
    // the seeded part goes into the image (mkfs -d), the root stays an empty mount point
    const layer = lists.strategy === 'overlay' && !live ? undefined : root;
    await images.makeDiskImage!(diskImage(stateDir, record.name), disk, layer, record.name);
    if (layer) for (const name of readdirSync(layer)) rmSync(join(layer, name), { recursive: true, force: true });
  }
  const extra = { ...(disk !== undefined ? { disk } : {}), ...(live ? { live } : {}) };
  writePinned(stateDir, record.name, { name: skel.name, version: skel.version, cow: lists.cow, ...extra });
}

/**
 * HOST_ROOT_SKELETON, made from the host's / the first time a jail without a path needs it
 * (a reference: only the scrubbed seed of its config dirs is copied, ~1 s). Two creates
 * racing both try; the one whose version lands second finds the skeleton there and uses it.
 * `jailyard skel create host-root --from /` takes a new snapshot of the host's config for
 * the jails created after it.
 */
export async function ensureHostRootSkeleton(stateDir: string): Promise<void> {
  const exists = () => listSkeletons(stateDir).some((s) => s.name === HOST_ROOT_SKELETON && s.versions.length > 0);
  if (exists()) return;
  try {
    await createSkeleton(stateDir, HOST_ROOT_SKELETON, { type: 'from', path: '/' });
  } catch (e) {
    if (!exists()) throw e;
  }
}

/** The image holding a jail's size-limited writable part. */
export function diskImage(stateDir: string, jail: string): string {
  return join(jailStateDir(stateDir, jail), 'disk.img');
}

/** Smallest image: ext4 with a 4 MiB journal and room for a seeded /etc. */
const MIN_DISK = 16 * 1024 * 1024;

/** The jail's limits.disk in bytes (its parameter, else the defaults'), undefined: none. */
export function diskLimit(record: JailSpec, defaults: Defaults): number | undefined {
  const v = paramString(record.params, 'limits.disk') ?? defaults.skeleton.disk ?? undefined;
  if (v === undefined || v === null || v === '' || v === '0') return undefined;
  const bytes = parseSize(v, { jail: record.name, param: 'limits.disk' });
  if (bytes < MIN_DISK)
    throw new JailyardError('JY_ERR_PARAM_VALUE', `limits.disk must be at least 16M (got ${String(v)})`, {
      jail: record.name,
      param: 'limits.disk',
    });
  return bytes;
}

function readdirOr(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The jail's copy-on-write dirs: as pinned at create (none for older jails). */
function pinnedCow(stateDir: string, record: { name: string }): string[] {
  return readPinned(stateDir, record.name)?.cow ?? [];
}

/** Whether the jail's writable part is seeded from the skeleton's seed (copied or
 * copy-on-write over it): nullfs and basejail jails, and overlay jails of a live tree. */
function thinOnSeed(strategy: string, live: boolean): boolean {
  return strategy === 'nullfs' || strategy === 'basejail' || (strategy === 'overlay' && live);
}

/** Whether the jail gets the narrowed view of a live tree (see PinnedSkeleton.live). */
function liveLayout(stateDir: string, record: { name: string }, skel: SkeletonVersion, strategy: string): boolean {
  if (skel.kind !== 'reference') return false;
  return strategy !== 'overlay' || readPinned(stateDir, record.name)?.live === true;
}

/** The jail's skeleton mount plan (before the runtime appends mount/fstab/devfs/guest). */
export function planJail(stateDir: string, record: JailSpec, root: string): MountPlan {
  const platform = currentPlatform();
  const defaults = loadDefaults();
  const skel = jailSkeleton(stateDir, record);
  const lists = skeletonLists(record.name, record.params, defaults, platform);
  const live = liveLayout(stateDir, record, skel, lists.strategy);
  return planMounts({
    jail: record.name,
    root,
    stateDir: jailStateDir(stateDir, record.name),
    strategy: lists.strategy,
    skeletonRoot: skel.root,
    layout: readLayout(skel.root, [...lists.romounts, ...lists.rwmounts]),
    romounts: lists.romounts,
    rwmounts: lists.rwmounts,
    writable: lists.writable,
    // the dirs pinned at create, not today's parameter or default
    cow: thinOnSeed(lists.strategy, live)
      ? cowLowers(skel, pinnedCow(stateDir, record), seedRulesFor(skel, defaults, platform))
      : {},
    platform,
    basejail: lists.basejail,
    live,
    ...(existsSync(diskImage(stateDir, record.name)) ? { disk: diskImage(stateDir, record.name) } : {}),
  });
}

/** Mounts a plan's steps for a while (the driver's mount), returning how to undo them. */
export type MountViews = (plan: MountPlan) => Promise<() => Promise<void>>;

/**
 * Moves a (stopped) thin jail's writable part to another version of its skeleton: 3-way
 * merge against the version it was seeded from; pins the new version on success. The
 * caller then sets the jail's `skeleton` parameter to `NAME@N` (or keeps bare NAME).
 *
 * Copy-on-write dirs are merged through their overlay with the NEW version's layer below
 * the jail's upper layer (mounted with `views` for the time of the merge): what the jail
 * never changed already reads as the new version, what it changed (its upper layer) is
 * merged like a copied file, and every write lands in the upper layer.
 */
export async function upgradeJail(
  stateDir: string,
  record: JailSpec,
  toRef: string,
  views?: MountViews,
  /** Lists each change to the jail's tree before it is made (src/runtime/intent.ts), so a
   * crash can be undone. A tree mounted for the merge (copy-on-write dirs, a disk image) is
   * listed as its views first (`{ op: 'views' }`): its changes are undone or finished in the
   * same views, mounted again (reconcile). The caller then keeps the views mounted (the undo
   * `views` returns may be a no-op) until its intent is finished or rolled back. */
  journal?: Parameters<typeof upgradeWritable>[0]['journal'],
): Promise<UpgradeResult & { actions: UpgradeAction[]; from: number; to: number }> {
  const from = jailSkeleton(stateDir, record);
  const to = resolveSkeleton(stateDir, toRef);
  if (to.name !== from.name)
    throw new JailyardError('JY_ERR_PARAM_VALUE', `cannot upgrade from skeleton "${from.name}" to "${to.name}"`, {
      jail: record.name,
      param: 'skeleton',
    });
  const platform = currentPlatform();
  const defaults = loadDefaults();
  const lists = skeletonLists(record.name, record.params, defaults, platform);
  const cow = pinnedCow(stateDir, record);
  let res: UpgradeResult & { actions: UpgradeAction[] } = { touched: [], conflicts: [], actions: [] };
  const live = liveLayout(stateDir, record, from, lists.strategy);
  if (thinOnSeed(lists.strategy, live)) {
    const root = jailRoot(stateDir, record);
    const merge = (list?: typeof journal) =>
      upgradeWritable({
        jail: record.name,
        jailRoot: root,
        oldSeed: from.seedRoot,
        newSeed: to.seedRoot,
        dirs: lists.writable,
        mounts: cow,
        ...(list ? { journal: list } : {}),
      });
    const image = diskImage(stateDir, record.name);
    const disk = existsSync(image) ? { disk: { image, target: root } } : {};
    if (cow.length === 0 && !disk.disk) res = merge(journal);
    else {
      if (!views)
        throw new JailyardError(
          'JY_ERR_PLATFORM',
          'upgrading copy-on-write dirs or a disk image needs the platform driver to mount them',
          { jail: record.name, param: 'skeleton.cow' },
        );
      const layers = cowSteps(
        root,
        jailStateDir(stateDir, record.name),
        cowLowers(to, cow, seedRulesFor(to, defaults, platform)),
      );
      const plan: MountPlan = {
        root,
        mkdirs: layers.mkdirs,
        symlinks: [],
        mounts: layers.mounts.map((m) => m.step),
        ...disk,
      };
      journal?.({ op: 'views', plan });
      const undo = await views(plan);
      try {
        res = merge(journal);
      } finally {
        await undo();
      }
    }
  } else if (lists.strategy === 'full') {
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      'a full-copy jail is independent of its skeleton: it cannot be upgraded in place',
      { jail: record.name, param: 'skeleton.strategy' },
    );
  }
  const disk = readPinned(stateDir, record.name)?.disk;
  const extra = { ...(disk !== undefined ? { disk } : {}), ...(live ? { live } : {}) };
  writePinned(stateDir, record.name, { name: to.name, version: to.version, cow, ...extra });
  return { ...res, from: from.version, to: to.version };
}

/** The hooks object the local service takes (its SkeletonHooks). */
export function skeletonHooks(): {
  prepare(stateDir: string, record: JailSpec, images: DiskImages): Promise<void>;
  plan(stateDir: string, record: JailSpec, root: string): MountPlan;
  batch<T>(work: () => Promise<T>): Promise<T>;
} {
  return {
    prepare(stateDir, record, images) {
      return prepareJail(stateDir, record, images);
    },
    plan(stateDir, record, root) {
      return planJail(stateDir, record, root);
    },
    batch: withLayouts,
  };
}
