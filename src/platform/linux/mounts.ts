// The mounts step, on the host side under the jail root (so host hooks see the mounts).
// The root is first bound onto itself and made private: nothing mounted below it propagates
// to the host's peers, and pivot_root later finds a mount point. Every made thing is recorded
// the moment it exists; a failure undoes exactly those, newest first.
import { mountTargets } from './mountinfo.ts';
import { chmodSync, statSync, lstatSync, readFileSync, realpathSync, writeFileSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { ptyLimitOf } from './ptys.ts';
import { JailyardError } from '../../errors.ts';
import type { JailContext, MountFacts } from '../driver.ts';
import type { MountPlan, MountStep } from '../../skeleton/plan.ts';
import { isUnder, mkdirTracked, resolveInside } from './paths.ts';
import { killTree, run } from './proc.ts';
import { HOST_MOUNT_FLAGS, ops, parseMountOptions, MS, runBatch, type BatchOp } from './mountops.ts';
import { HOST_VIEW, heldNamespace, holdMountNamespace, type MountView } from './mountns.ts';
import { plain, treeBeneath, type TreeOps } from './beneath.ts';
import { NEST_ROOT } from '../../layout.ts';
import {
  IDMAPPED_ORIGINS,
  ownByRangeRoot,
  rangeArg,
  rangeFor,
  shiftOwnership,
  usernsWanted,
  type UidRange,
} from './userns.ts';

/** Device nodes a minimal /dev gets bound in from the host. */
const DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

class MountError extends Error {
  readonly output: string;
  constructor(message: string, output: string) {
    super(message);
    this.output = output;
  }
}

async function mountCmd(args: string[], what: string, view: MountView): Promise<void> {
  const r = await run(view.argv(['mount', ...args]));
  if (r.code !== 0) throw new MountError(`cannot mount ${what}`, (r.stderr || r.stdout).trim());
}

/**
 * Mount calls queued for one jy-mount run. Host-side file work (mkdir, mount points) on a
 * path below a queued mount waits for it (`settle`), so it lands on the mounted tree as it
 * did with one mount(8) per call. Each mount that took effect is recorded in the facts.
 */
class Batch {
  private queued: BatchOp[] = [];
  /** The queued ops' `covers`, normalised once as they are queued (settle runs per path). */
  private covered: string[] = [];
  private readonly view: MountView;
  private readonly facts: MountFacts;
  constructor(view: MountView, facts: MountFacts) {
    this.view = view;
    this.facts = facts;
  }

  add(batch: BatchOp[]): void {
    this.queued.push(...batch);
    for (const q of batch) if (q.covers !== undefined) this.covered.push(posix.normalize(q.covers).replace(/\/+$/, ''));
  }

  /** Runs what is queued when `path` lies at or below something a queued op mounts. */
  async settle(path: string): Promise<void> {
    if (!this.covered.length) return;
    const n = posix.normalize(path);
    if (this.covered.some((c) => n === c || n.startsWith(c === '' ? '/' : `${c}/`))) await this.flush();
  }

  async flush(): Promise<void> {
    const batch = this.queued;
    this.queued = [];
    this.covered = [];
    const r = await runBatch(batch, (argv) => this.view.argv(argv));
    for (const q of batch.slice(0, r.done)) {
      if (q.creates !== undefined) this.facts.mounted.push(q.creates);
      if (q.creates !== undefined && q.suid) (this.facts.suid ??= []).push(q.creates);
    }
    if (r.error !== undefined)
      throw new MountError(
        `cannot ${batch[r.done]?.op.op === 'm' ? 'mount ' : ''}${batch[r.done]?.what ?? 'mount'}`,
        r.error,
      );
  }
}

export async function mount(ctx: JailContext, plan: MountPlan): Promise<MountFacts> {
  const userns = usernsWanted(ctx.spec);
  if (ctx.parent && userns) {
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      'a nested jail cannot have a user namespace of its own (docs/userns.md)',
      { jail: ctx.name, param: 'userns', step: 'mount' },
    );
  }
  if (ctx.parent) {
    // the guest tmpfs in the host's namespace first: the nested jail's private namespace,
    // a copy of the host's, then has it too, and the host's writes reach the jail
    const host: MountFacts = { mounted: [], created: [] };
    const guest = guestMount(ctx, host, HOST_VIEW);
    try {
      const batch = new Batch(HOST_VIEW, host);
      batch.add(guest.ops);
      await batch.flush();
      guest.fill();
      const facts = await mountNested(ctx, plan);
      return { ...facts, mounted: [...host.mounted, ...facts.mounted], created: [...host.created, ...facts.created] };
    } catch (e) {
      await undo(host);
      throw mountFailure(ctx, e);
    }
  }
  const range = userns ? await rangeFor(ctx) : undefined;
  return await mountIn(ctx, plan, HOST_VIEW, { mounted: [], created: [] }, false, range);
}

/**
 * A user-namespace jail's own trees (its root, rw dirs, overlay upper layers) are owned by
 * its range on disk: what was seeded or made by jailyard as host root moves into the range.
 * On a restart the entries are only looked at. Mount points are neither changed nor entered.
 */
function shiftJailTrees(root: string, plan: MountPlan, range: UidRange, view: MountView): void {
  const tops = [root];
  for (const m of plan.mounts) {
    if (m.kind === 'overlay') tops.push(m.upper);
    if (m.kind === 'bind' && m.origin === 'skeleton-rw') tops.push(m.source);
  }
  const skip = new Set(mountTargets(view.mountinfo).filter((t) => !tops.includes(t)));
  shiftOwnership(tops, range, skip);
}

/**
 * Executes the plan in one mount namespace (`view`). Unless `rootReady`, the root is first
 * bound onto itself and made private.
 */
async function mountIn(
  ctx: JailContext,
  plan: MountPlan,
  view: MountView,
  facts: MountFacts,
  rootReady: boolean,
  range?: UidRange,
): Promise<MountFacts> {
  const root = posix.normalize(plan.root).replace(/\/+$/, '');
  // never the host's own / (a jail without a path has its root in the state folder)
  if (root === '' && view === HOST_VIEW)
    throw new JailyardError('JY_ERR_PATH', "the jail's root is the host's own /: nothing is mounted onto it", {
      jail: ctx.name,
      param: 'path',
      step: 'mount',
    });
  const inRoot = (p: string) => resolveInside(root, p, ctx.name, view.fs);
  // Targets outside the root are refused before anything is touched.
  for (const step of plan.mounts) inRoot(step.target);
  for (const l of plan.symlinks) inRoot(posix.dirname(l.path));
  const batch = new Batch(view, facts);
  // a nested jail's root is its running parent's folder: below it nothing is made or removed
  // by path (beneath.ts); a top-level jail has no process running while it is prepared
  const tree = view === HOST_VIEW ? plain() : treeBeneath(root, view.fs);
  try {
    if (!rootReady) {
      const made = mkdirTracked(root, view.fs);
      facts.created.push(...made);
      // directories on the way to a jail's path are jailyard's, not the local users'
      for (const d of made) if (d !== root) chmodSync(view.fs(d), 0o700);
      if (view === HOST_VIEW) requireClosedAbove(root, ctx.name);
      if (plan.disk) await mountDisk(plan.disk, facts, view);
      batch.add([...rootMount(ctx, plan, root, facts, view), ...ops.private(root)]);
    }
    for (const dir of plan.mkdirs) {
      await batch.settle(dir);
      facts.created.push(...tree.mkdirp(isUnder(root, dir) ? inRoot(dir) : posix.normalize(dir)));
    }
    for (const file of plan.files ?? []) {
      await batch.settle(file);
      const at = posix.join(inRoot(posix.dirname(file)), posix.basename(file));
      if (tree.exists(at)) continue;
      facts.created.push(...tree.mkdirp(posix.dirname(at)));
      if (tree.touch(at)) facts.created.push(at);
    }
    for (const link of plan.symlinks) {
      await batch.settle(link.path);
      const at = posix.join(inRoot(posix.dirname(link.path)), posix.basename(link.path));
      facts.created.push(...tree.mkdirp(posix.dirname(at)));
      // a restart finds the links of the first start in the jail's own tree: kept
      if (tree.symlink(link.target, at)) facts.created.push(at);
    }
    if (range) {
      await batch.flush();
      shiftJailTrees(root, plan, range, view);
      // the mount points and links made above belong to the jail, as its other files do
      const uppers = plan.mounts.flatMap((m) => (m.kind === 'overlay' ? [m.upper] : []));
      ownByRangeRoot(
        facts.created.filter((p) => isUnder(root, p) || uppers.includes(p)),
        range,
      );
    }
    for (const step of plan.mounts) await mountStep(ctx, root, step, facts, view, tree, batch, range);
    const guest = view === HOST_VIEW ? guestMount(ctx, facts, view) : undefined;
    if (guest) batch.add(guest.ops);
    await batch.flush();
    guest?.fill();
    return facts;
  } catch (e) {
    await undo(facts, view, tree);
    throw mountFailure(ctx, e);
  }
}

/** Whether only root may pass through directory `st`: root's, and no x for others (nor for
 * a group other than root's). */
const closedToUsers = (st: Stats): boolean =>
  st.uid === 0 && (st.mode & 0o001) === 0 && (st.gid === 0 || (st.mode & 0o010) === 0);

/**
 * A jail's root must not be reachable by the host's local users: with a path through folders
 * they may all pass, a user could run a setuid program the jailed root planted (while the jail
 * is stopped, when its tree is no nosuid mount), read and write its files, or race a host
 * walk of it. One folder closed to them, the root itself or one above it, is enough (FreeBSD's
 * jail(8) and the OCI runtimes keep a jail's root in such a folder; the state folder is one).
 */
function requireClosedAbove(root: string, jail: string): void {
  let dir = realpathSync(root);
  const open: string[] = [];
  for (;;) {
    const st = statSync(dir);
    if (closedToUsers(st)) return;
    open.push(`${dir} (${(st.mode & 0o7777).toString(8)}, uid ${st.uid}, gid ${st.gid})`);
    if (dir === '/') break;
    dir = posix.dirname(dir);
  }
  throw new JailyardError(
    'JY_ERR_PATH',
    `the jail's root ${root} is reachable by the host's local users: it and every folder above it let them pass (${open.join(', ')}); close one above it to them, e.g. chmod 700 ${posix.dirname(realpathSync(root))}, or leave path unset (the root is then in the state folder)`,
    { jail, param: 'path', step: 'mount' },
  );
}

/** A failure of the mounts step as the caller sees it: a JailyardError as it is, anything
 * else as JY_ERR_MOUNT with jy-mount's or mount(8)'s output. */
function mountFailure(ctx: JailContext, e: unknown): JailyardError {
  if (e instanceof JailyardError) return e;
  const message = e instanceof Error ? e.message : String(e);
  const output = e instanceof MountError ? e.output : message;
  return new JailyardError('JY_ERR_MOUNT', message, { jail: ctx.name, step: 'mount', output });
}

async function mountStep(
  ctx: JailContext,
  root: string,
  step: MountStep,
  facts: MountFacts,
  view: MountView,
  tree: TreeOps,
  batch: Batch,
  range?: UidRange,
): Promise<void> {
  await batch.settle(step.target);
  const target = resolveInside(root, step.target, ctx.name, view.fs);
  switch (step.kind) {
    case 'proc':
      return; // proc belongs to the jail's pid namespace: mounted inside at create
    case 'bind': {
      await batch.settle(step.source);
      // a source in a jail's tree (a `mount` line naming another jail's directory): read as
      // that jail sees it, never through a symlink it made to a host path, and opened by
      // jy-mount with no symlink followed (one made since fails the mount)
      const source = step.within ? resolveInside(step.within, step.source, ctx.name, view.fs) : step.source;
      const srcIsDir = statSync(view.fs(source)).isDirectory();
      prepareTarget(target, srcIsDir, facts, tree);
      const asked = parseMountOptions(step.options ?? []).flags;
      // a user-namespace jail sees the host's shared trees through its range's idmapping
      const b =
        range && IDMAPPED_ORIGINS.has(step.origin)
          ? ops.idmap(
              source,
              target,
              rangeArg(range),
              step.readonly,
              HOST_MOUNT_FLAGS | (asked & MS.NOEXEC),
              step.within,
            )
          : ops.bind(
              source,
              target,
              step.readonly,
              false,
              HOST_MOUNT_FLAGS | (asked & (MS.NOEXEC | MS.NOSYMFOLLOW)),
              step.within,
            );
      batch.add(asked & MS.NOSUID ? b : honourSuid(b));
      return;
    }
    case 'overlay': {
      const paths = [...step.lower, step.upper, step.work];
      const bad = paths.find((p) => /[,:]/.test(p) || !posix.isAbsolute(p));
      if (bad)
        throw new MountError(
          `cannot mount overlay on ${target}: path ${bad} contains ',' or ':' or is not absolute`,
          '',
        );
      for (const p of paths) await batch.settle(p);
      facts.created.push(...tree.mkdirp(step.upper), ...tree.mkdirp(step.work));
      prepareTarget(target, true, facts, tree);
      // user-namespace jail: each lower layer (host-owned, shared) through the range's
      // idmapping, attached in the jail's state folder just for the overlay mount (overlayfs
      // keeps a private clone of each layer) and detached right after
      const lower = range
        ? step.lower.map((_, k) =>
            posix.join(ctx.stateDir, 'idmap', `${encodeURIComponent(posix.relative(root, target) || '.')}-${k}`),
          )
        : step.lower;
      for (const [k, l] of range ? lower.entries() : []) {
        facts.created.push(...tree.mkdirp(l));
        batch.add(ops.idmap(step.lower[k]!, l, rangeArg(range!), true, HOST_MOUNT_FLAGS));
      }
      batch.add(honourSuid(ops.overlay(lower, step.upper, step.work, target, HOST_MOUNT_FLAGS)));
      if (range) for (const l of lower) batch.add(ops.umount(l, true));
      return;
    }
    case 'tmpfs': {
      prepareTarget(target, true, facts, tree);
      const b = ops.fs('tmpfs', 'tmpfs', target, [
        ...(step.options.length ? step.options : ['mode=755']),
        ...HOST_WORDS,
      ]);
      batch.add(userNosuid(step.options) ? b : honourSuid(b));
      return;
    }
    case 'fs':
      // any filesystem, perhaps with a mount helper (nfs, ...): mount(8) itself
      await batch.flush();
      prepareTarget(target, true, facts, tree);
      await mountCmd(
        ['-t', step.fstype, '-o', [...step.options, ...HOST_WORDS].join(','), step.source, target],
        `${step.source} on ${target} (${step.fstype})`,
        view,
      );
      facts.mounted.push(target);
      if (!userNosuid(step.options)) (facts.suid ??= []).push(target);
      return;
    case 'devfs':
      prepareTarget(target, true, facts, tree);
      batch.add(devfsOps(target, range, ptyLimitOf(ctx.spec.params)));
      return;
  }
}

/** The jail's guest folder on the host (src/layout.ts guestDir). */
const guestPath = (ctx: JailContext) => posix.join(ctx.stateDir, 'guest');

/** The guest tmpfs is detached, not unmounted: the daemon's guest socket, bound in it until
 * the daemon sees the stop, keeps it busy (EBUSY), and it goes with that socket. */
const guestDetach = (ctx: JailContext): ReadonlySet<string> => new Set([guestPath(ctx)]);

/**
 * The guest folder (the jail's env, its guest socket, the tools' mount point: bound at
 * /run/jailyard by the create step) as a small tmpfs of its own while the jail runs. A bind
 * shows its source's path in its file system as the mount's root (/proc/self/mountinfo field
 * 4): of a folder on the host's disk, that is <state>/jails/J/guest; of a tmpfs's root, "/".
 * The folder on disk below it keeps what is written while the jail is stopped; the env is
 * written into the tmpfs from the jail's record (`fill`), and changes while it runs go there.
 * No size cap: the jail cannot write there (read-only in its namespace), and the host writes
 * an env (bound by meta_maxbufsize, which an administrator may raise), sockets and a mount
 * point.
 */
function guestMount(ctx: JailContext, facts: MountFacts, view: MountView): { ops: BatchOp[]; fill: () => void } {
  const guest = guestPath(ctx);
  facts.created.push(...mkdirTracked(guest, view.fs));
  return {
    ops: [
      ...ops.fs('tmpfs', 'jailyard-guest', guest, ['mode=755', 'nosuid', 'nodev', 'noexec']),
      ...ops.private(guest),
    ],
    fill: () => {
      const env = ctx.spec.params.env;
      writeFileSync(view.fs(posix.join(guest, 'env')), typeof env === 'string' ? env : '', { mode: 0o644 });
    },
  };
}

/**
 * The mount that makes the root a mount point (pivot_root needs one). A root in jailyard's
 * state folder becomes an overlay of itself (its only layer, beside an empty lower dir): a
 * bind's mount root would show the jail its host path (/proc/self/mountinfo field 4, e.g.
 * <state>/jails/J/root), an overlay's is "/", and its layers print as ".". Other roots (a
 * `path` of the admin's, a disk image, the overlay strategy's own overlay) are bound onto
 * themselves.
 */
function rootMount(ctx: JailContext, plan: MountPlan, root: string, facts: MountFacts, view: MountView): BatchOp[] {
  const own =
    !plan.disk &&
    isUnder(ctx.stateDir, root) &&
    root !== posix.normalize(ctx.stateDir) &&
    !plan.mounts.some((m) => posix.normalize(m.target) === root);
  if (!own) return onItself(honourSuid(ops.bind(root, root, false, false, HOST_MOUNT_FLAGS)));
  return onItself(honourSuid(selfOverlay(ctx, root, root, facts, view, HOST_MOUNT_FLAGS)));
}

/** `root` as the only layer of an overlay at `target`, beside an empty lower dir of the
 * jail's state folder: the mount's root and its layers show as "/" and "." in the jail's
 * mountinfo, where a bind's root names the folder. */
function selfOverlay(
  ctx: JailContext,
  root: string,
  target: string,
  facts: MountFacts,
  view: MountView,
  flags: number,
): BatchOp[] {
  const lower = posix.join(ctx.stateDir, 'root-lower');
  const work = posix.join(ctx.stateDir, 'root-work');
  facts.created.push(...mkdirTracked(lower, view.fs), ...mkdirTracked(work, view.fs));
  return ops.overlay([lower], root, work, target, flags);
}

/**
 * The root mounted on itself (a bind of itself, or an overlay whose upper layer is itself over
 * an empty lower one) shows the same files before and after: work below it need not wait for
 * the mount, so the mount points and links are made without a jy-mount run of their own.
 */
function onItself(batch: BatchOp[]): BatchOp[] {
  return batch.map(({ covers: _, ...op }) => op);
}

/**
 * The jail's size-limited writable part: its ext4 image, loop-mounted (mount(8) sets up the
 * loop device with autoclear, so the unmount frees it). A loop device a crash left on the
 * image is detached first, so a start after a crash finds the image free.
 */
async function mountDisk(disk: { image: string; target: string }, facts: MountFacts, view: MountView): Promise<void> {
  const stale = await run(view.argv(['losetup', '-j', disk.image]));
  for (const line of stale.stdout.split('\n')) {
    const dev = /^(\/dev\/loop\d+):/.exec(line)?.[1];
    if (!dev) continue;
    // mounted twice through two loop devices, ext4 would be corrupted: refuse instead
    if (loopMounted(view.mountinfo, dev))
      throw new MountError(`the disk image ${disk.image} is still mounted (${dev}); run jailyard reconcile`, '');
    await run(view.argv(['losetup', '-d', dev]));
  }
  facts.created.push(...mkdirTracked(disk.target, view.fs));
  await mountCmd(
    ['-t', 'ext4', '-o', ['loop', ...HOST_WORDS, 'noatime'].join(','), disk.image, disk.target],
    `the disk image on ${disk.target}`,
    view,
  );
  facts.mounted.push(disk.target);
}

/** Whether a mount in `mountinfo` (a /proc/PID/mountinfo path) has `dev` as its source. */
function loopMounted(mountinfo: string, dev: string): boolean {
  return readFileSync(mountinfo, 'utf8')
    .split('\n')
    .some((l) => l.split(' - ')[1]?.split(' ')[1] === dev);
}

/** HOST_MOUNT_FLAGS as mount(8) words, last so that no option of the user's turns them off. */
const HOST_WORDS = ['nosuid', 'nodev'];

/** Whether the user's own options ask for nosuid (the jail then does not honour setuid either). */
function userNosuid(options: readonly string[]): boolean {
  return (parseMountOptions(options).flags & MS.NOSUID) !== 0;
}

/** Marks the mount a batch creates as one whose setuid bits the jail honours (MountFacts.suid). */
function honourSuid(batch: BatchOp[]): BatchOp[] {
  return batch.map((q) => (q.creates !== undefined ? { ...q, suid: true } : q));
}

function prepareTarget(target: string, dir: boolean, facts: MountFacts, tree: TreeOps): void {
  if (tree.exists(target)) return;
  if (dir) {
    facts.created.push(...tree.mkdirp(target));
  } else {
    facts.created.push(...tree.mkdirp(posix.dirname(target)));
    if (tree.touch(target)) facts.created.push(target);
  }
}

/**
 * A minimal /dev: tmpfs, host device nodes bound in, a private devpts, shm, fd links. All
 * of it inside the fresh tmpfs, so nothing here meets a file the jail made. The device
 * binds are read-only: reading and writing the devices works, but a chmod or chown by the
 * jailed root would change the HOST's node (the bind is the same inode). The devpts holds at
 * most `ptys` ptys (ptys.ts): every instance draws on the kernel's one global pool.
 */
function devfsOps(target: string, range?: UidRange, ptys?: number): BatchOp[] {
  // a user-namespace jail's root owns its /dev as it would without one; its tty group is
  // its range's gid 5
  const owner = range ? [`uid=${range.base}`, `gid=${range.base}`] : [];
  const batch = ops.fs('tmpfs', 'jailyard-dev', target, ['mode=755', 'nosuid', 'size=64k', ...owner]);
  for (const dev of DEVICES)
    batch.push(...ops.file(`${target}/${dev}`), ...ops.bind(`/dev/${dev}`, `${target}/${dev}`, true));
  batch.push(...ops.mkdir(`${target}/pts`), ...ops.mkdir(`${target}/shm`));
  batch.push(
    ...ops.fs('devpts', 'devpts', `${target}/pts`, [
      'newinstance',
      'ptmxmode=0666',
      'mode=620',
      `gid=${(range?.base ?? 0) + 5}`,
      ...(ptys === undefined ? [] : [`max=${ptys}`]),
      'nosuid',
      'noexec',
    ]),
  );
  batch.push(...ops.fs('tmpfs', 'shm', `${target}/shm`, ['mode=1777', 'nosuid', 'nodev', ...owner]));
  const links: [string, string][] = [
    ['ptmx', 'pts/ptmx'],
    ['fd', '/proc/self/fd'],
    ['stdin', '/proc/self/fd/0'],
    ['stdout', '/proc/self/fd/1'],
    ['stderr', '/proc/self/fd/2'],
  ];
  for (const [name, to] of links) batch.push(...ops.symlink(to, `${target}/${name}`));
  return batch;
}

function mountedTargets(view: MountView): Set<string> {
  return new Set(mountTargets(view.mountinfo));
}

/**
 * Unmounts `targets` newest first, in one jy-mount run; a target that fails is detached
 * lazily (it is busy) and the run goes on with the rest. Those in `detach` are detached at
 * once.
 */
export async function unmountAll(
  targets: string[],
  jail?: string,
  view: MountView = HOST_VIEW,
  detach: ReadonlySet<string> = new Set(),
): Promise<void> {
  const present = mountedTargets(view);
  let todo = [...targets].reverse().filter((t) => present.has(t));
  const failed: string[] = [];
  while (todo.length) {
    const r = await runBatch(
      todo.flatMap((t) => ops.umount(t, detach.has(t))),
      (argv) => view.argv(argv),
    );
    if (r.error === undefined) break;
    const stuck = todo[r.done]!;
    const lazy = await runBatch(ops.umount(stuck, true), (argv) => view.argv(argv));
    if (lazy.error !== undefined) failed.push(`${stuck}: ${lazy.error}`);
    todo = todo.slice(r.done + 1);
  }
  if (failed.length) {
    throw new JailyardError('JY_ERR_MOUNT', `cannot unmount ${failed.length} target(s)`, {
      ...(jail ? { jail } : {}),
      step: 'unmount',
      output: failed.join('\n'),
    });
  }
}

export async function unmount(ctx: JailContext, facts: MountFacts): Promise<void> {
  if (facts.namespaceHolder !== undefined) {
    // A nested jail's mounts live in a private namespace: releasing it (if create has not
    // already) frees them; the child's own copy goes with the child's last process.
    const ns = heldNamespace(ctx.stateDir);
    if (ns) await ns.release();
    else if (isMountnsHolder(facts.namespaceHolder, ctx.stateDir)) killTree(facts.namespaceHolder, 'SIGKILL');
    // its guest tmpfs is the one mount in the host's namespace (mount(): the others are the
    // private namespace's)
    const guest = guestPath(ctx);
    await unmountAll(
      facts.mounted.filter((m) => m === guest),
      ctx.name,
      HOST_VIEW,
      guestDetach(ctx),
    );
    return;
  }
  await unmountAll(facts.mounted, ctx.name, HOST_VIEW, guestDetach(ctx));
  // An admin's `path` keeps only what was there before and what the jail wrote: the mount
  // points and files this start made go (empty ones only; links the plan made stay, they
  // are the jail's layout). A root in the state folder keeps its tree between starts.
  if (!isUnder(ctx.stateDir, ctx.path) && !isUnder(posix.dirname(posix.dirname(ctx.stateDir)), ctx.path))
    removeCreated(
      // the jail had its tree: below the root only what still resolves to itself (a
      // directory the jail swapped for a symlink is never followed out of its root)
      facts.created.filter((p) => !isUnder(ctx.path, p) || sameInside(ctx.path, p)),
      plain(),
      false,
    );
}

/** Whether `p` below `root` resolves inside it to itself (no symlink on the way). */
function sameInside(root: string, p: string): boolean {
  try {
    return resolveInside(root, p) === posix.normalize(p);
  } catch {
    return false;
  }
}

/**
 * Removes what a mount step created, newest first: empty directories, and empty regular
 * files; with `links` the symlinks too. What is not empty (the jail wrote there) or was
 * replaced by something else stays. Never follows a symlink.
 */
function removeCreated(created: string[], tree: TreeOps, links: boolean): void {
  for (const p of [...created].reverse()) tree.remove(p, links);
}

function isMountnsHolder(pid: number, stateDir: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('jailyard-mountns') && argv.includes(stateDir);
  } catch {
    return false;
  }
}

/**
 * Where a nested jail's root is pinned inside its private namespace: a path in jailyard's
 * own state folder. The running parent can rename or replace directories of its own tree
 * at any moment; after the pin no step (plan mounts, the stage's pivot_root) walks through
 * the parent's directories again.
 */
export function nestedRoot(stateDir: string): string {
  return posix.join(stateDir, NEST_ROOT);
}

/** The plan with every path below `from` moved below `to` (sources stay host paths). */
function rebasePlan(plan: MountPlan, from: string, to: string): MountPlan {
  const move = (p: string) => (isUnder(from, p) ? to + posix.normalize(p).slice(from.length) : p);
  return {
    root: to,
    mkdirs: plan.mkdirs.map(move),
    symlinks: plan.symlinks.map((l) => ({ path: move(l.path), target: l.target })),
    mounts: plan.mounts.map((m) => ({ ...m, target: move(m.target) })),
  };
}

/**
 * The mounts step of a nested jail, in a private copy of the host's mount namespace. Its
 * root must lie inside the parent's root (resolved there without following a symlink out)
 * or in jailyard's own state folder (a skeleton child). The directory found is bound to the
 * pin and checked to be the same inode after the bind, so a parent swapping a directory
 * for a symlink between the check and the bind is caught.
 */
async function mountNested(ctx: JailContext, plan: MountPlan): Promise<MountFacts> {
  const ns = await holdMountNamespace(ctx.stateDir, ctx.name);
  const view = ns.view;
  const facts: MountFacts = { mounted: [], created: [], namespaceHolder: ns.pid };
  const place = { jail: ctx.name, step: 'mount', param: 'path' };
  const root = posix.normalize(plan.root).replace(/\/+$/, '');
  const pin = nestedRoot(ctx.stateDir);
  try {
    let real: string;
    /** A root in the child's state folder (not in its parent's tree). */
    let own = false;
    if (ctx.parentPath && isUnder(ctx.parentPath, root)) {
      real = resolveInside(ctx.parentPath, root, ctx.name, view.fs);
    } else if (isUnder(ctx.stateDir, root)) {
      real = root;
      own = true;
      facts.created.push(...mkdirTracked(root, view.fs));
    } else {
      throw new JailyardError(
        'JY_ERR_PATH',
        `the root ${root} of a nested jail is not inside its parent's root ${ctx.parentPath ?? '(unknown)'}`,
        place,
      );
    }
    const before = lstatSync(view.fs(real), { throwIfNoEntry: false });
    if (!before?.isDirectory())
      throw new JailyardError(
        'JY_ERR_PATH',
        `the jail root ${root} is not a directory inside the parent's root`,
        place,
      );
    facts.created.push(...mkdirTracked(pin, view.fs));
    const pinning = new Batch(view, facts);
    if (own) {
      // a root in the child's state folder (no parent's mounts below it; nothing of the
      // parent's can move it): an overlay of itself, as a top-level jail's (rootMount)
      pinning.add(selfOverlay(ctx, real, pin, facts, view, 0));
    } else {
      // recursive: the child sees the parent's own mounts below its path, as on FreeBSD
      pinning.add(ops.bind(real, pin, false, true));
    }
    await pinning.flush();
    const after = statSync(view.fs(pin));
    if (!own && (after.dev !== before.dev || after.ino !== before.ino)) {
      throw new JailyardError(
        'JY_ERR_PATH',
        `the jail root ${root} changed while it was mounted (replaced by a symlink?)`,
        place,
      );
    }
    pinning.add(ops.private(pin, true));
    await pinning.flush();
    return await mountIn(ctx, rebasePlan(plan, root, pin), view, facts, true);
  } catch (e) {
    await undo(facts, view, treeBeneath(pin, view.fs));
    await ns.release();
    throw mountFailure(ctx, e);
  }
}

/** Undo of a failed mount call: unmount, then remove what was created, newest first. */
async function undo(facts: MountFacts, view: MountView = HOST_VIEW, tree: TreeOps = plain(view.fs)): Promise<void> {
  try {
    await unmountAll(facts.mounted, undefined, view);
  } catch {
    // reported by the original error; reconcile finds what is left
  }
  removeCreated(facts.created, tree, true);
}
