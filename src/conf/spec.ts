// The resolved form of one jail's configuration: what every later stage works from.
// Produced by the evaluator (jail.conf, rc.conf import, CLI `param=value` arguments, API
// bodies), consumed by the planner, the runtime and the store.

import { JailyardError } from '../errors.ts';

/** A typed parameter value: integers are numbers, booleans true/false, lists arrays. */
export type ParamValue = string | number | boolean | string[];

/** Parameters in definition order (object key order is the file's order). */
export type Params = Record<string, ParamValue>;

export interface JailSpec {
  /** The jail's name; "parent.child" for a nested jail. */
  name: string;
  /** The jail.conf block that defined it when that differs from `name`: a numeric block
   * (the jid) that sets `name = ...` (`5309 { name = basejail; }`). jail(8) addresses such
   * a jail by the block's name (`jail -c 5309`) and prints it in its notes. */
  block?: string;
  /** Resolved, typed parameters, `name` included, in the order of the source. */
  params: Params;
}

// Typed reads of resolved parameters. The evaluator already typed the values; these pick
// them and turn sizes and lists into numbers and arrays, for every stage that reads a spec.

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

/** jail(8)'s boolean: `p;` / `p = 1|true|yes` is on, `nop;` / `p = 0|false|no|off` off. */
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

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "256M", "1g", "1048576" -> bytes (rctl(8) / cgroup notation). */
export function parseSize(text: string, place: { jail?: string; param: string }): number {
  const m = /^\s*(\d+)\s*([kmgt]?)i?b?\s*$/i.exec(text);
  if (!m) throw new JailyardError('JY_ERR_PARAM_VALUE', `not a size (like 256M): ${JSON.stringify(text)}`, place);
  return Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!;
}

/** The jid a jail's name sets by itself: a numeric name other than 0 ("5309", "05"), as a
 * numeric jail.conf block does (config.c) and as the kernel names a jail made without a name. */
export function implicitJid(name: string): number | undefined {
  return /^[0-9]+$/.test(name) && Number(name) !== 0 ? Number(name) : undefined;
}
