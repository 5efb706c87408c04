// The runtime's own readings of a jail's parameters: its hooks, limits and dependencies.
// The generic typed readers (paramString/Int/Bool/List, parseSize) are in src/conf/spec.ts.

import { paramInt, paramList, paramString, parseSize, type Params } from '../conf/spec.ts';
import type { Limits } from '../platform/driver.ts';

/** The commands of an exec.* hook (a list parameter: each element runs in order). */
export function hookCommands(params: Params, hook: string): string[] {
  return paramList(params, hook).filter((c) => c.trim() !== '');
}

export function jailLimits(params: Params, jail: string): Limits {
  const limits: Limits = {};
  const mem = paramString(params, 'limits.memory');
  if (mem) limits.memoryBytes = parseSize(mem, { jail, param: 'limits.memory' });
  const procs = paramInt(params, 'limits.procs');
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
