// The runtime's own readings of a jail's parameters: its hooks, limits and dependencies.
// The generic typed readers (paramString/Int/Bool/List, parseSize) are in src/conf/spec.ts.

import { paramBool, paramInt, paramList, paramString, parseSize, type Params } from '../conf/spec.ts';
import { currentPlatform, loadDefaults } from '../defaults.ts';
import type { Limits } from '../platform/driver.ts';
import { ancestorsOf } from '../store/names.ts';
import type { JailRecord } from '../store/types.ts';
import { parentName } from './jailplan.ts';

/** The commands of an exec.* hook (a list parameter: each element runs in order). */
export function hookCommands(params: Params, hook: string): string[] {
  return paramList(params, hook).filter((c) => c.trim() !== '');
}

export function jailLimits(params: Params, jail: string): Limits {
  const limits: Limits = {};
  const mem = paramString(params, 'limits.memory');
  if (mem) limits.memoryBytes = parseSize(mem, { jail, param: 'limits.memory' });
  // none set: the platform's default (defaults.json limits.procs), so a fork bomb stays inside
  const procs = paramInt(params, 'limits.procs') ?? loadDefaults().limits.procs?.[currentPlatform()] ?? undefined;
  if (procs !== undefined) limits.maxProcs = procs;
  const cpu = paramInt(params, 'limits.cpu');
  if (cpu !== undefined) limits.cpuPercent = cpu;
  return limits;
}

/** `depend` names (a list parameter). */
export function dependsOf(params: Params): string[] {
  return paramList(params, 'depend')
    .flatMap((d) => d.split(/[\s,]+/))
    .filter(Boolean);
}

/** Jails that may have gone away by themselves (lifecycle.ts hasDied, without asking the
 * driver): running without persist. Only these make a reader load the driver. */
export const mayHaveDied = (j: JailRecord): boolean =>
  j.state === 'running' && j.runtime?.create !== undefined && !paramBool(j.params, 'persist');

/**
 * Records as jls(8) reports them: `children.max` 0 when unset (its default), `children.cur`
 * the jail's descendant records, at every level and whatever their state (what children.max
 * bounds: a FreeBSD jail that ends is gone, a jailyard record stays until it is removed and
 * holds its name and store space all the while; guest-tools.ts checkJailArgv), and
 * `parent` the parent's jid (0 at the top, or while the parent is stopped). Copies: the
 * stored parameters are not changed. `all` is every jail (for the counts).
 */
export function withDerived(jails: readonly JailRecord[], all: readonly JailRecord[]): JailRecord[] {
  const jidOf = new Map(all.map((j) => [j.name, j.jid]));
  // every record counts once for each of its ancestors
  const below = new Map<string, number>();
  for (const c of all) {
    for (const a of ancestorsOf(c.name)) below.set(a, (below.get(a) ?? 0) + 1);
  }
  return jails.map((j) => {
    const up = parentName(j.name);
    const parent = up === undefined ? 0 : (jidOf.get(up) ?? 0);
    const cur = below.get(j.name) ?? 0;
    const max = j.params['children.max'];
    return {
      ...j,
      params: {
        ...j.params,
        'children.max': max === undefined || max === '' ? 0 : max,
        'children.cur': cur,
        parent,
      },
    };
  });
}
