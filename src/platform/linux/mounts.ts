// The mounts step, on the host side under the jail root (so host hooks see the mounts).
// The root is first bound onto itself and made private: nothing mounted below it propagates
// to the host's peers, and pivot_root later finds a mount point. Every made thing is recorded
// the moment it exists; a failure undoes exactly those, newest first.
import { mountTargets } from './mountinfo.ts';
import { closeSync, openSync, readlinkSync, rmdirSync, statSync, symlinkSync, unlinkSync, lstatSync, writeFileSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { JailyardError } from '../../errors.ts';
import type { JailContext, MountFacts } from '../driver.ts';
import type { MountPlan, MountStep } from '../../skeleton/plan.ts';
import { isUnder, mkdirTracked, resolveInside } from './paths.ts';
import { killTree, run } from './proc.ts';
import { HOST_VIEW, heldNamespace, holdMountNamespace, type MountView } from './mountns.ts';

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

export async function mount(ctx: JailContext, plan: MountPlan): Promise<MountFacts> {
  if (ctx.parent) return await mountNested(ctx, plan);
  return await mountIn(ctx, plan, HOST_VIEW, { mounted: [], created: [] }, false);
}

/**
 * Executes the plan in one mount namespace (`view`). Unless `rootReady`, the root is first
 * bound onto itself and made private.
 */
async function mountIn(ctx: JailContext, plan: MountPlan, view: MountView, facts: MountFacts, rootReady: boolean): Promise<MountFacts> {
  const root = posix.normalize(plan.root).replace(/\/+$/, '');
  const inRoot = (p: string) => resolveInside(root, p, ctx.name, view.fs);
  // Targets outside the root are refused before anything is touched.
  for (const step of plan.mounts) inRoot(step.target);
  for (const l of plan.symlinks) inRoot(posix.dirname(l.path));
  try {
    if (!rootReady) {
      facts.created.push(...mkdirTracked(root, view.fs));
      await mountCmd(['--bind', root, root], `${root} onto itself`, view);
      facts.mounted.push(root);
      await mountCmd(['--make-private', root], `${root} private`, view);
    }
    for (const dir of plan.mkdirs) {
      facts.created.push(...mkdirTracked(isUnder(root, dir) ? inRoot(dir) : posix.normalize(dir), view.fs));
    }
    for (const link of plan.symlinks) {
      const at = posix.join(inRoot(posix.dirname(link.path)), posix.basename(link.path));
      facts.created.push(...mkdirTracked(posix.dirname(at), view.fs));
      // a restart finds the links of the first start in the jail's own tree: keep them
      const existing = lstatSync(view.fs(at), { throwIfNoEntry: false });
      if (existing?.isSymbolicLink() && readlinkSync(view.fs(at)) === link.target) continue;
      symlinkSync(link.target, view.fs(at));
      facts.created.push(at);
    }
    for (const step of plan.mounts) await mountStep(ctx, root, step, facts, view);
    return facts;
  } catch (e) {
    await undo(facts, view);
    if (e instanceof JailyardError) throw e;
    const output = e instanceof MountError ? e.output : e instanceof Error ? e.message : String(e);
    const message = e instanceof Error ? e.message : String(e);
    throw new JailyardError('JY_ERR_MOUNT', message, { jail: ctx.name, step: 'mount', output });
  }
}

async function mountStep(ctx: JailContext, root: string, step: MountStep, facts: MountFacts, view: MountView): Promise<void> {
  const target = resolveInside(root, step.target, ctx.name, view.fs);
  switch (step.kind) {
    case 'proc':
      return; // proc belongs to the jail's pid namespace: mounted inside at create
    case 'bind': {
      const srcIsDir = statSync(view.fs(step.source)).isDirectory();
      prepareTarget(target, srcIsDir, facts, view);
      await mountCmd(['--bind', ...(step.readonly ? ['-o', 'ro'] : []), step.source, target], `${step.source} on ${target} (bind${step.readonly ? ', ro' : ''})`, view);
      break;
    }
    case 'overlay': {
      const paths = [...step.lower, step.upper, step.work];
      const bad = paths.find((p) => /[,:]/.test(p));
      if (bad) throw new MountError(`cannot mount overlay on ${target}: path ${bad} contains ',' or ':'`, '');
      facts.created.push(...mkdirTracked(step.upper, view.fs), ...mkdirTracked(step.work, view.fs));
      prepareTarget(target, true, facts, view);
      const opts = `lowerdir=${step.lower.join(':')},upperdir=${step.upper},workdir=${step.work}`;
      await mountCmd(['-t', 'overlay', '-o', opts, 'overlay', target], `overlay ${step.lower.join(':')} on ${target}`, view);
      break;
    }
    case 'tmpfs':
      prepareTarget(target, true, facts, view);
      await mountCmd(['-t', 'tmpfs', '-o', step.options.length ? step.options.join(',') : 'mode=755', 'tmpfs', target], `tmpfs on ${target}`, view);
      break;
    case 'fs':
      prepareTarget(target, true, facts, view);
      await mountCmd(['-t', step.fstype, ...(step.options.length ? ['-o', step.options.join(',')] : []), step.source, target], `${step.source} on ${target} (${step.fstype})`, view);
      break;
    case 'devfs':
      await mountDevfs(target, facts, view);
      return;
  }
  facts.mounted.push(target);
}

function prepareTarget(target: string, dir: boolean, facts: MountFacts, view: MountView): void {
  try {
    lstatSync(view.fs(target));
    return;
  } catch {
    // missing: create it below
  }
  if (dir) {
    facts.created.push(...mkdirTracked(target, view.fs));
  } else {
    facts.created.push(...mkdirTracked(posix.dirname(target), view.fs));
    closeSync(openSync(view.fs(target), 'a'));
    facts.created.push(target);
  }
}

/** A minimal /dev: tmpfs, host device nodes bound in, a private devpts, shm, fd links. */
async function mountDevfs(target: string, facts: MountFacts, view: MountView): Promise<void> {
  prepareTarget(target, true, facts, view);
  await mountCmd(['-t', 'tmpfs', '-o', 'mode=755,nosuid,size=64k', 'jailyard-dev', target], `devfs (tmpfs) on ${target}`, view);
  facts.mounted.push(target);
  for (const dev of DEVICES) {
    const node = `${target}/${dev}`;
    writeFileSync(view.fs(node), '');
    await mountCmd(['--bind', `/dev/${dev}`, node], `/dev/${dev} on ${node}`, view);
    facts.mounted.push(node);
  }
  for (const d of ['pts', 'shm']) mkdirTracked(`${target}/${d}`, view.fs);
  await mountCmd(['-t', 'devpts', '-o', 'newinstance,ptmxmode=0666,mode=620,gid=5,nosuid,noexec', 'devpts', `${target}/pts`], `devpts on ${target}/pts`, view);
  facts.mounted.push(`${target}/pts`);
  await mountCmd(['-t', 'tmpfs', '-o', 'mode=1777,nosuid,nodev', 'shm', `${target}/shm`], `tmpfs on ${target}/shm`, view);
  facts.mounted.push(`${target}/shm`);
  const links: [string, string][] = [['ptmx', 'pts/ptmx'], ['fd', '/proc/self/fd'], ['stdin', '/proc/self/fd/0'], ['stdout', '/proc/self/fd/1'], ['stderr', '/proc/self/fd/2']];
  for (const [name, to] of links) symlinkSync(to, view.fs(`${target}/${name}`));
}

function mountedTargets(view: MountView): Set<string> {
  return new Set(mountTargets(view.mountinfo));
}

/**
 * Unmounts `targets` newest first. One umount process for the whole list (it takes them in
 * order); on failure each remaining one is retried alone, lazily (-l) if it is busy.
 */
export async function unmountAll(targets: string[], jail?: string, view: MountView = HOST_VIEW): Promise<void> {
  const present = mountedTargets(view);
  const todo = [...targets].reverse().filter((t) => present.has(t));
  if (!todo.length) return;
  const r = await run(view.argv(['umount', ...todo]));
  if (r.code === 0) return;
  const still = mountedTargets(view);
  const failed: string[] = [];
  for (const t of todo) {
    if (!still.has(t)) continue;
    const again = await run(view.argv(['umount', t]));
    if (again.code === 0) continue;
    const lazy = await run(view.argv(['umount', '-l', t]));
    if (lazy.code !== 0) failed.push(`${t}: ${lazy.stderr.trim()}`);
  }
  if (failed.length) {
    throw new JailyardError('JY_ERR_MOUNT', `cannot unmount ${failed.length} target(s)`, { ...(jail ? { jail } : {}), step: 'unmount', output: failed.join('\n') });
  }
}

export async function unmount(ctx: JailContext, facts: MountFacts): Promise<void> {
  if (facts.namespaceHolder !== undefined) {
    // A nested jail's mounts live in a private namespace: releasing it (if create has not
    // already) frees them; the child's own copy goes with the child's last process.
    const ns = heldNamespace(ctx.stateDir);
    if (ns) return await ns.release();
    if (isMountnsHolder(facts.namespaceHolder, ctx.stateDir)) killTree(facts.namespaceHolder, 'SIGKILL');
    return;
  }
  await unmountAll(facts.mounted, ctx.name);
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
  return posix.join(stateDir, 'nest-root');
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
    if (ctx.parentPath && isUnder(ctx.parentPath, root)) {
      real = resolveInside(ctx.parentPath, root, ctx.name, view.fs);
    } else if (isUnder(ctx.stateDir, root)) {
      real = root;
      facts.created.push(...mkdirTracked(root, view.fs));
    } else {
      throw new JailyardError('JY_ERR_PATH', `the root ${root} of a nested jail is not inside its parent's root ${ctx.parentPath ?? '(unknown)'}`, place);
    }
    const before = lstatSync(view.fs(real), { throwIfNoEntry: false });
    if (!before?.isDirectory()) throw new JailyardError('JY_ERR_PATH', `the jail root ${root} is not a directory inside the parent's root`, place);
    facts.created.push(...mkdirTracked(pin, view.fs));
    // recursive: the child sees the parent's own mounts below its path, as on FreeBSD
    await mountCmd(['--rbind', real, pin], `${real} on ${pin}`, view);
    facts.mounted.push(pin);
    const after = statSync(view.fs(pin));
    if (after.dev !== before.dev || after.ino !== before.ino) {
      throw new JailyardError('JY_ERR_PATH', `the jail root ${root} changed while it was mounted (replaced by a symlink?)`, place);
    }
    await mountCmd(['--make-rprivate', pin], `${pin} private`, view);
    return await mountIn(ctx, rebasePlan(plan, root, pin), view, facts, true);
  } catch (e) {
    await undo(facts, view);
    await ns.release();
    if (e instanceof JailyardError) throw e;
    const output = e instanceof MountError ? e.output : e instanceof Error ? e.message : String(e);
    throw new JailyardError('JY_ERR_MOUNT', e instanceof Error ? e.message : String(e), { jail: ctx.name, step: 'mount', output });
  }
}

/** Undo of a failed mount call: unmount, then remove what was created, newest first. */
async function undo(facts: MountFacts, view: MountView = HOST_VIEW): Promise<void> {
  try {
    await unmountAll(facts.mounted, undefined, view);
  } catch {
    // reported by the original error; reconcile finds what is left
  }
  for (const p of [...facts.created].reverse()) {
    try {
      const st = lstatSync(view.fs(p));
      if (st.isDirectory()) rmdirSync(view.fs(p));
      else unlinkSync(view.fs(p));
    } catch {
      // already gone, or not empty because something else lives there now
    }
  }
}
