// The mounts step on FreeBSD: directories and symlinks with node:fs, mounts with
// mount_nullfs / mount_unionfs / mount(8). Each finished piece is recorded at once, so a
// failure undoes exactly what this call made, newest first (runc's cleanup-as-you-go).

import { lstatSync, mkdirSync, readlinkSync, realpathSync, rmdirSync, symlinkSync, unlinkSync } from 'node:fs';
import { dirname, isAbsolute, relative, sep } from 'node:path';
import { JailyardError, withContext } from '../../errors.ts';
import type { JailContext, MountFacts } from '../driver.ts';
import type { MountPlan } from '../../skeleton/plan.ts';
import { mountCommands, umountArgv } from './commands.ts';
import { parseMountP } from './parse.ts';
import type { CommandRunner } from './runner.ts';
import { TOOLS } from './tools.ts';

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Makes `dir` and its missing parents; returns the ones it made, outermost first. */
function mkdirRecorded(dir: string): string[] {
  const missing: string[] = [];
  for (let d = dir; !exists(d); d = dirname(d)) missing.unshift(d);
  for (const d of missing) mkdirSync(d);
  return missing;
}

/**
 * jail(8)'s check_path: below the jail root no component of a mount point may be a symlink,
 * or a jail's root user could plant one and have the host mount over its own files.
 */
function checkNoSymlink(root: string, target: string, jail: string, what = 'mount point'): void {
  const rel = relative(root, target);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return;
  let p = root;
  for (const part of rel.split(sep)) {
    p = `${p}${sep}${part}`;
    if (exists(p) && lstatSync(p).isSymbolicLink()) {
      throw new JailyardError('JY_ERR_PATH', `${what} ${target}: ${p} is a symbolic link`, {
        jail,
        step: 'mounts',
      });
    }
  }
}

/** The name mount -p shows for a path (it prints resolved paths). */
function canonical(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** Removes what the plan created, newest first; a non-empty or busy directory stays. */
function removeCreated(created: string[]): void {
  for (const p of [...created].reverse()) {
    try {
      if (lstatSync(p).isSymbolicLink()) unlinkSync(p);
      else rmdirSync(p);
    } catch {
      // gone already, or not empty / still a mount point: leave it, never remove more
    }
  }
}

/** Mount targets currently mounted, each as often as it is stacked. */
async function mountedTargets(runner: CommandRunner): Promise<Map<string, number>> {
  const r = await runner.run([TOOLS.mount, '-p']);
  if (r.code !== 0)
    throw new JailyardError('JY_ERR_MOUNT', `mount -p failed (exit ${r.code})`, {
      step: 'unmount',
      output: r.stderr.trim(),
    });
  const counts = new Map<string, number>();
  for (const e of parseMountP(r.stdout)) counts.set(e.target, (counts.get(e.target) ?? 0) + 1);
  return counts;
}

export async function executePlan(
  runner: CommandRunner,
  ctx: JailContext,
  plan: MountPlan,
  devfsRuleset: string,
): Promise<MountFacts> {
  const facts: MountFacts = { mounted: [], created: [] };
  const undo = async (): Promise<string[]> => {
    const stuck: string[] = [];
    for (const target of [...facts.mounted].reverse()) {
      const r = await runner.run(umountArgv(target));
      if (r.code !== 0) stuck.push(target);
    }
    if (stuck.length === 0) removeCreated(facts.created);
    return stuck;
  };
  const fail = async (e: JailyardError): Promise<never> => {
    const had = facts.mounted.length ? `had mounted ${facts.mounted.join(', ')}` : 'nothing was mounted yet';
    const stuck = await undo();
    throw withContext(e, {
      after: stuck.length
        ? `; ${had}; still mounted (run jailyard reconcile): ${stuck.join(', ')}`
        : `; ${had}; all undone`,
    });
  };

  try {
    for (const dir of plan.mkdirs) facts.created.push(...mkdirRecorded(dir));
    for (const link of plan.symlinks) {
      if (exists(link.path)) {
        if (lstatSync(link.path).isSymbolicLink() && readlinkSync(link.path) === link.target) continue;
        throw new JailyardError('JY_ERR_PATH', `cannot make symlink ${link.path} -> ${link.target}: the path exists`, {
          jail: ctx.name,
          step: 'mounts',
        });
      }
      facts.created.push(...mkdirRecorded(dirname(link.path)));
      symlinkSync(link.target, link.path);
      facts.created.push(link.path);
    }
  } catch (e) {
    const err =
      e instanceof JailyardError
        ? e
        : new JailyardError('JY_ERR_PATH', `preparing the jail's directories failed: ${(e as Error).message}`, {
            jail: ctx.name,
            step: 'mounts',
          });
    return fail(err);
  }

  for (const step of plan.mounts) {
    for (const cmd of mountCommands(step, devfsRuleset)) {
      try {
        checkNoSymlink(plan.root, cmd.target, ctx.name);
        // a source in a jail's tree (MountStep within): no symlink of that jail's on the way
        // (mount_nullfs would follow it to a host path)
        if (step.kind === 'bind' && step.within)
          checkNoSymlink(step.within, step.source, ctx.name, "mount source in a jail's tree");
      } catch (e) {
        return fail(e as JailyardError);
      }
      const r = await runner.run(cmd.argv);
      if (r.code !== 0) {
        const output = (r.stderr || r.stdout).trim();
        return fail(
          new JailyardError(
            'JY_ERR_MOUNT',
            `mounting ${cmd.source} on ${cmd.target} failed (${step.origin}): ${output || `exit ${r.code}`}`,
            { jail: ctx.name, step: 'mounts', param: step.origin, output },
          ),
        );
      }
      facts.mounted.push(canonical(cmd.target));
    }
  }
  return facts;
}

/** Unmounts in reverse; targets no longer mounted are skipped; then removes what was created. */
export async function undoPlan(runner: CommandRunner, ctx: JailContext, facts: MountFacts): Promise<void> {
  const counts = await mountedTargets(runner);
  const stuck: { target: string; output: string }[] = [];
  for (const target of [...facts.mounted].reverse()) {
    const n = counts.get(target) ?? 0;
    if (n === 0) continue;
    const r = await runner.run(umountArgv(target));
    if (r.code !== 0) stuck.push({ target, output: (r.stderr || r.stdout).trim() });
    else counts.set(target, n - 1);
  }
  if (stuck.length) {
    throw new JailyardError('JY_ERR_MOUNT', `could not unmount ${stuck.map((s) => s.target).join(', ')}`, {
      jail: ctx.name,
      step: 'unmount',
      output: stuck.map((s) => `${s.target}: ${s.output}`).join('\n'),
    });
  }
  removeCreated(facts.created);
}
