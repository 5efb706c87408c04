// Readers of FreeBSD tool output: `jls --libxo json`, `mount -p`, `rctl`. Pure functions.

import { JailyardError } from '../../errors.ts';

/** One jail as jls reports it. Values keep jls' parameter names (ip4.addr, host.hostname). */
export interface JlsJail {
  jid: number;
  name?: string;
  path?: string;
  hostname?: string;
  ip4: string[];
  ip6: string[];
  /** Every key jls printed, values as text (lists as arrays). */
  params: Record<string, string | string[]>;
}

function text(v: unknown): string | string[] {
  if (Array.isArray(v)) return v.flatMap((x) => addressList(x));
  if (v === null || v === undefined) return '';
  return String(v);
}

/** jls emits an address list as ["a", "b"], or libxo-style [{"ipv4_addr": [...]}]. */
function addressList(v: unknown): string[] {
  if (v === undefined || v === null || v === '') return [];
  if (typeof v === 'string')
    return v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  if (Array.isArray(v)) return v.flatMap(addressList);
  if (typeof v === 'object') return Object.values(v as Record<string, unknown>).flatMap(addressList);
  return [String(v)];
}

/**
 * Parses `jls --libxo json [-j J] [param ...]`:
 * `{"__version": "2", "jail-information": {"jail": [{...}, ...]}}`. Default output names the
 * IPv4 address `ipv4` and the hostname `hostname`; with parameters listed, keys are their names.
 * jid comes as a number (default output) or a string (listed as a parameter).
 */
export function parseJlsJson(output: string): JlsJail[] {
  let doc: unknown;
  try {
    doc = JSON.parse(output);
  } catch (e) {
    throw new JailyardError('JY_ERR_PLATFORM', `jls printed invalid JSON: ${(e as Error).message}`, {
      output: output.slice(0, 400),
    });
  }
  const info = (doc as { 'jail-information'?: { jail?: unknown } } | null)?.['jail-information'];
  const list = info?.jail ?? [];
  if (!Array.isArray(list))
    throw new JailyardError('JY_ERR_PLATFORM', 'jls JSON: "jail-information.jail" is not a list', {
      output: output.slice(0, 400),
    });
  return list.map((raw: Record<string, unknown>) => {
    const params: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(raw)) params[k] = text(v);
    const jid = Number(raw.jid);
    if (!Number.isInteger(jid))
      throw new JailyardError(
        'JY_ERR_PLATFORM',
        `jls JSON: a jail without a numeric jid (${JSON.stringify(raw.jid)})`,
        { output: output.slice(0, 400) },
      );
    const str = (k: string): string | undefined =>
      typeof raw[k] === 'string' || typeof raw[k] === 'number' ? String(raw[k]) : undefined;
    const name = str('name');
    const path = str('path');
    const hostname = str('host.hostname') ?? str('hostname');
    return {
      jid,
      ...(name !== undefined ? { name } : {}),
      ...(path !== undefined ? { path } : {}),
      ...(hostname !== undefined ? { hostname } : {}),
      ip4: addressList(raw['ip4.addr'] ?? raw.ipv4),
      ip6: addressList(raw['ip6.addr'] ?? raw.ipv6),
      params,
    };
  });
}

export interface MountEntry {
  source: string;
  target: string;
  fstype: string;
  options: string[];
}

/** fstab(5) escapes: \040 (space), \011 (tab), \\ in the first two fields. */
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))).replace(/\\\\/g, '\\');
}

/**
 * Parses `mount -p` (fstab format: source, mount point, type, options, dump, pass; columns
 * padded with tabs or spaces). Lines that are not six columns are rejected: a path with an
 * unescaped blank would otherwise be read as someone else's mount point.
 */
export function parseMountP(output: string): MountEntry[] {
  const entries: MountEntry[] = [];
  output.split('\n').forEach((line, i) => {
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const f = line.trim().split(/[ \t]+/);
    if (f.length !== 6)
      throw new JailyardError('JY_ERR_PLATFORM', `mount -p line ${i + 1}: expected 6 fields, got ${f.length}`, {
        output: line,
      });
    entries.push({
      source: unescapeOctal(f[0]!),
      target: unescapeOctal(f[1]!),
      fstype: f[2]!,
      options: f[3]!.split(','),
    });
  });
  return entries;
}

export interface RctlRule {
  /** The whole rule as rctl prints it (usable as a filter for rctl -r). */
  rule: string;
  subjectType: string;
  subject: string;
  resource: string;
  action: string;
  amount: string;
}

/** Parses `rctl` output: one `subject-type:subject:resource:action=amount[/per]` per line. */
export function parseRctl(output: string): RctlRule[] {
  const rules: RctlRule[] = [];
  for (const line of output.split('\n')) {
    const rule = line.trim();
    if (!rule) continue;
    const m = /^([a-z]+):(.*):([a-z_]+):([a-z]+)(?:=(.*))?$/.exec(rule);
    if (!m) continue;
    rules.push({ rule, subjectType: m[1]!, subject: m[2]!, resource: m[3]!, action: m[4]!, amount: m[5] ?? '' });
  }
  return rules;
}
