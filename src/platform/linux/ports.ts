// The ports step: a jail's `expose` entries forwarded from the host to its address with
// nftables (the rules: portrules.ts), in this state folder's own table. Everything that reads
// and changes the tables runs under the host lock 'ports', so the check that no jail of any
// state folder publishes a host port already and the change itself cannot interleave with
// another jailyard process's.
//
// Two settings of the bridge make the forwarding work, set while any table of jailyard's
// uses the bridge and given back their first values when the last one goes:
// - forwarding: a connection from another host (or netns) to a published port is routed
//   from its interface to the bridge, and its replies back; jailyard turns it on for its
//   bridge only. The interface clients come in on must forward too (net.ipv4.ip_forward,
//   or net.ipv4.conf.IFACE.forwarding): that is the host's routing, left to its admin.
// - route_localnet: the host's own connections to 127.0.0.1:PORT, DNATed in output, leave
//   through the bridge with source 127.0.0.1 (masqueraded in postrouting); the kernel
//   refuses to route a loopback source out of an interface without it. The table's guard
//   drops what route_localnet would let in: packets to 127.0.0.0/8 on any interface but lo.
// What they were is kept in /run/jailyard/ports/BRIDGE/sysctl (with the bridge's ifindex: a
// bridge made again starts from the kernel's defaults), and which tables use the bridge as
// one file each beside it.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { exposeRules } from '../../conf/expose.ts';
import { JailyardError } from '../../errors.ts';
import { HOST_RUN_DIR } from '../../layout.ts';
import type { JailContext, NetworkFacts, PortFacts } from '../driver.ts';
import type { PublishedPort } from '../../store/types.ts';
import { inNetwork, jailAddresses } from './addresses.ts';
import { withHostLock } from './lock.ts';
import { stateTag } from './paths.ts';
import { liveOtherFolder } from './statefolders.ts';
import {
  addElements,
  deleteElements,
  elementText,
  listeningPorts,
  parsePortMap,
  parsePortMaps,
  parsePortTables,
  PORTS_MAP,
  portElements,
  portsTable,
  portsTableTag,
  rulesetText,
  sameElement,
  tableRuleset,
  type PortElement,
} from './portrules.ts';
import { run } from './proc.ts';

export interface PortsConfig {
  bridge: string;
  /** Where jail IPv4 addresses must lie: the host routes only those to the bridge. */
  range: string;
}

const BRIDGES = `${HOST_RUN_DIR}/ports`;
const SYSCTLS = ['forwarding', 'route_localnet'] as const;

/** Runs one nft transaction from text on stdin (no shell, no argument built from input). */
async function nftApply(lines: string[]): Promise<{ code: number; stderr: string }> {
  if (!lines.length) return { code: 0, stderr: '' };
  try {
    return await run(['nft', '-f', '-'], { input: rulesetText(lines) });
  } catch (e) {
    return { code: 127, stderr: `nft: ${(e as Error).message} (install nftables)` };
  }
}

async function nftJson(args: string[]): Promise<string | undefined> {
  try {
    const r = await run(['nft', '-j', ...args]);
    return r.code === 0 ? r.stdout : undefined;
  } catch {
    return undefined;
  }
}

/** Every table of jailyard's published ports on the host (all state folders). */
async function portTables(): Promise<string[]> {
  const out = await nftJson(['list', 'tables', 'ip']);
  return out ? parsePortTables(out) : [];
}

/** Every jailyard ports table on the host with its elements (one nft call). */
async function allPortMaps(): Promise<Map<string, PortElement[]>> {
  const out = await nftJson(['list', 'maps', 'ip']);
  return out ? parsePortMaps(out) : new Map();
}

/** A table's elements, or undefined when there is no such table. */
async function tableElements(table: string): Promise<PortElement[] | undefined> {
  const out = await nftJson(['list', 'map', 'ip', table, PORTS_MAP]);
  return out === undefined ? undefined : parsePortMap(out);
}

function ifindex(bridge: string): string | undefined {
  try {
    return readFileSync(`/sys/class/net/${bridge}/ifindex`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

const sysctlPath = (bridge: string, name: string) => `/proc/sys/net/ipv4/conf/${bridge}/${name}`;

/**
 * Turns forwarding and route_localnet on for the bridge, first keeping what they were (once
 * per bridge) and recording `table` as a user. Returns whether the bridge forwarded before
 * jailyard turned it on (then the table guards its forwarding).
 */
function useBridge(bridge: string, table: string): boolean {
  const dir = `${BRIDGES}/${bridge}`;
  const index = ifindex(bridge);
  if (index === undefined)
    throw new JailyardError('JY_ERR_PLATFORM', `the bridge ${bridge} is gone`, { step: 'ports' });
  let saved: string[] = [];
  try {
    saved = readFileSync(`${dir}/sysctl`, 'utf8').split('\n');
  } catch {
    // none yet
  }
  if (saved[0] !== index) {
    // a bridge made again forgets its earlier users
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    saved = [index, ...SYSCTLS.map((s) => readFileSync(sysctlPath(bridge, s), 'utf8').trim())];
    writeFileSync(`${dir}/sysctl`, `${saved.join('\n')}\n`);
  }
  writeFileSync(`${dir}/${table}`, '');
  for (const s of SYSCTLS) writeFileSync(sysctlPath(bridge, s), '1');
  return saved[1] === '0';
}

/** `table` no longer uses the bridge: the last user gives back its first settings. */
function leaveBridge(bridge: string, table: string, liveTables: readonly string[]): void {
  const dir = `${BRIDGES}/${bridge}`;
  rmSync(`${dir}/${table}`, { force: true });
  let users: string[] = [];
  let saved: string[] = [];
  try {
    users = readdirSync(dir).filter((f) => f !== 'sysctl' && liveTables.includes(f) && f !== table);
    saved = readFileSync(`${dir}/sysctl`, 'utf8').split('\n');
  } catch {
    return;
  }
  if (users.length) return;
  if (saved[0] === ifindex(bridge))
    SYSCTLS.forEach((s, i) => {
      const v = saved[i + 1];
      if (v === '0' || v === '1') {
        try {
          writeFileSync(sysctlPath(bridge, s), v);
        } catch {
          // the bridge went meanwhile
        }
      }
    });
  rmSync(dir, { recursive: true, force: true });
}

/** The host ports a host process listens on (the host's own network namespace). */
function hostListeners(): Set<string> {
  const read = (f: string) => {
    try {
      return [readFileSync(`/proc/net/${f}`, 'utf8')];
    } catch {
      return [];
    }
  };
  return listeningPorts({ tcp: [...read('tcp'), ...read('tcp6')], udp: [...read('udp'), ...read('udp6')] });
}

/**
 * UDP has no connection to end: conntrack keeps a flow's NAT decision while its packets keep
 * coming, so a client sending from a fixed port would go on reaching where the port led
 * before (a stopped jail; nowhere, before it was published) however the rules change. Its
 * flows are forgotten when the rules change (conntrack(8), package conntrack; without it,
 * such a flow follows the new rules once it has been idle for the kernel's UDP timeout).
 * `to`: the flows DNATed to these jail addresses (unpublish); `ports`: the flows to these
 * host UDP ports (publish; a long range is left to the timeout).
 */
async function forgetUdpFlows(what: { to?: string[]; ports?: number[] }): Promise<void> {
  if (!['/usr/sbin/conntrack', '/sbin/conntrack', '/usr/bin/conntrack'].some((p) => existsSync(p))) return;
  const calls = [
    ...(what.to ?? []).map((a) => ['--reply-src', a]),
    ...(what.ports && what.ports.length <= 64 ? what.ports : []).map((p) => ['--orig-port-dst', String(p)]),
  ];
  // nothing to delete is exit 1 (conntrack's "0 flow entries"): either way there is none left
  for (const c of calls) await run(['conntrack', '-D', '-p', 'udp', ...c]).catch(() => undefined);
}

/** Who holds a host port, for a refusal: the jail (and state folder tag) of the element. */
function holderText(e: PortElement, table: string, own: string): string {
  const who = e.jail !== undefined ? `jail "${e.jail}"` : `${e.address}:${e.jailPort}`;
  return table === own ? who : `${who} of another state folder (nft table ip ${table})`;
}

/** The published ports of a jail, checked (parameters, address), without system access. */
export function plannedPorts(ctx: JailContext, cfg: PortsConfig): PublishedPort[] {
  const rules = exposeRules(ctx.name, ctx.spec.params);
  if (!rules.length) return [];
  const v4 = jailAddresses(ctx.name, ctx.spec.params).find((a) => a.family === 4);
  const place = { jail: ctx.name, param: 'expose', step: 'ports' };
  if (!v4) throw new JailyardError('JY_ERR_PARAM_VALUE', 'expose needs an IPv4 address of the jail (ip4.addr)', place);
  if (!inNetwork(v4.address, cfg.range))
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      `expose: the jail's address ${v4.address} is outside the jail range ${cfg.range}, which is all the host routes to the bridge`,
      place,
    );
  return rules.map((r) => ({
    proto: r.proto,
    hostPort: r.hostPort,
    hostPortEnd: r.hostPortEnd,
    address: v4.address,
    jailPort: r.jailPort,
    jailPortEnd: r.jailPortEnd,
  }));
}

export async function publishPorts(ctx: JailContext, net: NetworkFacts, cfg: PortsConfig): Promise<PortFacts> {
  const ports = plannedPorts(ctx, cfg);
  if (!ports.length) return { ports: [] };
  const table = portsTable(stateTag(ctx.stateDir));
  const bridge = net.bridge ?? cfg.bridge;
  const elements = portElements(ports, ctx.name);
  return withHostLock('ports', async () => {
    const held = await allPortMaps();
    const tables = [...held.keys()];
    for (const e of elements) {
      for (const [t, els] of held) {
        const other = els.find((o) => o.proto === e.proto && o.hostPort === e.hostPort);
        if (other)
          throw new JailyardError(
            'JY_ERR_PORT_IN_USE',
            `host port ${e.proto} ${e.hostPort} is published already by ${holderText(other, t, table)}`,
            { jail: ctx.name, param: 'expose', step: 'ports' },
          );
      }
    }
    // a host service on the port would lose its connections to the jail (DNAT comes first)
    const listening = hostListeners();
    const taken = elements.find((e) => listening.has(`${e.proto}/${e.hostPort}`));
    if (taken)
      throw new JailyardError(
        'JY_ERR_PORT_IN_USE',
        `host port ${taken.proto} ${taken.hostPort} is in use by a process of the host (a ${taken.proto === 'tcp' ? 'listening' : 'bound'} socket): publishing it would take that service's connections`,
        { jail: ctx.name, param: 'expose', step: 'ports' },
      );
    const guardForward = useBridge(bridge, table);
    const lines = [
      ...(held.has(table) ? [] : tableRuleset(table, bridge, guardForward)),
      ...addElements(table, elements),
    ];
    const r = await nftApply(lines);
    if (r.code === 0) await forgetUdpFlows({ ports: elements.filter((e) => e.proto === 'udp').map((e) => e.hostPort) });
    if (r.code !== 0) {
      if (!held.has(table)) leaveBridge(bridge, table, tables);
      throw new JailyardError(
        'JY_ERR_PLATFORM',
        `cannot publish ${ports.length} port rule(s) in nft table ip ${table}`,
        {
          jail: ctx.name,
          step: 'ports',
          output: r.stderr.trim(),
        },
      );
    }
    return { table, bridge, ports };
  });
}

/** Deletes `mine` from `table` (those still there); the table goes with its last element. */
async function removeElements(table: string, bridge: string | undefined, mine: PortElement[]): Promise<string[]> {
  const present = await tableElements(table);
  if (present === undefined) {
    if (bridge) leaveBridge(bridge, table, await portTables());
    return [];
  }
  const gone = present.filter((p) => mine.some((m) => sameElement(m, p)));
  const rest = present.filter((p) => !gone.includes(p));
  const last = rest.length === 0;
  const r = await nftApply(last ? [`delete table ip ${table}`] : deleteElements(table, gone));
  if (r.code !== 0)
    throw new JailyardError('JY_ERR_PLATFORM', `cannot remove published ports from nft table ip ${table}`, {
      step: 'ports.remove',
      output: r.stderr.trim(),
    });
  if (last && bridge) leaveBridge(bridge, table, await portTables());
  await forgetUdpFlows({ to: [...new Set(gone.filter((g) => g.proto === 'udp').map((g) => g.address))] });
  return gone.map(elementText);
}

export async function unpublishPorts(facts: PortFacts): Promise<void> {
  if (!facts.table || !facts.ports.length) return;
  const table = facts.table;
  await withHostLock('ports', () => removeElements(table, facts.bridge, portElements(facts.ports)));
}

/**
 * reconcile --all: the tables of state folders no longer on this host (a removed folder's,
 * a test run killed before its clean-up): their rules would keep taking host ports to
 * addresses that other jails may hold now. Never the table of a folder that still exists.
 */
async function removeOrphanTables(stateRoot: string, own: string): Promise<string[]> {
  const removed: string[] = [];
  const tables = await portTables();
  for (const t of tables) {
    const tag = portsTableTag(t);
    if (t === own || tag === undefined || liveOtherFolder(tag, stateRoot) !== undefined) continue;
    const r = await nftApply([`delete table ip ${t}`]);
    if (r.code !== 0) continue;
    removed.push(`table ip ${t} of no state folder`);
    let bridges: string[] = [];
    try {
      bridges = readdirSync(BRIDGES);
    } catch {
      // none recorded
    }
    const left = tables.filter((x) => x !== t);
    for (const b of bridges) leaveBridge(b, t, left);
  }
  return removed;
}

/**
 * reconcile: the state folder's table made to hold exactly the running jails' ports.
 * Missing elements come back (the table too, and the bridge's settings); elements no running
 * jail accounts for go, unless `keep` (another process is between steps). With `all`, the
 * tables of state folders that no longer exist go too.
 */
export async function syncPorts(
  stateRoot: string | undefined,
  running: { jail: string; facts: PortFacts }[],
  cfg: PortsConfig,
  opts: { keep: boolean; all?: boolean },
): Promise<{ restored: string[]; removed: string[] }> {
  if (!stateRoot) return { restored: [], removed: [] };
  const table = portsTable(stateTag(`${stateRoot}/jails/x`));
  const want = running
    .filter((r) => r.facts.table === table)
    .flatMap((r) => portElements(r.facts.ports, r.jail).map((e) => ({ e, bridge: r.facts.bridge ?? cfg.bridge })));
  return withHostLock('ports', async () => {
    const present = await tableElements(table);
    const missing = want.filter((w) => !present?.some((p) => sameElement(p, w.e)));
    const extra = opts.keep ? [] : (present ?? []).filter((p) => !want.some((w) => sameElement(p, w.e)));
    const restored: string[] = [];
    if (missing.length) {
      const bridge = missing[0]!.bridge;
      const guardForward = useBridge(bridge, table);
      // a host port another table took meanwhile stays theirs
      const others = new Set<string>();
      for (const [t, els] of await allPortMaps())
        if (t !== table) for (const o of els) others.add(`${o.proto}/${o.hostPort}`);
      const add = missing.filter((m) => !others.has(`${m.e.proto}/${m.e.hostPort}`)).map((m) => m.e);
      const stale = (present ?? []).filter((p) => add.some((a) => a.proto === p.proto && a.hostPort === p.hostPort));
      const r = await nftApply([
        ...(present === undefined ? tableRuleset(table, bridge, guardForward) : []),
        ...deleteElements(table, stale),
        ...addElements(table, add),
      ]);
      if (r.code !== 0)
        throw new JailyardError('JY_ERR_PLATFORM', `cannot restore published ports in nft table ip ${table}`, {
          step: 'ports',
          output: r.stderr.trim(),
        });
      restored.push(...add.map(elementText));
    }
    // the table goes when no running jail publishes anything (removeElements deletes it
    // with its last element, or as it is when it holds none)
    const removed =
      present !== undefined && !opts.keep && (extra.length || want.length === 0)
        ? await removeElements(
            table,
            want[0]?.bridge ?? cfg.bridge,
            extra.filter((x) => !missing.some((m) => m.e.proto === x.proto && m.e.hostPort === x.hostPort)),
          )
        : [];
    if (opts.all) removed.push(...(await removeOrphanTables(stateRoot, table)));
    return { restored, removed };
  });
}
