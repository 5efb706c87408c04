// Typed reads of a jail's resolved parameters, for the runtime. The conf evaluator already
// typed the values; these helpers only pick them and turn sizes and lists into numbers/arrays.

import { JailyardError } from '../errors.ts';
import type { Params } from '../conf/spec.ts';
import type { Limits } from '../platform/driver.ts';

export function paramString(params: Params, name: string): string | undefined {
  const v = params[name];
  if (v === undefined || v === false) return undefined;
  if (Array.isArray(v)) return v.join(',');
  return String(v);
}

export function paramInt(params: Params, name: string): number | undefined {
  const v = params[name];
  if (v === undefined || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n))
    throw new JailyardError('JY_ERR_PARAM_VALUE', `not an integer: ${JSON.stringify(v)}`, { param: name });
  return n;
}

export function paramBool(params: Params, name: string): boolean {
  const v = params[name];
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return !['', '0', 'false', 'no', 'off'].includes(v.toLowerCase());
  return false;
}

export function paramList(params: Params, name: string): string[] {
  const v = params[name];
  if (v === undefined || v === false || v === '') return [];
  if (Array.isArray(v)) return v;
  return [String(v)];
}

/** The commands of an exec.* hook (a list parameter: each element runs in order). */
export function hookCommands(params: Params, hook: string): string[] {
  return paramList(params, hook).filter((c) => c.trim() !== '');
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "256M", "1g", "1048576" -> bytes (rctl(8) / cgroup notation). */
export function parseSize(text: string, place: { jail?: string; param: string }): number {
  const m = /^\s*(\d+)\s*([kmgt]?)i?b?\s*$/i.exec(text);
  if (!m) throw new JailyardError('JY_ERR_PARAM_VALUE', `not a size (like 256M): ${JSON.stringify(text)}`, place);
  return Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!;
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
