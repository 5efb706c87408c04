// Turning a parameter's resolved value strings into its typed value, per the registry.
// The rules follow jail(8): scalars keep the last value, booleans accept true/false/N,
// integers are whole decimal numbers (config.c check_intparams).

import { isIP } from 'node:net';
import type { ParamValue } from './spec.ts';
import type { ParamDef } from './params.ts';

/** Why a value was refused; the caller adds the place (file:line:col, jail, parameter). */
export class ValueProblem {
  readonly message: string;
  /** Index of the offending value string, when one is to blame. */
  readonly index: number | undefined;
  constructor(message: string, index?: number) {
    this.message = message;
    this.index = index;
  }
}

const INT = /^[+-]?[0-9]+$/;
const SIZE = /^[0-9]+(\.[0-9]+)?[KMGTkmgt]?[Bb]?$/;

function parseBool(s: string): boolean | undefined {
  const l = s.toLowerCase();
  if (l === 'true') return true;
  if (l === 'false') return false;
  if (INT.test(s)) return Number(s) !== 0;
  // an empty value is false, as strtol reads it: jail(8)'s bool_param for its own booleans
  // (mount.devfs = "";), libjail's jailparam_import for the kernel's (persist = "";)
  if (s === '') return false;
  return undefined;
}

function checkAddress(def: ParamDef, entry: string): string | undefined {
  // FreeBSD: [interface|]address[/netmask][ ifconfig-params]
  const bar = entry.indexOf('|');
  const rest = bar >= 0 ? entry.slice(bar + 1) : entry;
  const addr = rest.split(/[/ ]/, 1)[0] ?? '';
  // libjail converts with inet_pton(3), which takes no "%zone" (Node's isIP does)
  const family = addr.includes('%') ? 0 : isIP(addr);
  const want = def.name.startsWith('ip6') ? 6 : 4;
  if (family !== want) return `"${entry}" is not an IPv${want} address ([interface|]address[/mask])`;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const mask = rest.slice(slash + 1).split(' ', 1)[0] ?? '';
    const bits = /^[0-9]{1,3}$/.test(mask) ? Number(mask) : NaN;
    const okMask = want === 4 ? (bits >= 0 && bits <= 32) || isIP(mask) === 4 : bits >= 0 && bits <= 128;
    if (!okMask) return `"${entry}" has a bad netmask "${mask}"`;
  }
  return undefined;
}

/**
 * The typed value of `values` (already variable-substituted) for `def`.
 * `negated` is true when written `noNAME`; an empty `values` is the valueless form.
 */
export function typeValue(def: ParamDef, negated: boolean, values: readonly string[]): ParamValue | ValueProblem {
  const lastIndex = values.length - 1;
  const last = values[lastIndex];
  for (let i = 0; i < values.length; i++) {
    if ((values[i] as string).includes('\0')) return new ValueProblem('a value cannot contain a NUL character', i);
  }
  switch (def.type) {
    case 'bool': {
      if (last === undefined) return !negated;
      const b = parseBool(last);
      if (b === undefined)
        return new ValueProblem(`unknown boolean value "${last}" (expected true, false or a number)`, lastIndex);
      return negated ? !b : b;
    }
    case 'jailsys': {
      const allowed = def.values ?? [];
      if (last === undefined) return negated ? (allowed.includes('disable') ? 'disable' : 'inherit') : 'new';
      if (negated) return new ValueProblem(`"no${def.name.split('.').pop() ?? ''}" takes no value`, lastIndex);
      // libjail: an empty value sets a jailsys parameter to "new", as the bare name does
      if (last === '') return 'new';
      const l = last.toLowerCase();
      if (allowed.includes(l)) return l;
      // libjail reads a number as the kernel's value: 0 disable, 1 new, 2 inherit (jail.h)
      if (/^[0-2]$/.test(last)) {
        const named = (['disable', 'new', 'inherit'] as const)[Number(last)]!;
        if (allowed.includes(named)) return named;
        return new ValueProblem(`value ${last} (${named}) is not one of ${allowed.join(', ')}`, lastIndex);
      }
      // libjail also reads a jailsys parameter as a boolean: true = new.
      const b = parseBool(last);
      if (b !== undefined) return b ? 'new' : allowed.includes('disable') ? 'disable' : 'inherit';
      return new ValueProblem(`unknown value "${last}" (expected ${allowed.join(', ')})`, lastIndex);
    }
    case 'int': {
      if (negated) return new ValueProblem('only boolean parameters take a "no" prefix');
      if (last === undefined) return new ValueProblem('needs an integer value');
      if (!INT.test(last)) return new ValueProblem(`non-integer value "${last}"`, lastIndex);
      const n = Number(last);
      if (!Number.isSafeInteger(n)) return new ValueProblem(`integer "${last}" is out of range`, lastIndex);
      if ((def.min !== undefined && n < def.min) || (def.max !== undefined && n > def.max)) {
        const range = def.max !== undefined ? `${def.min ?? '-inf'}..${def.max}` : `>= ${def.min}`;
        return new ValueProblem(`value ${n} is out of range (${range})`, lastIndex);
      }
      return n;
    }
    case 'string':
    case 'size': {
      if (negated) return new ValueProblem('only boolean parameters take a "no" prefix');
      if (last === undefined) return new ValueProblem('needs a value');
      if (def.values && !def.values.includes(last)) {
        return new ValueProblem(`unknown value "${last}" (expected ${def.values.join(', ')})`, lastIndex);
      }
      if (def.type === 'size' && !SIZE.test(last))
        return new ValueProblem(`"${last}" is not a size (like 512M or 2G)`, lastIndex);
      const problem = def.check?.(last);
      if (problem !== undefined) return new ValueProblem(problem, lastIndex);
      return last;
    }
    case 'list':
    case 'addrlist': {
      if (negated) return new ValueProblem('only boolean parameters take a "no" prefix');
      // an address value may hold several addresses separated by commas, as libjail reads
      // it (jailparam_import splits an array parameter's string at commas; jail(8) joins the
      // list's values with commas first): "10.0.0.1,10.0.0.2" is two addresses. The joined
      // value "" or "-" is libjail's empty array: `ip4.addr = "";` sets no address at all
      if (def.type === 'addrlist' && (values.join(',') === '' || values.join(',') === '-')) return [];
      const items: { text: string; index: number }[] = values.flatMap((v, index) =>
        def.type === 'addrlist' ? v.split(',').map((text) => ({ text, index })) : [{ text: v, index }],
      );
      for (const { text, index } of items) {
        const problem = (def.type === 'addrlist' ? checkAddress(def, text) : undefined) ?? def.check?.(text);
        if (problem !== undefined) return new ValueProblem(problem, index);
      }
      return items.map((x) => x.text);
    }
  }
}
