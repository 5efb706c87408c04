// planMounts: JailSpec lists + a skeleton's layout -> MountPlan. PURE: no fs, no driver.
// The skeleton's top entries (which are dirs, which are symlinks) come in as data, read by
// readLayout (src/skeleton/layout.ts). Teardown is the driver's ONE loop over plan.mounts
// reversed (also for the guest/fstab mounts the runtime appends with appendMounts).

import { posix } from 'node:path';
import { JailyardError } from '../errors.ts';
import type { Params } from '../conf/spec.ts';
import type { Defaults, Platform } from '../defaults.ts';
import type { MountPlan, MountStep, Strategy } from './plan.ts';
import { checkListEntry, splitRel } from './paths.ts';

export const STRATEGIES: readonly Strategy[] = ['nullfs', 'basejail', 'overlay', 'full'];

/** One entry of a skeleton, as lstat saw it (symlinks not followed). */
export interface LayoutEntry {
  type: 'dir' | 'file' | 'symlink' | 'other' | 'missing';
  /** Link text, for symlinks. */
  target?: string;
}

/** Relative path (e.g. "bin", "usr/lib64") -> what it is in the skeleton. Absent = missing. */
export type SkeletonLayout = Record<string, LayoutEntry>;

export interface PlanInput {
  jail: string;
  /** The jail root on the host (`path`), absolute. */
  root: string;
  /** jailyard's per-jail folder: rw sources and overlay upper/work live here. */
  stateDir: string;
  strategy: Strategy;
  /** The skeleton version's tree on the host. */
  skeletonRoot: string;
  layout: SkeletonLayout;
  romounts: string[];
  rwmounts: string[];
  /** The jail's own copied dirs (seeded, not mounted); checked here, used by seedWritable. */
  writable: string[];
  /** Writable dirs kept copy-on-write (nullfs, basejail): rel -> the read-only lower dir on
   * the host (the skeleton version's seed of that dir), absent when the seed has none. */
  cow?: Record<string, string | undefined>;
  platform: Platform;
  /** Where the basejail strategy mounts the skeleton (default "/basejail"). */
  basejail?: string;
  /** The image holding the jail's size-limited writable part (limits.disk), if it has one. */
  disk?: string;
  /** The skeleton references a live tree (`skel create --from DIR`, e.g. the host's root):
   * every strategy then exposes only the romounts dirs and the jail's writable part, never
   * the rest of that tree (basejail: the romounts below /basejail; overlay: one overlay per
   * romounts dir, the root the jail's own dir). Owned trees are jail roots: taken whole. */
  live?: boolean;
}

const depth = (rel: string): number => splitRel(rel).length;

/** Checks a list parameter's entries; errors name the jail, the parameter and the entry. */
function checkList(jail: string, param: string, list: string[]): string[] {
  const out: string[] = [];
  for (const entry of list) {
    const norm = checkListEntry(entry, { jail, param });
    if (!out.includes(norm)) out.push(norm);
  }
  return out;
}

/** The closest ancestor of `rel` (or rel itself) that is a symlink in the layout. */
function symlinkedAncestor(layout: SkeletonLayout, rel: string): string | undefined {
  const parts = splitRel(rel);
  for (let i = 1; i < parts.length; i++) {
    const prefix = parts.slice(0, i).join('/');
    if (layout[prefix]?.type === 'symlink') return prefix;
  }
  return undefined;
}

/** Parent directories of `rel` inside root, outermost first (not rel itself). */
function parentDirs(root: string, rel: string): string[] {
  const parts = splitRel(rel);
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(posix.join(root, ...parts.slice(0, i)));
  return out;
}

function pushUnique(list: string[], ...items: string[]): void {
  for (const item of items) if (!list.includes(item)) list.push(item);
}

/** Copy-on-write dirs must be writable dirs, and not nested in one another. */
function checkCow(jail: string, cow: string[], writable: string[]): void {
  for (const rel of cow) {
    if (!writable.includes(rel)) {
      throw new JailyardError(
        'JY_ERR_PARAM_VALUE',
        `"${rel}" is not in skeleton.writable (only the jail's writable dirs can be copy-on-write)`,
        { jail, param: 'skeleton.cow' },
      );
    }
    const outer = cow.find((o) => o !== rel && rel.startsWith(`${o}/`));
    if (outer)
      throw new JailyardError('JY_ERR_PARAM_VALUE', `"${rel}" is inside "${outer}", which is already copy-on-write`, {
        jail,
        param: 'skeleton.cow',
      });
  }
}

/** An overlay of `lower` on `target` whose upper and work dirs live in `dir` (made first). */
function overlayOn(dir: string, lower: string, target: string, origin: string): { dirs: string[]; step: MountStep } {
  const upper = posix.join(dir, 'upper');
  const work = posix.join(dir, 'work');
  return { dirs: [dir, upper, work], step: { kind: 'overlay', lower: [lower], upper, work, target, origin } };
}

/**
 * The overlays of a jail's copy-on-write dirs: rel -> the seed's dir (the lower layer), or
 * undefined when the seed has none (no mount, a note). Each mounts on <root>/<rel> with the
 * jail's own upper and work dirs in STATE/cow/<rel>. Used by planMounts and by upgrades,
 * which mount the same layers over another version's lower dirs.
 */
export function cowSteps(
  root: string,
  stateDir: string,
  lowers: Record<string, string | undefined>,
): { mkdirs: string[]; mounts: { rel: string; step: MountStep }[]; notes: string[] } {
  const out: ReturnType<typeof cowSteps> = { mkdirs: [], mounts: [], notes: [] };
  for (const [rel, lower] of Object.entries(lowers)) {
    if (lower === undefined) {
      out.notes.push(`${rel}: not in the skeleton's seed, no copy-on-write mount (the jail's dir stays empty)`);
      continue;
    }
    const target = posix.join(root, rel);
    const o = overlayOn(cowDir(stateDir, rel), lower, target, 'skeleton-cow');
    pushUnique(out.mkdirs, posix.join(stateDir, 'cow'), ...o.dirs, ...parentDirs(root, rel), target);
    out.mounts.push({ rel, step: o.step });
  }
  return out;
}

/** Where a jail keeps the layers of one copy-on-write dir: STATE/cow/<rel, escaped>. */
export function cowDir(stateDir: string, rel: string): string {
  return posix.join(stateDir, 'cow', encodeURIComponent(rel));
}

/** Writable dirs that the jail's copy-on-write dirs cover (seeded as the overlay, not copied). */
export function coveredByCow(rel: string, cow: readonly string[]): boolean {
  return cow.some((c) => rel === c || rel.startsWith(`${c}/`));
}

/** Where the overlay strategy keeps the layers of one romounts dir of a live skeleton. */
export function roLayerDir(stateDir: string, rel: string): string {
  return posix.join(stateDir, 'overlay', 'ro', encodeURIComponent(rel));
}

/** A plan being made: the checked input, and the skeleton's mounts to sort in at the end. */
interface Draft {
  input: PlanInput;
  jail: string;
  layout: SkeletonLayout;
  /** The jail root, the skeleton's tree and the jail's state folder, normalized. */
  root: string;
  skel: string;
  state: string;
  /** The checked lists (romounts, rwmounts, copy-on-write dirs). */
  ro: string[];
  rw: string[];
  cow: string[];
  plan: MountPlan;
  notes: string[];
  /** Mounts of the skeleton's dirs, ordered parents first when the plan is done. */
  skeletonMounts: { rel: string; step: MountStep }[];
}

/** Checks the input (paths absolute, lists well-formed and consistent) into a Draft. */
function draftOf(input: PlanInput): Draft {
  const { jail } = input;
  if (!STRATEGIES.includes(input.strategy)) {
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      `unknown strategy "${String(input.strategy)}" (one of ${STRATEGIES.join(', ')})`,
      { jail, param: 'skeleton.strategy' },
    );
  }
  for (const [param, p] of [
    ['path', input.root],
    ['skeleton', input.skeletonRoot],
    ['state', input.stateDir],
  ] as const) {
    if (!posix.isAbsolute(p)) throw new JailyardError('JY_ERR_PATH', `"${p}" is not an absolute path`, { jail, param });
  }
  const root = posix.normalize(input.root).replace(/(.)\/$/, '$1');
  if (root === '/')
    throw new JailyardError('JY_ERR_PATH', 'the jail root cannot be the host root "/"', { jail, param: 'path' });
  const ro = checkList(jail, 'skeleton.romounts', input.romounts);
  const rw = checkList(jail, 'skeleton.rwmounts', input.rwmounts);
  const writable = checkList(jail, 'skeleton.writable', input.writable);
  const cow = Object.keys(input.cow ?? {});
  checkCow(jail, cow, writable);
  const notes: string[] = [];
  for (const rel of rw) {
    if (ro.includes(rel))
      throw new JailyardError('JY_ERR_PATH', `"${rel}" is in both romounts and rwmounts`, {
        jail,
        param: 'skeleton.rwmounts',
      });
  }
  for (const rel of writable) {
    if (ro.includes(rel) && (input.strategy === 'nullfs' || input.strategy === 'basejail'))
      notes.push(`${rel}: in romounts and writable; the read-only mount hides the jail's copy`);
  }
  return {
    input,
    jail,
    layout: input.layout,
    root,
    skel: posix.normalize(input.skeletonRoot),
    state: posix.normalize(input.stateDir),
    ro,
    rw,
    cow,
    plan: { root, mkdirs: [root], symlinks: [], mounts: [], notes },
    notes,
    skeletonMounts: [],
  };
}

/** The overlays of the jail's copy-on-write dirs (nullfs, basejail, a live overlay). */
function cowMounts(d: Draft): void {
  const c = cowSteps(d.root, d.state, d.input.cow ?? {});
  pushUnique(d.plan.mkdirs, ...c.mkdirs);
  d.skeletonMounts.push(...c.mounts);
  d.notes.push(...c.notes);
}

/**
 * The romounts dirs below `at`/`under`: a read-only bind (or, `overlay`, a copy-on-write
 * overlay with the jail's own layer) per dir, a symlink per symlink of the skeleton.
 */
function roMounts(d: Draft, at: string, under: string, kind: 'bind' | 'overlay'): void {
  const { layout, plan, skel, state } = d;
  // (basejail's own loop notes what it leaves out)
  const note = (text: string): void => void (under === '' && d.notes.push(text));
  for (const rel of d.ro) {
    const covered = symlinkedAncestor(layout, rel);
    const entry = layout[rel];
    const dest = posix.join(at, under, rel);
    if (covered) note(`${rel}: under symlink ${covered} in the skeleton, not mounted`);
    else if (!entry || entry.type === 'missing') note(`${rel}: missing in the skeleton, not mounted`);
    else if (entry.type === 'symlink') {
      pushUnique(plan.mkdirs, ...parentDirs(at, posix.join(under, rel)));
      plan.symlinks.push({ path: dest, target: entry.target ?? '' });
    } else if (entry.type !== 'dir') note(`${rel}: not a directory in the skeleton, not mounted`);
    else if (kind === 'bind') {
      pushUnique(plan.mkdirs, ...parentDirs(at, posix.join(under, rel)), dest);
      d.skeletonMounts.push({
        rel,
        step: { kind: 'bind', source: posix.join(skel, rel), target: dest, readonly: true, origin: 'skeleton-ro' },
      });
    } else {
      const o = overlayOn(roLayerDir(state, rel), posix.join(skel, rel), dest, 'skeleton-overlay');
      pushUnique(
        plan.mkdirs,
        posix.join(state, 'overlay'),
        posix.join(state, 'overlay', 'ro'),
        ...o.dirs,
        ...parentDirs(at, rel),
        dest,
      );
      d.skeletonMounts.push({ rel, step: o.step });
    }
  }
}

/** The rwmounts dirs: read-write binds of the jail's own STATE/rw/<rel> (every strategy). */
function rwBinds(d: Draft): void {
  const rwDir = posix.join(d.state, 'rw');
  for (const rel of d.rw) {
    const source = posix.join(rwDir, rel);
    const target = posix.join(d.root, rel);
    pushUnique(d.plan.mkdirs, rwDir, ...parentDirs(rwDir, rel), source);
    pushUnique(d.plan.mkdirs, ...parentDirs(d.root, rel), target);
    d.skeletonMounts.push({ rel, step: { kind: 'bind', source, target, readonly: false, origin: 'skeleton-rw' } });
  }
}

/** nullfs: each romounts dir bound read-only at its place in the jail root. */
function planNullfs(d: Draft): void {
  roMounts(d, d.root, '', 'bind');
  cowMounts(d);
  rwBinds(d);
}

/** basejail: the skeleton at /basejail, the romounts dirs symlinks into it. */
function planBasejail(d: Draft): void {
  const { jail, layout, plan, root } = d;
  const base = d.input.basejail ?? '/basejail';
  const baseRel = splitRel(checkListEntry(base.replace(/^\/+/, ''), { jail, param: 'skeleton.basejail' })).join('/');
  const baseTarget = posix.join(root, baseRel);
  pushUnique(plan.mkdirs, ...parentDirs(root, baseRel), baseTarget);
  // a live tree: only its romounts dirs below /basejail (mount points in the jail's own
  // dir), never one bind of all of it
  if (d.input.live) roMounts(d, root, baseRel, 'bind');
  else
    plan.mounts.push({
      kind: 'bind',
      source: d.skel,
      target: baseTarget,
      readonly: true,
      origin: 'skeleton-basejail',
    });
  for (const rel of d.ro) {
    const entry = layout[rel];
    const covered = symlinkedAncestor(layout, rel);
    if (covered) d.notes.push(`${rel}: under symlink ${covered} in the skeleton, no link made`);
    else if (!entry || entry.type === 'missing') d.notes.push(`${rel}: missing in the skeleton, no link made`);
    else {
      // relative link so it also resolves from the host: usr/bin -> ../basejail/usr/bin
      const up = '../'.repeat(depth(rel) - 1);
      pushUnique(plan.mkdirs, ...parentDirs(root, rel));
      plan.symlinks.push({ path: posix.join(root, rel), target: `${up}${baseRel}/${rel}` });
    }
  }
  cowMounts(d);
  rwBinds(d);
}

/** overlay: an owned tree is the lower layer of the whole root; a live tree one per romounts dir. */
function planOverlay(d: Draft): void {
  if (d.input.live) {
    // the root is the jail's own dir (its writable part seeded there, or copy-on-write
    // over the seed's layers), each romounts dir an overlay of that dir of the tree. With
    // a disk image (the root) the romounts dirs are read-only: their layers could not
    // live in the image without being in the jail's tree, and outside it they would be
    // writable space beyond the limit.
    if (d.input.disk !== undefined)
      d.notes.push('romounts: read-only with limits.disk (no copy-on-write layer outside the image)');
    roMounts(d, d.root, '', d.input.disk === undefined ? 'overlay' : 'bind');
    cowMounts(d);
    rwBinds(d);
    return;
  }
  const upper = posix.join(d.state, 'overlay', 'upper');
  const work = posix.join(d.state, 'overlay', 'work');
  pushUnique(d.plan.mkdirs, posix.join(d.state, 'overlay'), upper, work);
  d.plan.mounts.push({ kind: 'overlay', lower: [d.skel], upper, work, target: d.root, origin: 'skeleton-overlay' });
  if (d.ro.length) d.notes.push('romounts: not used by the overlay strategy (the whole skeleton is the lower layer)');
  if (d.cow.length)
    d.notes.push('cow: not used by the overlay strategy of an owned tree (all of the jail is copy-on-write)');
  rwBinds(d);
}

/** full: the jail root is a copy (made by prepareJail); only the rwmounts are mounted. */
function planFull(d: Draft): void {
  // (a live tree's copy holds only its romounts and writable dirs: see prepareJail)
  if (d.ro.length && !d.input.live)
    d.notes.push('romounts: not used by the full strategy (the jail root is an independent copy)');
  if (d.cow.length) d.notes.push('cow: not used by the full strategy (the jail root is an independent copy)');
  rwBinds(d);
}

const PLANNERS: Record<Strategy, (d: Draft) => void> = {
  nullfs: planNullfs,
  basejail: planBasejail,
  overlay: planOverlay,
  full: planFull,
};

/** The mount plan for one jail. Throws JY_ERR_PATH / JY_ERR_PARAM_VALUE on bad input. */
export function planMounts(input: PlanInput): MountPlan {
  const d = draftOf(input);
  PLANNERS[input.strategy](d);
  const { plan } = d;
  if (input.disk !== undefined) {
    if (!posix.isAbsolute(input.disk))
      throw new JailyardError('JY_ERR_PATH', `"${input.disk}" is not an absolute path`, {
        jail: d.jail,
        param: 'limits.disk',
      });
    // the writable part: the root itself, or the overlay's upper and work dirs
    plan.disk = {
      image: input.disk,
      target: input.strategy === 'overlay' && !input.live ? posix.join(d.state, 'overlay') : d.root,
    };
  }
  // parents before children, whatever order the lists had
  d.skeletonMounts.sort((a, b) => depth(a.rel) - depth(b.rel));
  plan.mounts.push(...d.skeletonMounts.map((m) => m.step));
  if (d.notes.length === 0) delete plan.notes;
  return plan;
}

/** A new plan with `steps` mounted after the skeleton's (guest dir, fstab, mount.*). */
export function appendMounts(plan: MountPlan, steps: MountStep[], mkdirs: string[] = []): MountPlan {
  const dirs = [...plan.mkdirs];
  pushUnique(dirs, ...mkdirs);
  return { ...plan, mkdirs: dirs, symlinks: [...plan.symlinks], mounts: [...plan.mounts, ...steps] };
}

export interface SkeletonLists {
  strategy: Strategy;
  romounts: string[];
  rwmounts: string[];
  writable: string[];
  /** Writable dirs kept copy-on-write (nullfs, basejail; empty for the other strategies). */
  cow: string[];
  basejail: string;
}

function listParam(jail: string, params: Params, name: string, fallback: string[]): string[] {
  const v = params[name];
  if (v === undefined) return fallback;
  // `name = "";` (jail.conf) or `name=` (command line): the empty list
  if (Array.isArray(v)) return v.length === 1 && v[0] === '' ? [] : v;
  if (typeof v === 'string') return v.split(/[\s,]+/).filter(Boolean);
  throw new JailyardError('JY_ERR_PARAM_VALUE', `expected a list of directories, got ${JSON.stringify(v)}`, {
    jail,
    param: name,
  });
}

/** Strategy and lists for a jail: its `skeleton.*` parameters, else the defaults file's. */
export function skeletonLists(jail: string, params: Params, defaults: Defaults, platform: Platform): SkeletonLists {
  const s = params['skeleton.strategy'] ?? defaults.skeleton.strategy;
  if (typeof s !== 'string' || !STRATEGIES.includes(s as Strategy)) {
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      `unknown strategy ${JSON.stringify(s)} (one of ${STRATEGIES.join(', ')})`,
      { jail, param: 'skeleton.strategy' },
    );
  }
  const writable = checkList(
    jail,
    'skeleton.writable',
    listParam(jail, params, 'skeleton.writable', defaults.skeleton.writable[platform]),
  );
  const cow = checkList(
    jail,
    'skeleton.cow',
    listParam(jail, params, 'skeleton.cow', defaults.skeleton.cow?.[platform] ?? []),
  );
  checkCow(jail, cow, writable);
  return {
    strategy: s as Strategy,
    romounts: checkList(
      jail,
      'skeleton.romounts',
      listParam(jail, params, 'skeleton.romounts', defaults.skeleton.romounts[platform]),
    ),
    rwmounts: checkList(
      jail,
      'skeleton.rwmounts',
      listParam(jail, params, 'skeleton.rwmounts', defaults.skeleton.rwmounts[platform]),
    ),
    writable,
    cow: s === 'nullfs' || s === 'basejail' ? cow : [],
    basejail: defaults.skeleton.basejail,
  };
}
