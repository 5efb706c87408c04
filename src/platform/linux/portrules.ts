// Published ports (`expose`) as nftables text: pure, no system access. ports.ts feeds it to
// `nft -f -` and reads the kernel's state back with `nft -j`.
//
// One table per state folder, `ip jy-TAG-ports` (TAG: paths.ts stateTag), never anyone
// else's: jailyard adds and deletes only its own elements and its own table. Its map
// `published` holds one element per host port: `tcp . 8080 : 198.51.100.7 . 80`, so adding a
// host port that the table holds already fails in the kernel (EEXIST), and a jail's ports
// are added and removed as elements, one nft transaction each, without touching the others.
//
//   prerouting (nat, dstnat)  packets from elsewhere to any address of the host
//   output (nat, -100)        the host's own connections (its addresses, 127.0.0.1 too)
//   postrouting (nat, srcnat) what was forwarded to the bridge is masqueraded behind the
//                             bridge's address: jails have no default route, so a reply
//                             must go back to the host, which un-NATs it
//   guard (filter, raw)       drops packets to 127.0.0.0/8 arriving on any interface but
//                             lo: route_localnet (needed on the bridge for 127.0.0.1 to be
//                             forwarded, see ports.ts) would otherwise let a jail reach
//                             the host's loopback services
//   forward (filter)          only when the bridge did not forward before jailyard turned
//                             it on: nothing but published connections leaves the bridge
//                             through the host (the host does not become the jails' router)

import type { PublishedPort } from '../../store/types.ts';

export const PORTS_MAP = 'published';

/** The table of the state folder with this tag. */
export const portsTable = (tag: string): string => `jy-${tag}-ports`;

/** The tag of a table of jailyard's published ports, or undefined for any other table. */
export function portsTableTag(name: string): string | undefined {
  return /^jy-([0-9a-f]{4})-ports$/.exec(name)?.[1];
}

/** One host port as the kernel holds it. */
export interface PortElement {
  proto: 'tcp' | 'udp';
  hostPort: number;
  address: string;
  jailPort: number;
  /** The jail that published it (the element's comment), when known. */
  jail?: string;
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const IPV4 = /^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$/;

/** Refuses anything that would not be a plain token in nft's syntax (a bug, not input: the
 * values come from checked parameters and the driver's configuration). */
function token(value: string, re: RegExp, what: string): string {
  if (!re.test(value)) throw new TypeError(`portrules: ${what} ${JSON.stringify(value)}`);
  return value;
}

/** A jail name as an element comment: the name when it is plain, else nothing (a jail name
 * may hold quotes; the comment is for people reading `nft list`). */
export function commentOf(jail: string | undefined): string | undefined {
  return jail !== undefined && /^[A-Za-z0-9_.@+-]{1,120}$/.test(jail) ? jail : undefined;
}

/** The elements of published port ranges, one per host port. */
export function portElements(ports: readonly PublishedPort[], jail?: string): PortElement[] {
  const out: PortElement[] = [];
  for (const p of ports)
    for (let i = 0; i <= p.hostPortEnd - p.hostPort; i++)
      out.push({
        proto: p.proto,
        hostPort: p.hostPort + i,
        address: p.address,
        jailPort: p.jailPort + i,
        ...(jail !== undefined ? { jail } : {}),
      });
  return out;
}

const key = (e: Pick<PortElement, 'proto' | 'hostPort'>) => `${e.proto} . ${e.hostPort}`;
const value = (e: PortElement) => `${token(e.address, IPV4, 'address')} . ${e.jailPort}`;

/** Whether two elements are the same host port with the same target. */
export const sameElement = (a: PortElement, b: PortElement): boolean =>
  a.proto === b.proto && a.hostPort === b.hostPort && a.address === b.address && a.jailPort === b.jailPort;

/** The table's declaration: its map and chains (for a table that does not exist yet). */
export function tableRuleset(table: string, bridge: string, guardForward: boolean): string[] {
  const t = `ip ${token(table, /^jy-[0-9a-f]{4}-ports$/, 'table')}`;
  const br = token(bridge, IFNAME, 'bridge');
  const dnat = `fib daddr type local dnat ip to meta l4proto . th dport map @${PORTS_MAP}`;
  return [
    `add table ${t}`,
    `add map ${t} ${PORTS_MAP} { type inet_proto . inet_service : ipv4_addr . inet_service; }`,
    `add chain ${t} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
    `add rule ${t} prerouting ${dnat}`,
    `add chain ${t} output { type nat hook output priority -100; policy accept; }`,
    `add rule ${t} output ${dnat}`,
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `add rule ${t} postrouting oifname "${br}" ct status dnat masquerade`,
    `add chain ${t} guard { type filter hook prerouting priority raw; policy accept; }`,
    `add rule ${t} guard iifname != "lo" ip daddr 127.0.0.0/8 drop`,
    ...(guardForward
      ? [
          `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
          `add rule ${t} forward iifname "${br}" ct status & dnat == 0 drop`,
        ]
      : []),
  ];
}

/** Adds elements (fails as a whole when one of their host ports is in the table already). */
export function addElements(table: string, elements: readonly PortElement[]): string[] {
  if (!elements.length) return [];
  const items = elements.map((e) => {
    const c = commentOf(e.jail);
    return `${key(e)}${c ? ` comment "${c}"` : ''} : ${value(e)}`;
  });
  return [`add element ip ${table} ${PORTS_MAP} { ${items.join(', ')} }`];
}

/** Deletes elements (each must be there: the caller reads the table first). */
export function deleteElements(table: string, elements: readonly PortElement[]): string[] {
  if (!elements.length) return [];
  return [`delete element ip ${table} ${PORTS_MAP} { ${elements.map(key).join(', ')} }`];
}

/** The whole input of one `nft -f -` transaction. */
export const rulesetText = (lines: readonly string[]): string => `${lines.join('\n')}\n`;

type Json = Record<string, unknown>;

/** The `ip jy-TAG-ports` tables in `nft -j list tables` output. */
export function parsePortTables(json: string): string[] {
  const items = (JSON.parse(json) as { nftables?: Json[] }).nftables ?? [];
  return items.flatMap((i) => {
    const t = i.table as { family?: string; name?: string } | undefined;
    return t?.family === 'ip' && t.name && portsTableTag(t.name) !== undefined ? [t.name] : [];
  });
}

const PROTOS: Record<string, 'tcp' | 'udp'> = { tcp: 'tcp', udp: 'udp', '6': 'tcp', '17': 'udp' };

/** The elements in `nft -j list map ip TABLE published` output. */
export function parsePortMap(json: string): PortElement[] {
  return [...parsePortMaps(json, true).values()].flat();
}

/**
 * The elements of every jailyard ports table in `nft -j list maps ip` output (one call for
 * all state folders' tables: the conflict check), by table; `any`: whatever table the
 * `published` maps are in (a single table's listing).
 */
export function parsePortMaps(json: string, any = false): Map<string, PortElement[]> {
  const items = (JSON.parse(json) as { nftables?: Json[] }).nftables ?? [];
  const tables = new Map<string, PortElement[]>();
  for (const i of items) {
    const map = i.map as { name?: string; table?: string; family?: string; elem?: unknown[] } | undefined;
    if (map?.name !== PORTS_MAP) continue;
    const table = String(map.table ?? '');
    if (!any && (map.family !== 'ip' || portsTableTag(table) === undefined)) continue;
    const out: PortElement[] = tables.get(table) ?? [];
    tables.set(table, out);
    for (const el of map.elem ?? []) {
      if (!Array.isArray(el) || el.length !== 2) continue;
      let k = el[0] as Json;
      let comment: string | undefined;
      if (k && typeof k === 'object' && 'elem' in k) {
        const inner = k.elem as { val?: Json; comment?: string };
        comment = inner.comment;
        k = inner.val ?? {};
      }
      const kc = (k as { concat?: unknown[] }).concat;
      const vc = (el[1] as { concat?: unknown[] } | undefined)?.concat;
      if (!Array.isArray(kc) || !Array.isArray(vc)) continue;
      const proto = PROTOS[String(kc[0])];
      if (!proto) continue;
      out.push({
        proto,
        hostPort: Number(kc[1]),
        address: String(vc[0]),
        jailPort: Number(vc[1]),
        ...(comment !== undefined ? { jail: comment } : {}),
      });
    }
  }
  return tables;
}

/** "tcp 8080 -> 198.51.100.7:80" */
export const elementText = (e: PortElement): string => `${e.proto} ${e.hostPort} -> ${e.address}:${e.jailPort}`;

/**
 * The host ports with a socket of the host's own on them, from /proc/net/{tcp,tcp6,udp,udp6}
 * texts: TCP sockets listening (state 0A), UDP sockets bound but not connected (07: a
 * service; a connected one is a client's). As "tcp/22", "udp/53".
 */
export function listeningPorts(texts: { tcp: string[]; udp: string[] }): Set<string> {
  const out = new Set<string>();
  for (const [proto, state] of [
    ['tcp', '0A'],
    ['udp', '07'],
  ] as const)
    for (const text of texts[proto])
      for (const line of text.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        const port = f[1]?.split(':')[1];
        if (port && f[3] === state) out.add(`${proto}/${Number.parseInt(port, 16)}`);
      }
  return out;
}
