// jls(8)'s output forms over jail records (usr.sbin/jls/jls.c): the default table, -v,
// -n name=value, -s (what jail(8) can read back), -h header, -q quoting, and libxo's JSON
// shape {"__version": "2", "jail-information": {"jail": [...]}}. Pure: records in, text out.
// A jail chooses much of what is printed (its children's hostnames, meta and env through its
// own jail -c, its own env), so nothing of a record reaches a terminal as control characters:
// the text forms escape them when told the output is one, JSON always.

import { CONTROL_CHARACTER, printableValue } from '../errors.ts';
import { takesParentRoot } from '../layout.ts';
import { readMetaKey } from '../meta/ops.ts';
import type { ParamValue } from '../conf/spec.ts';
import type { JailRecord } from '../store/types.ts';

export interface JlsOptions {
  header?: boolean; // -h
  nameval?: boolean; // -n
  quoted?: boolean; // -q
  skip?: boolean; // -s
  verbose?: boolean; // -v
  jailName?: boolean; // -N
  /** JSON indented as `--libxo json,pretty` prints it. */
  pretty?: boolean;
  /** Parameters to print; empty = the default columns. */
  params: string[];
  /** Whether stdout is a terminal, where the text forms show control characters escaped
   * (printableValue). Asked only once a value has one: finding out can load Node's tty
   * module, with net and the streams the fast paths keep out (./ls-fast.ts, ./jls-fast.ts). */
  terminal?: () => boolean;
}

/** Parameters jls -s leaves out: read-only ones jail(8) cannot set. */
const READ_ONLY = new Set([
  'jid',
  'dying',
  'parent',
  'children.cur',
  'cpuset.id',
  'state',
  'revision',
  'ready',
  'health',
  'restarts',
]);

/** Read-only pseudo-parameters jailyard shows beside the jail's own. */
function pseudo(j: JailRecord, name: string): ParamValue | undefined {
  switch (name) {
    case 'jid':
      return j.jid;
    case 'name':
      return j.name;
    case 'state':
      return j.state;
    case 'revision':
      return j.revision;
    case 'dying':
      return j.state === 'stopping';
    case 'ready':
      // the jail's own readiness signal (PUT /ready on its guest socket), kept in the store
      return j.ready === true;
    case 'health':
      // the daemon's health check verdict (docs/health.md): starting, healthy, unhealthy
      return (j.state === 'running' && j.supervision?.health?.status) || '';
    case 'restarts':
      // restarts by restart.policy; "N (next at TIME)" while one is pending
      return j.supervision?.pending
        ? `${j.supervision.restarts} (next ${j.supervision.pending.at})`
        : (j.supervision?.restarts ?? 0);
    case 'meta':
      return j.meta;
    case 'env':
      return j.env;
    case 'host.hostname':
      return j.params['host.hostname'] ?? j.name;
    case 'path':
      // a running jail: its root on the host, as jls(8) prints the kernel's path (the records
      // a jail reads of its children carry none: freebsd/jls.ts); else the parameter, and a
      // jail without a path takes its parent's root: the caller's "/" (jail(8))
      return j.runtime?.root ?? j.params.path ?? (takesParentRoot(j) ? '/' : '');
    default:
      return undefined;
  }
}

/** A parameter's value for printing; undefined = a meta/env key the jail does not have. */
export function paramValue(j: JailRecord, name: string): ParamValue | undefined {
  const m = /^(meta|env)\.(.+)$/.exec(name);
  if (m) return readMetaKey(m[1] === 'meta' ? j.meta : j.env, m[2]!);
  const p = pseudo(j, name);
  if (p !== undefined) return p;
  const v = j.params[name];
  if (v !== undefined) return v;
  return BOOLEAN_DEFAULT_FALSE.test(name) ? false : '';
}

const BOOLEAN_DEFAULT_FALSE = /^(persist|vnet|allow\..*|mount\.(devfs|procfs|fdescfs)|exec\.clean)$/;

function text(v: ParamValue | undefined): string {
  if (v === undefined) return '';
  if (Array.isArray(v)) return v.join(',');
  return String(v);
}

/** jls' quoted_print: quotes when the value has spaces or quotes (with -q), "" when empty. */
function quote(value: string, quoted: boolean): string {
  const qc = value.includes("'") ? '"' : value.includes('"') ? "'" : /[ \t]/.test(value) ? '"' : '';
  return qc && quoted ? `${qc}${value}${qc}` : value;
}

function firstAddr(v: ParamValue | undefined): string {
  const list = Array.isArray(v) ? v : v ? String(v).split(',') : [];
  const first = list[0] ?? '';
  return first.replace(/^[^|]*\|/, '').replace(/\/\d+$/, '');
}

function pad(s: string, width: number, max?: number): string {
  const cut = max !== undefined ? s.slice(0, max) : s;
  return cut.padEnd(width);
}

/** What a text form prints of a string from a record: as it is, or escaped on a terminal. */
function shownOn(terminal: (() => boolean) | undefined): (s: string) => string {
  let escaped: boolean | undefined;
  return (s) => {
    if (!CONTROL_CHARACTER.test(s)) return s;
    escaped ??= terminal?.() === true;
    return escaped ? printableValue(s) : s;
  };
}

export function formatJls(jails: JailRecord[], o: JlsOptions): string {
  const lines: string[] = [];
  const shown = shownOn(o.terminal);
  if (o.params.length === 0 && o.verbose) {
    lines.push(
      '   JID  Hostname                      Path',
      '        Name                          State',
      '        CPUSetID',
      '        IP Address(es)',
    );
    for (const j of jails) {
      lines.push(
        `${String(j.jid).padStart(6)}  ${pad(shown(text(pseudo(j, 'host.hostname'))), 29, 29)} ${shown(text(pseudo(j, 'path'))).slice(0, 74)}`,
      );
      lines.push(
        `        ${pad(shown(j.name), 29, 29)} ${j.state === 'stopping' ? 'DYING' : j.state === 'running' ? 'ACTIVE' : j.state.toUpperCase()}`,
      );
      lines.push(`        0`);
      for (const a of [...toList(j.params['ip4.addr']), ...toList(j.params['ip6.addr'])])
        lines.push(`        ${shown(a.replace(/^[^|]*\|/, '').replace(/\/\d+$/, ''))}`);
    }
    return lines.map((l) => `${l}\n`).join('');
  }
  if (o.params.length === 0 && !o.header && !o.nameval) {
    lines.push(
      o.jailName
        ? ` ${'JID'.padEnd(15)} ${'IP Address'.padEnd(15)} ${'Hostname'.padEnd(29)} Path`
        : `   JID  IP Address${' '.repeat(6)}Hostname${' '.repeat(22)}Path`,
    );
    for (const j of jails) {
      const first = o.jailName ? ` ${pad(shown(j.name), 15)} ` : `${String(j.jid).padStart(6)}  `;
      lines.push(
        `${first}${pad(shown(firstAddr(j.params['ip4.addr'])), 15, 15)} ${pad(shown(text(pseudo(j, 'host.hostname'))), 29, 29)} ${shown(text(pseudo(j, 'path'))).slice(0, 74)}`,
      );
    }
    return lines.map((l) => `${l}\n`).join('');
  }
  const names = o.params.length ? o.params : allParamNames(jails);
  if (o.header) lines.push(names.map(shown).join(' '));
  for (const j of jails) {
    const fields: string[] = [];
    for (const name of names) {
      if (o.skip && READ_ONLY.has(name)) continue;
      const v = paramValue(j, name);
      // a parameter's name can be a record's too (-n without names prints every one stored)
      const label = shown(name);
      if (o.nameval && typeof v === 'boolean') {
        fields.push(v ? label : shown(noName(name)));
        continue;
      }
      const value = shown(text(v));
      // jls: a meta/env key the jail does not have prints nothing (an empty field, an empty
      // line for a single key), its bare name with -n or -s; an empty string prints ""
      // (quoted_print); an empty address list prints "" with -q, nothing with -n, else "-"
      if (v === undefined) {
        fields.push(o.nameval ? label : o.quoted ? '""' : '');
        continue;
      }
      const emptyList = Array.isArray(v) && v.length === 0;
      const field = emptyList
        ? o.quoted
          ? '""'
          : o.nameval
            ? ''
            : '-'
        : value === ''
          ? '""'
          : quote(value, !!o.quoted);
      fields.push(o.nameval ? `${label}=${field}` : field);
    }
    lines.push(fields.join(' '));
  }
  return lines.map((l) => `${l}\n`).join('');
}

function toList(v: ParamValue | undefined): string[] {
  if (v === undefined || v === '' || v === false) return [];
  return Array.isArray(v) ? v : String(v).split(',');
}

/** jls' noname(): persist -> nopersist, allow.mount -> allow.nomount. */
function noName(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? `no${name}` : `${name.slice(0, dot)}.no${name.slice(dot + 1)}`;
}

/** jls -n without parameters prints every parameter: top-level ones first, then sorted. */
function allParamNames(jails: JailRecord[]): string[] {
  const set = new Set<string>(['jid', 'name', 'path', 'host.hostname', 'meta', 'env']);
  for (const j of jails) for (const k of Object.keys(j.params)) set.add(k);
  return [...set].sort((a, b) => {
    const da = a.includes('.'),
      db = b.includes('.');
    if (da !== db) return da ? 1 : -1;
    return a < b ? -1 : a > b ? 1 : 0;
  });
}

/** libxo JSON: default columns jid/ipv4/hostname/path; with parameters, one key each
 * (ip4.addr/ip6.addr as lists, booleans true/false, a missing meta/env key left out). */
export function jlsJson(jails: JailRecord[], o: JlsOptions): string {
  const items = jails.map((j) => {
    if (o.params.length === 0 && !o.nameval && !o.header) {
      return {
        ...(o.jailName ? { name: j.name } : { jid: j.jid }),
        ipv4: firstAddr(j.params['ip4.addr']),
        hostname: text(pseudo(j, 'host.hostname')),
        path: text(pseudo(j, 'path')),
      };
    }
    const obj: Record<string, unknown> = {};
    for (const name of o.params.length ? o.params : allParamNames(jails)) {
      if (o.skip && READ_ONLY.has(name)) continue;
      const v = paramValue(j, name);
      if (v === undefined) continue;
      if (name === 'ip4.addr' || name === 'ip6.addr')
        obj[name] = toList(v).map((a) => a.replace(/^[^|]*\|/, '').replace(/\/\d+$/, ''));
      else if (typeof v === 'boolean') obj[name] = v;
      else if (Array.isArray(v)) obj[name] = v.join(',');
      else obj[name] = String(v);
    }
    return obj;
  });
  return libxoJson(items, !!o.pretty);
}

/**
 * The document as libxo writes it, byte for byte: `{"__version": "2", "jail-information":
 * {"jail": [{"name":"j","meta":"a b c"}, {...}]}}` (a space after the colon of a container
 * or the version, none inside an instance), or indented by two with `--libxo json,pretty`.
 */
export function libxoJson(items: Record<string, unknown>[], pretty: boolean): string {
  const value = (v: unknown): string =>
    Array.isArray(v) ? `[${v.map((x) => json(x)).join(pretty ? ', ' : ',')}]` : json(v);
  if (!pretty) {
    const inst = items.map(
      (i) =>
        `{${Object.entries(i)
          .map(([k, v]) => `${json(k)}:${value(v)}`)
          .join(',')}}`,
    );
    return `{"__version": "2", "jail-information": {"jail": [${inst.join(', ')}]}}`;
  }
  const inst = items.map((i) => {
    const fields = Object.entries(i).map(([k, v]) => `        ${json(k)}: ${value(v)}`);
    return fields.length ? `      {\n${fields.join(',\n')}\n      }` : '      {\n      }';
  });
  return [
    '{',
    '  "__version": "2", ',
    '  "jail-information": {',
    '    "jail": [',
    ...(inst.length ? [inst.join(',\n')] : []),
    '    ]',
    '  }',
    '}',
  ].join('\n');
}

/**
 * JSON.stringify, with DEL and the C1 controls escaped (\u007f, \u009b) as well as C0: the
 * same string to a parser, and none of a jail's control characters on a terminal that shows
 * the document as it is (JSON escapes only those below U+0020).
 */
function json(v: unknown): string {
  return JSON.stringify(v).replace(/[\x7f-\x9f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
