// What reconcile finds and removes on FreeBSD: mounts below the state folder, jails and
// rctl rules of the jails this state folder made (isOwnJail); never another's.

import { JailyardError } from '../../errors.ts';
import type { Leftovers } from '../driver.ts';
import { rctlSubject, umountArgv } from './commands.ts';
import { parseMountP, parseRctl } from './parse.ts';
import { type FreeBSDHost, jls, must, outputOf, SYSTEM } from './system.ts';
import { TOOLS } from './tools.ts';

/** Mount points at or below `dir` (`mount -p`). */
export function mountsBelow(host: FreeBSDHost, dir: string): string[] {
  const r = host.runner.runSync([TOOLS.mount, '-p']);
  if (r.code !== 0)
    throw new JailyardError('JY_ERR_PLATFORM', `mount -p failed: ${outputOf(r)}`, { output: outputOf(r) });
  const d = dir.replace(/\/+$/, '');
  return parseMountP(r.stdout)
    .map((e) => e.target)
    .filter((t) => t === d || t.startsWith(`${d}/`));
}

export async function scanLeftovers(host: FreeBSDHost): Promise<Leftovers> {
  const found: Leftovers = { mounts: [], netns: [], links: [], cgroups: [], pids: [] };
  const m = await host.runner.run([TOOLS.mount, '-p'], SYSTEM);
  if (m.code !== 0)
    throw new JailyardError('JY_ERR_PLATFORM', `mount -p failed: ${outputOf(m)}`, {
      step: 'reconcile',
      output: outputOf(m),
    });
  // newest first, so removing them in this order unmounts stacked mounts top down
  found.mounts = parseMountP(m.stdout)
    .map((e) => e.target)
    .filter(host.isOwnMount)
    .reverse();
  found.pids = (await jls(host, ['jid', 'name']))
    .filter((j) => j.name !== undefined && host.isOwnJail(j.name))
    .map((j) => j.jid);
  const rc = await host.runner.run([TOOLS.rctl], SYSTEM);
  // without RACCT rctl fails: then there are no rules to find
  if (rc.code === 0) {
    const subjects = parseRctl(rc.stdout)
      .filter((r) => r.subjectType === 'jail' && host.isOwnJail(r.subject))
      .map((r) => rctlSubject(r.subject));
    found.cgroups = [...new Set(subjects)];
  }
  return found;
}

export async function removeLeftover(host: FreeBSDHost, kind: keyof Leftovers, id: string | number): Promise<void> {
  switch (kind) {
    case 'mounts':
      await must(host, umountArgv(String(id)), 'JY_ERR_MOUNT', `umount ${id}`, { step: 'reconcile' });
      return;
    case 'pids':
      await must(host, [TOOLS.jail, '-R', String(id)], 'JY_ERR_STEP_FAILED', `jail -R ${id}`, { step: 'reconcile' });
      return;
    case 'cgroups': {
      const r = await host.runner.run([TOOLS.rctl, '-r', String(id)], SYSTEM);
      if (r.code !== 0 && !/no such process/i.test(r.stderr))
        throw new JailyardError('JY_ERR_STEP_FAILED', `rctl -r ${id} failed: ${outputOf(r)}`, {
          step: 'reconcile',
          output: outputOf(r),
        });
      return;
    }
    default:
      throw new JailyardError('JY_ERR_USAGE', `FreeBSD has no leftovers of kind ${kind}`, { step: 'reconcile' });
  }
}
