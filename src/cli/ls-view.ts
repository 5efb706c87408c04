// `jailyard ls`'s options and what it prints from the jails it read: one place for the verb
// (commands/ls.ts, through commander) and for the fast path that runs before the CLI is
// loaded (./ls-fast.ts), so both take the same options and print the same bytes. Small on
// purpose: no commander, no store, no runtime.

import type { JailRecord } from '../store/types.ts';
import { formatJls, jlsJson } from './jls.ts';

/** ls's options in --help's order. `key`: the option's property in commander's opts(); `value`:
 * it takes one (the others are switches). */
export const LS_OPTIONS = [
  { flags: '-a, --all', key: 'all', help: 'include stopped jails' },
  { flags: '-j, --jail <name>', key: 'jail', help: 'only this jail', value: true },
  {
    flags: '-l, --selector <selector>',
    key: 'selector',
    help: 'only jails whose labels match (app=www,version in (v1,v2))',
    value: true,
  },
  { flags: '-h, --header', key: 'header', help: 'print a header line with the parameter names' },
  { flags: '-n, --nameval', key: 'nameval', help: 'print name=value pairs' },
  { flags: '-q, --quote', key: 'quote', help: 'quote values that contain spaces or quotes' },
  { flags: '-s, --settable', key: 'settable', help: 'print parameters jail(8) can set, as name=value, quoted' },
  { flags: '-v, --verbose', key: 'verbose', help: 'multi-line summary per jail' },
  { flags: '-N, --name', key: 'name', help: 'show jail names instead of jids' },
  { flags: '--json', key: 'json', help: 'libxo-style JSON on stdout' },
] as const;

type Switch = Exclude<(typeof LS_OPTIONS)[number], { value: true }>['key'];

/** ls's switches as commander hands them over (absent when not given). */
export type LsSwitches = Partial<Record<Switch, boolean>>;

/**
 * `ls`'s arguments when they are only switches (`-a`, `--all`, `-av`) and parameter names,
 * the forms the fast path takes; undefined for anything else (-j, -l, --help, `--`, an
 * unknown or misspelt option), which the CLI itself parses and reports.
 */
export function switchesOnly(args: readonly string[]): { switches: LsSwitches; params: string[] } | undefined {
  const long = new Map<string, Switch>();
  const short = new Map<string, Switch>();
  for (const o of LS_OPTIONS) {
    if ('value' in o) continue;
    for (const f of o.flags.split(', ')) (f.startsWith('--') ? long : short).set(f, o.key);
  }
  const switches: LsSwitches = {};
  const params: string[] = [];
  for (const a of args) {
    if (!a.startsWith('-')) params.push(a);
    else if (a.startsWith('--')) {
      const key = long.get(a);
      if (!key) return undefined;
      switches[key] = true;
    } else {
      // -av: every letter a switch of its own
      if (a.length < 2) return undefined;
      for (const letter of a.slice(1)) {
        const key = short.get(`-${letter}`);
        if (!key) return undefined;
        switches[key] = true;
      }
    }
  }
  return { switches, params };
}

/** The jails ls shows of those it read: the stopped ones only with -a; in a cluster, `node`
 * (where the jail is placed) as a parameter. */
export function lsShown(jails: readonly JailRecord[], o: LsSwitches): JailRecord[] {
  return (o.all ? jails : jails.filter((j) => j.state !== 'stopped')).map((j) =>
    j.node !== undefined ? { ...j, params: { ...j.params, node: j.node } } : j,
  );
}

/** What ls prints for `jails` (empty: nothing), as jls(8) does with the same flags; `terminal`
 * tells whether stdout is a terminal (./jls.ts JlsOptions). */
export function lsText(jails: JailRecord[], params: string[], o: LsSwitches, terminal: () => boolean): string {
  const opts = {
    terminal,
    params,
    header: !!o.header,
    nameval: !!(o.nameval || o.settable),
    quoted: !!(o.quote || o.settable),
    skip: !!o.settable,
    verbose: !!o.verbose,
    jailName: !!o.name,
  };
  return o.json ? jlsJson(jails, opts) : formatJls(jails, opts);
}
