// The mounts step, on the host side under the jail root (so host hooks see the mounts).
// The root is first bound onto itself and made private: nothing mounted below it propagates
// to the host's peers, and pivot_root later finds a mount point. Every made thing is recorded
// the moment it exists; a failure undoes exactly those, newest first.
import { closeSync, openSync, readlinkSync, rmdirSync, statSync, symlinkSync, unlinkSync, lstatSync, writeFileSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { JailyardError } from '../../errors.ts';
import type { JailContext, MountFacts } from '../driver.ts';
import type { MountPlan, MountStep } from '../../skeleton/plan.ts';
import { isUnder, mkdirTracked, resolveInside } from './paths.ts';
import { run } from './proc.ts';

/** Device nodes a minimal /dev gets bound in from the host. */
const DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

class MountError extends Error {
  readonly output: string;
  constructor(message: string, output: string) {
    super(message);
    this.output = output;
  }
}

async function mountCmd(args: string[], what: string): Promise<void> {
  const r = await run(['mount', ...args]);
  if (r.code !== 0) throw new MountError(`cannot mount ${what}`, (r.stderr || r.stdout).trim());
}

export async function mount(ctx: JailContext, plan: MountPlan): Promise<MountFacts> {
  const root = posix.normalize(plan.root).replace(/\/+$/, '');
  const facts: MountFacts = { mounted: [], created: [] };
  const inRoot = (p: string) => resolveInside(root, p, ctx.name);
  // Targets outside the root are refused before anything is touched.
  for (const step of plan.mounts) inRoot(step.target);
  for (const l of plan.symlinks) inRoot(posix.dirname(l.path));
  try {
    facts.created.push(...mkdirTracked(root));
    await mountCmd(['--bind', root, root], `${root} onto itself`);
    facts.mounted.push(root);
    await mountCmd(['--make-private', root], `${root} private`);
    for (const dir of plan.mkdirs) {
      facts.created.push(...mkdirTracked(isUnder(root, dir) ? inRoot(dir) : posix.normalize(dir)));
    }
    for (const link of plan.symlinks) {
      const at = posix.join(inRoot(posix.dirname(link.path)), posix.basename(link.path));
      facts.created.push(...mkdirTracked(posix.dirname(at)));
      // a restart finds the links of the first start in the jail's own tree: keep them
      const existing = lstatSync(at, { throwIfNoEntry: false });
      if (existing?.isSymbolicLink() && readlinkSync(at) === link.target) continue;
      symlinkSync(link.target, at);
      facts.created.push(at);
    }
    for (const step of plan.mounts) await mountStep(ctx, root, step, facts);
    return facts;
  } catch (e) {
    await undo(facts);
    if (e instanceof JailyardError) throw e;
    const output = e instanceof MountError ? e.output : e instanceof Error ? e.message : String(e);
    const message = e instanceof Error ? e.message : String(e);
    throw new JailyardError('JY_ERR_MOUNT', message, { jail: ctx.name, step: 'mount', output });
  }
}

async function mountStep(ctx: JailContext, root: string, step: MountStep, facts: MountFacts): Promise<void> {
  const target = resolveInside(root, step.target, ctx.name);
  switch (step.kind) {
    case 'proc':
      return; // proc belongs to the jail's pid namespace: mounted inside at create
    case 'bind': {
      const srcIsDir = statSync(step.source).isDirectory();
      prepareTarget(target, srcIsDir, facts);
      await mountCmd(['--bind', ...(step.readonly ? ['-o', 'ro'] : []), step.source, target], `${step.source} on ${target} (bind${step.readonly ? ', ro' : ''})`);
      break;
    }
    case 'overlay': {
      const paths = [...step.lower, step.upper, step.work];
      const bad = paths.find((p) => /[,:]/.test(p));
      if (bad) throw new MountError(`cannot mount overlay on ${target}: path ${bad} contains ',' or ':'`, '');
      facts.created.push(...mkdirTracked(step.upper), ...mkdirTracked(step.work));
      prepareTarget(target, true, facts);
      const opts = `lowerdir=${step.lower.join(':')},upperdir=${step.upper},workdir=${step.work}`;
      await mountCmd(['-t', 'overlay', '-o', opts, 'overlay', target], `overlay ${step.lower.join(':')} on ${target}`);
      break;
    }
    case 'tmpfs':
      prepareTarget(target, true, facts);
      await mountCmd(['-t', 'tmpfs', '-o', step.options.length ? step.options.join(',') : 'mode=755', 'tmpfs', target], `tmpfs on ${target}`);
      break;
    case 'fs':
      prepareTarget(target, true, facts);
      await mountCmd(['-t', step.fstype, ...(step.options.length ? ['-o', step.options.join(',')] : []), step.source, target], `${step.source} on ${target} (${step.fstype})`);
      break;
    case 'devfs':
      await mountDevfs(target, facts);
      return;
  }
  facts.mounted.push(target);
}

function prepareTarget(target: string, dir: boolean, facts: MountFacts): void {
  try {
    lstatSync(target);
    return;
  } catch {
    // missing: create it below
  }
  if (dir) {
    facts.created.push(...mkdirTracked(target));
  } else {
    facts.created.push(...mkdirTracked(posix.dirname(target)));
    closeSync(openSync(target, 'a'));
    facts.created.push(target);
  }
}

/** A minimal /dev: tmpfs, host device nodes bound in, a private devpts, shm, fd links. */
async function mountDevfs(target: string, facts: MountFacts): Promise<void> {
  prepareTarget(target, true, facts);
  await mountCmd(['-t', 'tmpfs', '-o', 'mode=755,nosuid,size=64k', 'jailyard-dev', target], `devfs (tmpfs) on ${target}`);
  facts.mounted.push(target);
  for (const dev of DEVICES) {
    const node = `${target}/${dev}`;
    writeFileSync(node, '');
    await mountCmd(['--bind', `/dev/${dev}`, node], `/dev/${dev} on ${node}`);
    facts.mounted.push(node);
  }
  for (const d of ['pts', 'shm']) mkdirTracked(`${target}/${d}`);
  await mountCmd(['-t', 'devpts', '-o', 'newinstance,ptmxmode=0666,mode=620,gid=5,nosuid,noexec', 'devpts', `${target}/pts`], `devpts on ${target}/pts`);
  facts.mounted.push(`${target}/pts`);
  await mountCmd(['-t', 'tmpfs', '-o', 'mode=1777,nosuid,nodev', 'shm', `${target}/shm`], `tmpfs on ${target}/shm`);
  facts.mounted.push(`${target}/shm`);
  const links: [string, string][] = [['ptmx', 'pts/ptmx'], ['fd', '/proc/self/fd'], ['stdin', '/proc/self/fd/0'], ['stdout', '/proc/self/fd/1'], ['stderr', '/proc/self/fd/2']];
  for (const [name, to] of links) symlinkSync(to, `${target}/${name}`);
}

function mountedTargets(): Set<string> {
  return new Set(
    readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ')[4]!.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))),
  );
}

/**
 * Unmounts `targets` newest first. One umount process for the whole list (it takes them in
 * order); on failure each remaining one is retried alone, lazily (-l) if it is busy.
 */
export async function unmountAll(targets: string[], jail?: string): Promise<void> {
  const present = mountedTargets();
  const todo = [...targets].reverse().filter((t) => present.has(t));
  if (!todo.length) return;
  const r = await run(['umount', ...todo]);
  if (r.code === 0) return;
  const still = mountedTargets();
  const failed: string[] = [];
  for (const t of todo) {
    if (!still.has(t)) continue;
    const again = await run(['umount', t]);
    if (again.code === 0) continue;
    const lazy = await run(['umount', '-l', t]);
    if (lazy.code !== 0) failed.push(`${t}: ${lazy.stderr.trim()}`);
  }
  if (failed.length) {
    throw new JailyardError('JY_ERR_MOUNT', `cannot unmount ${failed.length} target(s)`, { ...(jail ? { jail } : {}), step: 'unmount', output: failed.join('\n') });
  }
}

export async function unmount(ctx: JailContext, facts: MountFacts): Promise<void> {
  await unmountAll(facts.mounted, ctx.name);
}

/** Undo of a failed mount call: unmount, then remove what was created, newest first. */
async function undo(facts: MountFacts): Promise<void> {
  try {
    await unmountAll(facts.mounted);
  } catch {
    // reported by the original error; reconcile finds what is left
  }
  for (const p of [...facts.created].reverse()) {
    try {
      const st = lstatSync(p);
      if (st.isDirectory()) rmdirSync(p);
      else unlinkSync(p);
    } catch {
      // already gone, or not empty because something else lives there now
    }
  }
}
