// The `expose` parameter (published ports, like Bastille's `rdr` and AppJail's `expose`):
// host ports forwarded to a port of the jail's address. Pure: parsing, checking and
// comparing entries; the Linux driver turns them into nftables rules
// (src/platform/linux/portrules.ts).
//
// One entry: [PROTO:]HOST[:JAIL], PROTO tcp (the default) or udp, HOST and JAIL a port or
// a range LOW-HIGH of the same length (`8000-8010:80-90` maps 8000 to 80, ... 8010 to 90).
// Without JAIL the jail's port is the host's. Entries are a list (`expose = "tcp:8080:80",
// "udp:5353:53";` in jail.conf) and each value may hold several, separated by commas
// (`expose=tcp:8080:80,udp:5353:53` on the command line), as ip4.addr does.

import { JailyardError } from '../errors.ts';
import { paramList, type Params } from './spec.ts';

export type PortProto = 'tcp' | 'udp';

/** One published port range of a jail, as the jail's configuration says it. */
export interface ExposeRule {
  proto: PortProto;
  /** First and last host port (equal for one port). */
  hostPort: number;
  hostPortEnd: number;
  /** First and last port of the jail (the same count as the host's). */
  jailPort: number;
  jailPortEnd: number;
  /** The entry as written, for messages. */
  entry: string;
}

/** At most this many ports in one entry's range (each is a rule in the kernel). */
export const MAX_RANGE = 1024;

const PORTS = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/;

function portRange(text: string, what: string): [number, number] | string {
  const m = PORTS.exec(text);
  if (!m) return `${what} "${text}" is not a port or a range LOW-HIGH`;
  const low = Number(m[1]);
  const high = m[2] === undefined ? low : Number(m[2]);
  for (const p of [low, high]) if (p < 1 || p > 65535) return `${what} ${p} is not in 1..65535`;
  if (high < low) return `${what} range ${text} runs backwards`;
  if (high - low + 1 > MAX_RANGE) return `${what} range ${text} holds more than ${MAX_RANGE} ports`;
  return [low, high];
}

/** One entry parsed, or why it is refused (the caller names jail and parameter). */
export function parseExposeEntry(entry: string): ExposeRule | string {
  const text = entry.trim();
  const syntax = `"${text}" is not [tcp:|udp:]HOST[:JAIL] (e.g. tcp:8080:80, udp:5353:53, 8000-8010:80-90)`;
  if (!text) return 'an empty entry';
  const parts = text.split(':');
  let proto: PortProto = 'tcp';
  if (parts[0] !== undefined && /^[a-z]/i.test(parts[0])) {
    const p = parts.shift()!.toLowerCase();
    if (p !== 'tcp' && p !== 'udp') return `"${text}": unknown protocol "${p}" (tcp or udp)`;
    proto = p;
  }
  if (parts.length < 1 || parts.length > 2) return syntax;
  const host = portRange(parts[0]!, 'host port');
  if (typeof host === 'string') return `"${text}": ${host}`;
  const jail = parts[1] === undefined ? host : portRange(parts[1], 'jail port');
  if (typeof jail === 'string') return `"${text}": ${jail}`;
  if (host[1] - host[0] !== jail[1] - jail[0])
    return `"${text}": the host range ${host[0]}-${host[1]} and the jail range ${jail[0]}-${jail[1]} differ in length`;
  return { proto, hostPort: host[0], hostPortEnd: host[1], jailPort: jail[0], jailPortEnd: jail[1], entry: text };
}

/** The entries of one `expose` value (split at commas); the registry's per-value check. */
export function checkExposeValue(value: string): string | undefined {
  for (const entry of value.split(',')) {
    const r = parseExposeEntry(entry);
    if (typeof r === 'string') return r;
  }
  return undefined;
}

/** Whether two rules publish a common host port of the same protocol. */
export function overlaps(a: ExposeRule, b: ExposeRule): boolean {
  return a.proto === b.proto && a.hostPort <= b.hostPortEnd && b.hostPort <= a.hostPortEnd;
}

/**
 * The jail's published ports from its parameters. Throws JY_ERR_PARAM_VALUE naming the jail,
 * `expose` and the bad entry, also for two entries of the jail that publish one host port.
 */
export function exposeRules(jail: string, params: Params): ExposeRule[] {
  const rules: ExposeRule[] = [];
  const entries = paramList(params, 'expose')
    .flatMap((v) => v.split(','))
    .map((e) => e.trim())
    .filter(Boolean);
  for (const entry of entries) {
    const r = parseExposeEntry(entry);
    if (typeof r === 'string') throw new JailyardError('JY_ERR_PARAM_VALUE', `expose: ${r}`, { jail, param: 'expose' });
    const twice = rules.find((o) => overlaps(o, r));
    if (twice)
      throw new JailyardError(
        'JY_ERR_PARAM_VALUE',
        `expose: "${r.entry}" publishes a ${r.proto} host port that "${twice.entry}" publishes already`,
        { jail, param: 'expose' },
      );
    rules.push(r);
  }
  return rules;
}

/** How a rule is printed: tcp 8080 -> 80, tcp 8000-8010 -> 80-90. */
export function ruleText(r: Pick<ExposeRule, 'proto' | 'hostPort' | 'hostPortEnd' | 'jailPort' | 'jailPortEnd'>): {
  host: string;
  jail: string;
} {
  const span = (a: number, b: number) => (a === b ? String(a) : `${a}-${b}`);
  return { host: span(r.hostPort, r.hostPortEnd), jail: span(r.jailPort, r.jailPortEnd) };
}

/**
 * The first jail among `others` (running or starting, not `jail` itself) that publishes a
 * host port `rules` publishes too: the clash a start of `jail` must refuse before it
 * changes anything. Pure: the caller reads the other jails' parameters.
 */
export function exposeConflict(
  rules: readonly ExposeRule[],
  others: readonly { name: string; rules: readonly ExposeRule[] }[],
): { rule: ExposeRule; jail: string; other: ExposeRule } | undefined {
  for (const o of others)
    for (const other of o.rules) {
      const rule = rules.find((r) => overlaps(r, other));
      if (rule) return { rule, jail: o.name, other };
    }
  return undefined;
}
