// The addresses step: for a jail with addresses, a named netns, a veth pair whose host side
// joins the shared bridge, the jail's ip4.addr/ip6.addr on eth0 inside. No default route:
// jails reach the bridge network only. A jail without addresses gets a network namespace
// with only the loopback, made by the create step.
import { stateTag } from './paths.ts';
import { withHostLock } from './lock.ts';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { paramList, paramString, type Params } from '../../conf/spec.ts';
import { dirname } from 'node:path';
import { JailyardError } from '../../errors.ts';
import type { JailContext, NetworkFacts } from '../driver.ts';
import { randomBytes } from 'node:crypto';
import {
  addressBits,
  jailAddresses,
  inNetwork,
  networksOverlap,
  randomMac,
  sameAddress,
  spoofRemoval,
  spoofRules,
  SPOOF_MAP,
  SPOOF_TABLE,
  type JailAddress,
} from './addresses.ts';
import { run, outputOf, waitFor } from './proc.ts';
import { HOST_RUN_DIR } from '../../layout.ts';

export interface NetworkConfig {
  bridge: string;
  /** The bridge's own address with prefix, e.g. 198.51.100.1/24. */
  gateway: string;
  /** Where IPv4 jail addresses must lie, e.g. 198.51.100.0/24. */
  range: string;
  /** The bridge's own IPv6 address with prefix, e.g. 2001:db8:4a59::1/64. */
  gateway6: string;
  /** Where IPv6 jail addresses must lie, e.g. 2001:db8:4a59::/64. */
  range6: string;
}

/**
 * Names of a jail's system objects. jids are per state folder (store), so the names carry a
 * short tag of the state folder as well: two jailyard state folders on one host (tests, a
 * quick start beside a system install) never collide on jy-<jid>.
 */
export const netnsName = (ctx: { jid: number; stateDir: string }, shared = false) =>
  `jy-${stateTag(ctx.stateDir)}-${ctx.jid}${shared ? 's' : ''}`;
export const hostVethName = (ctx: { jid: number; stateDir: string }, spare = false, shared = false) =>
  `jyh${stateTag(ctx.stateDir)}${ctx.jid}${shared ? 's' : ''}${spare ? 'x' : ''}`;

async function ipBatch(lines: string[], netns?: string, force = false): Promise<{ code: number; stderr: string }> {
  const argv = ['ip', ...(netns ? ['-n', netns] : []), ...(force ? ['-force'] : []), '-batch', '-'];
  return run(argv, { input: `${lines.join('\n')}\n` });
}

/** Creates the bridge with its gateway address if missing (several callers may race). */
export async function ensureBridge(cfg: NetworkConfig): Promise<void> {
  if (existsSync(`/sys/class/net/${cfg.bridge}/bridge`)) {
    // a bridge made before it had an IPv6 gateway gets one
    if (!hasIPv6(cfg.bridge, cfg.gateway6.split('/')[0]!))
      await ipBatch([`addr add ${cfg.gateway6} dev ${cfg.bridge} nodad`], undefined, true);
    await pinBridgeMac(cfg.bridge);
    ignoreRouters(cfg.bridge);
    return;
  }
  // -force: a concurrent caller may have made it meanwhile ("File exists" is fine).
  // An explicit MAC: otherwise the kernel gives the bridge its lowest port's MAC and changes it
  // when that jail's port leaves; the other jails' cached gateway MAC is then wrong and their
  // replies are dropped until ARP finds out (5 s and more: connections to them stall).
  await ipBatch(
    [
      `link add ${cfg.bridge} address ${randomMac(randomBytes(6))} type bridge`,
      `addr add ${cfg.gateway} dev ${cfg.bridge}`,
      `addr add ${cfg.gateway6} dev ${cfg.bridge} nodad`,
      `link set ${cfg.bridge} up`,
    ],
    undefined,
    true,
  );
  if (!existsSync(`/sys/class/net/${cfg.bridge}`)) {
    throw new JailyardError('JY_ERR_PLATFORM', `cannot create bridge ${cfg.bridge}`, { step: 'addresses' });
  }
  // before its first port joins: until then nothing can reach it
  ignoreRouters(cfg.bridge);
}

/** The sysctls that keep an interface from taking routers' word (a jail is never a router on
 * the bridge): no router advertisements (SLAAC addresses, default routes), no redirects. */
const NO_ROUTERS = ['ipv6/conf/%/accept_ra', 'ipv6/conf/%/accept_redirects', 'ipv4/conf/%/accept_redirects'];

/** Turns them off for the host's bridge (idempotent; a write only where one is needed). A host
 * without IPv6 has no such files. IPv4 redirects still count while the host's
 * conf/all/accept_redirects is on and the bridge does not forward (the kernel ORs them): the
 * bridge filter drops jails' redirects before that. */
function ignoreRouters(bridge: string): void {
  for (const key of NO_ROUTERS) {
    const path = `/proc/sys/net/${key.replace('%', bridge)}`;
    try {
      if (readFileSync(path, 'utf8').trim() !== '0') writeFileSync(path, '0');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new JailyardError('JY_ERR_PLATFORM', `cannot turn off ${path}`, {
        step: 'addresses',
        output: (e as Error).message,
      });
    }
  }
}

/** A bridge made without an explicit MAC (by an older jailyard) keeps its current one from now
 * on (addr_assign_type 3 = set), rather than following its ports. */
async function pinBridgeMac(bridge: string): Promise<void> {
  try {
    if (readFileSync(`/sys/class/net/${bridge}/addr_assign_type`, 'utf8').trim() === '3') return;
    const mac = readFileSync(`/sys/class/net/${bridge}/address`, 'utf8').trim();
    if (/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac))
      await ipBatch([`link set ${bridge} address ${mac}`], undefined, true);
  } catch {
    // gone meanwhile: the next caller makes it anew
  }
}

/** Whether `ifname` has the IPv6 address `address` (/proc/net/if_inet6: 32 hex digits, ..., name). */
function hasIPv6(ifname: string, address: string): boolean {
  let text = '';
  try {
    text = readFileSync('/proc/net/if_inet6', 'utf8');
  } catch {
    return false;
  }
  const hex = addressBits(address).bits.toString(16).padStart(32, '0');
  return text.split('\n').some((l) => {
    const f = l.trim().split(/\s+/);
    return f[0] === hex && f[5] === ifname;
  });
}

/**
 * The bridge's ports, or undefined when there is no such bridge. Leaves out jail veths
 * whose netns is already deleted: the kernel is removing them (teardownNetwork).
 */
function bridgePorts(bridge: string): string[] | undefined {
  try {
    return readdirSync(`/sys/class/net/${bridge}/brif`).filter((p) => !isDyingVeth(p));
  } catch {
    return undefined;
  }
}

/** The netns a jail veth (jyh<tag><jid>, or its spare name with an x) belongs to, if it is one. */
export function netnsOfVeth(link: string): string | undefined {
  const m = /^jyh([0-9a-f]{4})(\d+)(s?)x?$/.exec(link);
  return m ? `jy-${m[1]}-${m[2]}${m[3]}` : undefined;
}

/** The host veth names a jail netns may have (jy-<tag>-<jid>[s]: jyh<tag><jid>[s], with the
 * spare x). */
function vethsOfNetns(netns: string): string[] {
  const m = /^jy-([0-9a-f]{4})-(\d+s?)$/.exec(netns);
  return m ? [`jyh${m[1]}${m[2]}`, `jyh${m[1]}${m[2]}x`] : [];
}

/** A jail veth whose netns is gone: the kernel is deleting it. */
function isDyingVeth(link: string): boolean {
  const netns = netnsOfVeth(link);
  return netns !== undefined && !existsSync(`/run/netns/${netns}`);
}

/** Deletes the bridge when no veth is attached any more (tests, reconcile). */
export async function removeBridgeIfUnused(bridge: string): Promise<boolean> {
  // under the network lock, like every start: a jail attaching meanwhile keeps its bridge
  return withHostLock('network', async () => {
    const ports = bridgePorts(bridge);
    if (!ports || ports.length) return false;
    return (await run(['ip', 'link', 'del', bridge])).code === 0;
  });
}

interface HostAddr {
  ifname: string;
  cidr: string;
  netns?: string;
  /** For a jail's claim: which jail of which state folder holds it. */
  holder?: string;
}

function parseAddrs(text: string, netns?: string): HostAddr[] {
  const out: HostAddr[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet6?\s+(\S+)/.exec(line);
    if (m) out.push({ ifname: m[1]!, cidr: m[2]!, ...(netns ? { netns } : {}) });
  }
  return out;
}

/**
 * Which jail netns holds which address, host-wide (all state folders), like CNI's host-local
 * IPAM: one file per address under /run/jailyard/addresses holding the netns name, the
 * address, and the state folder and name of the jail, written under the network lock. Every
 * state folder on the host (two installs, two test runs) claims here, so an address is never
 * handed out twice and a refusal names the jail and folder that hold it. A claim whose netns
 * is gone is stale.
 */
const CLAIMS = `${HOST_RUN_DIR}/addresses`;

function claimFile(address: string): string {
  const { bits, width } = addressBits(address);
  return `${CLAIMS}/v${width === 32 ? 4 : 6}-${bits.toString(16)}`;
}

interface Claim {
  file: string;
  netns: string;
  address: string;
  /** Absent in claims written before the holder was recorded. */
  state?: string;
  jail?: string;
}

function readClaims(): Claim[] {
  let files: string[];
  try {
    files = readdirSync(CLAIMS);
  } catch {
    return [];
  }
  const out: Claim[] = [];
  for (const f of files) {
    try {
      const [netns = '', address = '', state, jail] = readFileSync(`${CLAIMS}/${f}`, 'utf8').split('\n');
      out.push({ file: `${CLAIMS}/${f}`, netns, address, ...(state && jail ? { state, jail } : {}) });
    } catch {
      // released meanwhile
    }
  }
  return out;
}

function claimAddresses(netns: string, wanted: JailAddress[], ctx: JailContext): void {
  if (!wanted.length) return;
  mkdirSync(CLAIMS, { recursive: true, mode: 0o755 });
  // ctx.stateDir is <state folder>/jails/<name>
  const state = dirname(dirname(ctx.stateDir));
  for (const w of wanted) writeFileSync(claimFile(w.address), `${netns}\n${w.address}\n${state}\n${ctx.name}\n`);
}

/** Removes the claims held by `netns` (all of them: reconcile knows no addresses). */
function releaseClaims(netns: string): void {
  for (const c of readClaims()) {
    if (c.netns !== netns) continue;
    try {
      unlinkSync(c.file);
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * Addresses on the host and in every other jail netns: the host's from the kernel (one
 * `ip`), the jails' from their claims. A jy-* netns without a claim (made by an older
 * jailyard, or a start that crashed between the two) is read from the kernel.
 */
async function addressesInUse(): Promise<HostAddr[]> {
  const host = parseAddrs((await run(['ip', '-o', 'addr', 'show'])).stdout);
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns').filter((n) => n.startsWith('jy-'));
  } catch {
    // no named netns at all
  }
  const live = new Set(names);
  const claims = readClaims().filter((c) => live.has(c.netns));
  const claimed = new Set(claims.map((c) => c.netns));
  const inJails: HostAddr[] = claims.map((c) => ({
    ifname: 'eth0',
    cidr: `${c.address}/${c.address.includes(':') ? 128 : 32}`,
    netns: c.netns,
    ...(c.state ? { holder: `jail "${c.jail}" of the state folder ${c.state}` } : {}),
  }));
  for (const name of names.filter((n) => !claimed.has(n))) {
    inJails.push(...parseAddrs((await run(['ip', '-n', name, '-o', 'addr', 'show'])).stdout, name));
  }
  return [...host, ...inJails];
}

/** Why an address can be no jail's (loopback, multicast, ...), or undefined. */
export function reservedReason(address: string): string | undefined {
  const v4: [string, string][] = [
    ['0.0.0.0/8', 'in 0.0.0.0/8 ("this network")'],
    ['127.0.0.0/8', 'a loopback address'],
    ['169.254.0.0/16', 'a link-local address'],
    ['224.0.0.0/4', 'a multicast address'],
    ['240.0.0.0/4', 'reserved (240.0.0.0/4)'],
  ];
  const v6: [string, string][] = [
    ['::/128', 'the unspecified address'],
    ['::1/128', 'the loopback address'],
    ['fe80::/10', 'a link-local address'],
    ['ff00::/8', 'a multicast address'],
    ['::ffff:0:0/96', 'an IPv4-mapped address'],
  ];
  if (address.includes(':') && address.includes('.')) return 'an IPv4-mapped or -compatible address';
  return [...v4, ...v6].find(([net]) => inNetwork(address, net))?.[1];
}

/** Refuses reserved addresses, addresses of the host or in its networks, or on another jail
 * (JY_ERR_ADDRESS). */
export async function checkAddresses(ctx: JailContext, cfg: NetworkConfig, wanted: JailAddress[]): Promise<void> {
  if (!wanted.length) return;
  const inUse = await addressesInUse();
  const gatewayAddr = cfg.gateway.split('/')[0]!;
  const gateway6Addr = cfg.gateway6.split('/')[0]!;
  const isGateway = (a: string) => sameAddress(a, gatewayAddr) || sameAddress(a, gateway6Addr);
  // The ranges themselves must be free on the host except for our bridge.
  for (const h of inUse) {
    if (h.netns || (h.ifname === cfg.bridge && isGateway(h.cidr.split('/')[0]!)) || h.cidr.startsWith('fe80:'))
      continue;
    const range = h.cidr.includes(':') ? cfg.range6 : cfg.range;
    if (networksOverlap(h.cidr, range)) {
      throw new JailyardError(
        'JY_ERR_ADDRESS',
        `the jail range ${range} overlaps host address ${h.cidr} on ${h.ifname}`,
        { jail: ctx.name, step: 'addresses' },
      );
    }
  }
  for (const w of wanted) {
    const place = { jail: ctx.name, param: w.param, step: 'addresses' };
    // An address outside the jail range lives in the jail's own netns only (jail(8)'s tests
    // use 192.0.1.1): the host has no route to it. Never one of the host's own networks
    // (its uplink's 192.0.2.0/24 and fd00::/64 here): the jail would answer for the host's
    // neighbours on the bridge.
    const reserved = reservedReason(w.address);
    if (reserved) throw new JailyardError('JY_ERR_ADDRESS', `address ${w.address} is ${reserved}`, place);
    for (const h of inUse) {
      if (h.netns || h.ifname === cfg.bridge || h.cidr.startsWith('fe80:')) continue;
      if (inNetwork(w.address, h.cidr))
        throw new JailyardError(
          'JY_ERR_ADDRESS',
          `address ${w.address} is in the network ${h.cidr} of host interface ${h.ifname}`,
          place,
        );
    }
    if (isGateway(w.address)) {
      throw new JailyardError('JY_ERR_ADDRESS', `address ${w.address} is the bridge gateway`, place);
    }
    for (const h of inUse) {
      if (
        h.netns === netnsName(ctx) ||
        h.cidr.startsWith('fe80:') ||
        h.ifname === 'lo' ||
        (h.ifname === cfg.bridge && !h.netns)
      )
        continue;
      const hostAddr = h.cidr.split('/')[0]!;
      const clash =
        sameAddress(hostAddr, w.address) ||
        (w.family === 6 && !h.netns && h.cidr.includes(':') && inNetwork(w.address, h.cidr));
      if (clash) {
        const where = h.holder
          ? `${h.holder} (netns ${h.netns})`
          : h.netns
            ? `netns ${h.netns}`
            : `host interface ${h.ifname}`;
        throw new JailyardError(
          'JY_ERR_ADDRESS',
          `address ${w.address} is already used by ${where} (${h.cidr})`,
          place,
        );
      }
    }
  }
}

/**
 * jail(8) lets jails without `vnet` share an address (they share the host's stack). On
 * Linux such jails share one network namespace: the one the first of them made, with its
 * veth on the bridge, joined by the others, host-wide (any state folder, as on FreeBSD),
 * when they declare the same addresses; never a `vnet` jail. Each jail that joined has a
 * file in SHARED/<netns>/ naming its state folder and name (written under the network
 * lock); the netns lives while a process is in it or a join is under way (a file younger
 * than JOIN_GRACE_MS), and goes with the last jail's stop. A crash leaves it to reconcile: a
 * running jail records it (NetworkFacts), and reconcile never removes a shared netns (or its
 * veth) that a process still uses, which is another folder's joined jail.
 */
const SHARED = `${HOST_RUN_DIR}/shared`;
const JOIN_GRACE_MS = 60_000;

/** Who holds a place in a shared netns: a jail of a state folder. */
export interface Holder {
  state: string;
  jail: string;
}

function holderFile(netns: string, h: Holder): string {
  const { createHash } = process.getBuiltinModule('node:crypto');
  return `${SHARED}/${netns}/${createHash('sha256').update(`${h.state}\n${h.jail}`).digest('hex').slice(0, 16)}`;
}

/** The state folder of a jail's context (ctx.stateDir is <state folder>/jails/<name>). */
const stateOf = (ctx: JailContext): string => dirname(dirname(ctx.stateDir));

/** The holder a jail's context stands for. */
export const holderOf = (ctx: JailContext): Holder => ({ state: stateOf(ctx), jail: ctx.name });

/**
 * The running netns that holds `wanted` (the same addresses), for a jail that shares them;
 * undefined when none holds any of them. A netns holding some of them but not the same set
 * is refused: the jails would see each other's other addresses.
 */
export function sharedNetns(ctx: JailContext, wanted: JailAddress[]): { netns: string; veth: string } | undefined {
  const claims = readClaims().filter((c) => existsSync(`/run/netns/${c.netns}`));
  const hit = claims.find((c) => wanted.some((w) => sameAddress(w.address, c.address)));
  if (!hit) return undefined;
  const held = claims.filter((c) => c.netns === hit.netns).map((c) => c.address);
  const same = (a: string[], b: string[]) => a.every((x) => b.some((y) => sameAddress(x, y)));
  const addrs = wanted.map((w) => w.address);
  if (!same(addrs, held) || !same(held, addrs)) {
    const w = wanted.find((x) => sameAddress(x.address, hit.address))!;
    const who = hit.state && hit.state !== stateOf(ctx) ? ` of the state folder ${hit.state}` : '';
    throw new JailyardError(
      'JY_ERR_ADDRESS',
      `address ${hit.address} is shared with jail "${hit.jail}"${who} whose addresses are ${held.join(', ')}: jails sharing an address must declare the same addresses`,
      { jail: ctx.name, param: w.param, step: 'addresses' },
    );
  }
  const veth = vethsOfNetns(hit.netns).find((v) => existsSync(`/sys/class/net/${v}`));
  if (!veth) return undefined;
  return { netns: hit.netns, veth };
}

/** Whether any process of the host is in the named netns. */
function netnsInUse(netns: string): boolean {
  let id;
  try {
    id = statSync(`/run/netns/${netns}`);
  } catch {
    return false;
  }
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const st = statSync(`/proc/${pid}/ns/net`);
      if (st.ino === id.ino && st.dev === id.dev) return true;
    } catch {
      // gone, or a kernel thread
    }
  }
  return false;
}

/** The holders recorded in a shared netns's folder (a join under way first). */
function holders(netns: string): (Holder & { fresh: boolean })[] {
  const dir = `${SHARED}/${netns}`;
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return [];
  }
  const now = Date.now();
  return files.flatMap((f) => {
    try {
      const [state = '', jail = ''] = readFileSync(`${dir}/${f}`, 'utf8').split('\n');
      const fresh = now - statSync(`${dir}/${f}`).mtimeMs < JOIN_GRACE_MS;
      return jail ? [{ state, jail, fresh }] : [];
    } catch {
      return [];
    }
  });
}

/** A jail leaves a shared netns: true when others still use it (it must stay). */
function leaveShared(netns: string, h: Holder): boolean {
  if (!existsSync(`${SHARED}/${netns}`)) return false;
  rmSync(holderFile(netns, h), { force: true });
  const stays = netnsInUse(netns) || holders(netns).some((x) => x.fresh);
  if (stays) handOver(netns, h);
  return stays;
}

/** Whether a netns (or the netns of a jail veth) is shared and a process still uses it:
 * never a leftover, whatever state folder's reconcile finds it. */
export function sharedInUse(netns: string | undefined): boolean {
  return netns !== undefined && existsSync(`${SHARED}/${netns}`) && netnsInUse(netns);
}

/** The address claims a leaving jail is named on go to a jail still in the netns, so a
 * refusal names a jail that holds the address. */
function handOver(netns: string, leaving: Holder): void {
  const mine = readClaims().filter((c) => c.netns === netns && c.jail === leaving.jail && c.state === leaving.state);
  const next = holders(netns)[0];
  if (!mine.length || !next) return;
  for (const c of mine) writeFileSync(c.file, `${netns}\n${c.address}\n${next.state}\n${next.jail}\n`);
}

/**
 * vnet.interface: host interfaces a `vnet` jail gets for itself, moved into its netns at the
 * addresses step (after the netns exists, as jail(8) moves them after making the vnet) and
 * back at its stop. Which were moved, by name and index, is written under VNET before each
 * move, so a failed start, a stop and reconcile (a netns the store does not know) all give
 * back exactly those: never an interface the jail made in its own netns.
 */
const VNET = `${HOST_RUN_DIR}/vnet`;

/** The interface names of vnet.interface, split at commas as jail(8) does. */
export function vnetInterfaces(jail: string, params: Params): string[] {
  const names = paramList(params, 'vnet.interface')
    .flatMap((e) => e.split(','))
    .map((e) => e.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(n) || n === '.' || n === '..')
      throw new JailyardError('JY_ERR_PARAM_VALUE', `not an interface name: ${JSON.stringify(n)}`, {
        jail,
        param: 'vnet.interface',
      });
  }
  return [...new Set(names)];
}

function ifindexOf(name: string): number | undefined {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Checks a jail's vnet.interface before anything is made: a vnet jail, each a host interface
 * of the admin's (not the loopback, not jailyard's bridge or a jail's veth). */
function checkVnetInterfaces(ctx: JailContext, names: string[], cfg: NetworkConfig): void {
  const place = { jail: ctx.name, param: 'vnet.interface', step: 'addresses' };
  if (paramString(ctx.spec.params, 'vnet') !== 'new' || ctx.parent)
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      'vnet.interface needs a jail with a network stack of its own (vnet, and not nested)',
      place,
    );
  for (const n of names) {
    if (n === 'lo' || n === cfg.bridge || netnsOfVeth(n) !== undefined)
      throw new JailyardError('JY_ERR_PARAM_VALUE', `interface ${n} cannot be given to a jail`, place);
    if (ifindexOf(n) === undefined)
      throw new JailyardError('JY_ERR_PARAM_VALUE', `interface ${n} does not exist on the host`, place);
  }
}

interface MovedInterface {
  name: string;
  index: number;
}

function readMoved(netns: string): MovedInterface[] {
  try {
    return readFileSync(`${VNET}/${netns}`, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [name = '', index = ''] = l.split('\t');
        return { name, index: Number(index) };
      });
  } catch {
    return [];
  }
}

function writeMoved(netns: string, moved: MovedInterface[]): void {
  mkdirSync(VNET, { recursive: true, mode: 0o755 });
  writeFileSync(`${VNET}/${netns}.tmp`, moved.map((m) => `${m.name}\t${m.index}\n`).join(''));
  renameSync(`${VNET}/${netns}.tmp`, `${VNET}/${netns}`);
}

/** Moves the interfaces into the netns; throws (naming the parameter) after giving back
 * those it moved when one cannot be moved. */
async function moveInterfaces(ctx: JailContext, netns: string, names: string[]): Promise<void> {
  const moved = readMoved(netns);
  for (const name of names) {
    const index = ifindexOf(name);
    let r = { code: 1, stderr: `Cannot find device "${name}"` };
    if (index !== undefined) {
      // recorded before it moves: a crash right after leaves a record reconcile reads
      writeMoved(netns, [...moved, { name, index }]);
      r = await run(['ip', 'link', 'set', 'dev', name, 'netns', netns]);
    }
    if (r.code !== 0) {
      writeMoved(netns, moved);
      await returnInterfaces(netns);
      throw new JailyardError('JY_ERR_PARAM_VALUE', `cannot move interface ${name} into the jail`, {
        jail: ctx.name,
        param: 'vnet.interface',
        step: 'addresses',
        output: r.stderr.trim(),
      });
    }
    // its index inside the netns (a clash there gives it a new one)
    const inside = (await run(['ip', '-n', netns, '-o', 'link', 'show', 'dev', name])).stdout;
    moved.push({ name, index: Number(/^(\d+):/.exec(inside)?.[1] ?? index) });
    writeMoved(netns, moved);
  }
}

/** Gives the recorded interfaces of a netns back to the host, under their first names (an
 * interface the jail renamed is found by its index); best effort: one that cannot come back
 * is left for the kernel (a physical one returns when the netns goes). */
async function returnInterfaces(netns: string): Promise<void> {
  const moved = readMoved(netns);
  if (!moved.length) {
    rmSync(`${VNET}/${netns}`, { force: true });
    return;
  }
  if (existsSync(`/run/netns/${netns}`)) {
    const now = new Map<number, string>();
    for (const l of (await run(['ip', '-n', netns, '-o', 'link', 'show'])).stdout.split('\n')) {
      const m = /^(\d+):\s+([^:@\s]+)/.exec(l);
      if (m) now.set(Number(m[1]), m[2]!);
    }
    for (const m of moved) {
      const cur = now.get(m.index);
      if (cur === undefined) continue;
      const back = await run([
        'ip',
        '-n',
        netns,
        'link',
        'set',
        'dev',
        cur,
        'netns',
        String(process.pid),
        'name',
        m.name,
      ]);
      // the name is taken on the host meanwhile: back under the name it has
      if (back.code !== 0) await run(['ip', '-n', netns, 'link', 'set', 'dev', cur, 'netns', String(process.pid)]);
    }
  }
  rmSync(`${VNET}/${netns}`, { force: true });
}

export async function setupNetwork(ctx: JailContext, cfg: NetworkConfig): Promise<NetworkFacts> {
  const wanted = jailAddresses(ctx.name, ctx.spec.params);
  // A nested jail lives in its parent's network namespace (the create step joins it): no
  // netns or veth of its own. The runtime checked that its addresses are the parent's.
  const ifaces = vnetInterfaces(ctx.name, ctx.spec.params);
  if (ifaces.length) checkVnetInterfaces(ctx, ifaces, cfg);
  if (ctx.parent) return { addresses: wanted.map((w) => w.cidr) };
  // No address: no veth and no named netns. The create step gives the jail a network
  // namespace of its own with only the loopback (a FreeBSD jail with no ip4.addr/ip6.addr
  // has no network either; both are fixed while the jail runs). With vnet.interface the
  // netns is named, to move the interfaces into it.
  if (!wanted.length && !ifaces.length) return { addresses: [] };
  if (!wanted.length) {
    const netns = netnsName(ctx, existsSync(`/run/netns/${netnsName(ctx)}`));
    const made = await run(['ip', 'netns', 'add', netns]);
    if (made.code !== 0)
      throw new JailyardError('JY_ERR_PLATFORM', `cannot create netns ${netns}`, {
        jail: ctx.name,
        step: 'addresses',
        output: made.stderr.trim(),
      });
    const facts: NetworkFacts = { netns, addresses: [] };
    try {
      await run(['ip', '-n', netns, 'link', 'set', 'lo', 'up']);
      await moveInterfaces(ctx, netns, ifaces);
    } catch (e) {
      await teardownNetwork(facts);
      throw e;
    }
    return facts;
  }
  const mayShare = paramString(ctx.spec.params, 'vnet') !== 'new';
  // a shared netns outlives the jail that made it, and keeps its name (of that jail's jid):
  // a jail given that jid meanwhile takes the spare name
  const shared = existsSync(`/run/netns/${netnsName(ctx)}`);
  const netns = netnsName(ctx, shared);
  // A stopped jail's veth goes away with its netns, asynchronously (teardownNetwork): the
  // same jid started again right away takes the spare name while the old one is going.
  const taken = (name: string) => existsSync(`/sys/class/net/${name}`) && !existsSync(`/run/netns/${netns}`);
  let host = hostVethName(ctx, false, shared);
  if (taken(host)) host = hostVethName(ctx, true, shared);
  if (existsSync(`/run/netns/${netns}`) || (taken(host) && !(await waitFor(() => !taken(host), 5000, 2)))) {
    throw new JailyardError(
      'JY_ERR_PLATFORM',
      `netns ${netns} or veth ${host} of an earlier run is still there (run reconcile)`,
      { jail: ctx.name, step: 'addresses' },
    );
  }
  const facts: NetworkFacts = {
    netns,
    veth: { host, jail: 'eth0' },
    bridge: cfg.bridge,
    addresses: wanted.map((w) => w.cidr),
  };
  // The jail's MAC is chosen here (not by the kernel) so the bridge filter can name it.
  const mac = randomMac(randomBytes(6));
  // The bridge is shared: made by the first jail, deleted by the last (teardownNetwork);
  // the lock keeps a jail from attaching to a bridge that is being deleted.
  const outside = await withHostLock('network', async () => {
    const group = mayShare ? sharedNetns(ctx, wanted) : undefined;
    if (group) {
      mkdirSync(`${SHARED}/${group.netns}`, { recursive: true, mode: 0o755 });
      const me = holderOf(ctx);
      writeFileSync(holderFile(group.netns, me), `${me.state}\n${me.jail}\n`);
      return { joined: group };
    }
    // The port's filter exists before the port does: no frame of the jail ever crosses the
    // bridge unfiltered (it matches the veth by name). Made while the addresses are checked.
    const adding = addSpoofFilter(host, mac, wanted);
    try {
      await ensureBridge(cfg);
      await checkAddresses(ctx, cfg, wanted);
    } catch (e) {
      if ((await adding).code === 0) await removeSpoofFilter([host], false).catch(() => {});
      throw e;
    }
    const filter = await adding;
    if (filter.code !== 0) return filter;
    claimAddresses(netns, wanted, ctx);
    // The jail side is created directly inside the netns, so "eth0" never meets the host's.
    return await ipBatch([
      // an address reused right after another jail gave it up would stay unreachable until
      // the host's neighbour entry for it (the old jail's MAC) ages out: forget those
      ...wanted.map((w) => `neigh flush to ${w.address} dev ${cfg.bridge}`),
      `netns add ${netns}`,
      `link add ${host} type veth peer name eth0 address ${mac} netns ${netns}`,
      `link set ${host} master ${cfg.bridge} up`,
    ]);
  });
  if ('joined' in outside) {
    return {
      netns: outside.joined.netns,
      veth: { host: outside.joined.veth, jail: 'eth0' },
      bridge: cfg.bridge,
      addresses: wanted.map((w) => w.cidr),
    };
  }
  if (outside.code !== 0) {
    await teardownNetwork(facts);
    throw new JailyardError('JY_ERR_PLATFORM', `cannot create netns ${netns} / veth ${host} with its bridge filter`, {
      jail: ctx.name,
      step: 'addresses',
      output: outside.stderr.trim(),
    });
  }
  const inside = await ipBatch(
    [
      // no router advertisements and no redirects, before eth0 is up (all, default and eth0:
      // the IPv4 kernel ORs all with the device's). One sysctl that `ip` forks and execs in the
      // netns; -e: a host without IPv6 has no such keys
      `netns exec ${netns} sysctl -q -e -w ${['all', 'default', 'eth0']
        .flatMap((dev) => NO_ROUTERS.map((k) => `net/${k.replace('%', dev)}=0`))
        .join(' ')}`,
      'link set lo up',
      // the link-local address from the MAC, whatever the host's default: the filter allows it
      'link set eth0 addrgenmode eui64',
      ...wanted.map((w) => `addr add ${w.cidr} dev eth0${w.family === 6 ? ' nodad' : ''}`),
      'link set eth0 up',
    ],
    netns,
  );
  if (inside.code !== 0) {
    await teardownNetwork(facts);
    throw new JailyardError('JY_ERR_ADDRESS', `cannot configure addresses ${facts.addresses.join(', ')}`, {
      jail: ctx.name,
      step: 'addresses',
      output: inside.stderr.trim(),
    });
  }
  try {
    await moveInterfaces(ctx, netns, ifaces);
  } catch (e) {
    await teardownNetwork(facts);
    throw e;
  }
  return facts;
}

/**
 * Deletes the netns; the kernel then deletes its veth pair by itself, asynchronously (an
 * explicit `link del` waited ~25 ms for it). A veth without its netns (a crash between the
 * two creations) is deleted directly. The shared bridge goes too when this was the last
 * jail on it. Tolerates everything being gone already. With `jail` (a jail's stop), a netns
 * the jail shares with others that still use it stays; without (reconcile, a failed
 * start's own netns) it goes.
 */
export async function teardownNetwork(facts: NetworkFacts, holder?: Holder): Promise<void> {
  // a jail without addresses (or a nested one) has nothing of its own on the host's network:
  // no host lock to wait for (parallel stops of address-less jails would queue on it)
  if (!facts.netns && !facts.veth && !facts.bridge) return;
  await withHostLock('network', async () => {
    if (facts.netns && holder !== undefined && leaveShared(facts.netns, holder)) return;
    // reconcile (no holder): a shared netns another folder's jail still uses is not a leftover
    if (holder === undefined && sharedInUse(facts.netns ?? (facts.veth ? netnsOfVeth(facts.veth.host) : undefined)))
      return;
    // vnet.interface: back to the host before the netns goes (a virtual one would go with it)
    if (facts.netns) await returnInterfaces(facts.netns);
    const lines: string[] = [];
    // forget the host's neighbour entries of the addresses (they may be reused at once)
    if (facts.bridge && bridgePorts(facts.bridge))
      for (const a of facts.addresses) lines.push(`neigh flush to ${a.split('/')[0]} dev ${facts.bridge}`);
    const nsExists = !!facts.netns && existsSync(`/run/netns/${facts.netns}`);
    if (facts.veth && !nsExists && existsSync(`/sys/class/net/${facts.veth.host}`))
      lines.push(`link del ${facts.veth.host}`);
    if (nsExists) lines.push(`netns del ${facts.netns}`);
    if (facts.netns) {
      releaseClaims(facts.netns);
      rmSync(`${SHARED}/${facts.netns}`, { recursive: true, force: true });
    }
    if (facts.bridge && bridgePorts(facts.bridge)?.every((p) => p === facts.veth?.host))
      lines.push(`link del ${facts.bridge}`);
    // the port's name when known; for a netns alone (reconcile) both names it may have had
    const veths = facts.veth ? [facts.veth.host] : facts.netns ? vethsOfNetns(facts.netns) : [];
    // the jail's processes are gone: its filter and its links go at the same time
    const [, r] = await Promise.all([
      removeSpoofFilter(veths, lines.includes(`link del ${facts.bridge}`)),
      lines.length ? ipBatch(lines, undefined, true) : undefined,
    ]);
    if (r && r.code !== 0 && facts.netns && existsSync(`/run/netns/${facts.netns}`)) {
      throw new JailyardError('JY_ERR_PLATFORM', `cannot remove netns ${facts.netns} / veth ${facts.veth?.host}`, {
        step: 'addresses',
        output: outputOf(r.stderr),
      });
    }
  });
}

/** Runs nft with a batch of commands (one transaction: all or nothing). */
async function nftBatch(lines: string[]): Promise<{ code: number; stderr: string }> {
  try {
    // one argument holding every command: through jy-spawner, no stdin needed
    return await run(['nft', lines.join('\n')]);
  } catch (e) {
    return { code: 127, stderr: `nft: ${(e as Error).message} (install nftables)` };
  }
}

/** Adds the anti-spoofing filter of one jail port (see spoofRules); under the network lock. */
function addSpoofFilter(
  veth: string,
  mac: string,
  addresses: JailAddress[],
): Promise<{ code: number; stderr: string }> {
  return nftBatch(spoofRules(veth, mac, addresses));
}

/** What jailyard's bridge filter holds: the ports in the verdict map and the port chains. */
async function spoofFilterState(): Promise<{ elements: string[]; chains: string[] } | undefined> {
  let r;
  try {
    r = await run(['nft', '-j', 'list', 'table', 'bridge', SPOOF_TABLE]);
  } catch {
    return undefined;
  }
  if (r.code !== 0) return undefined;
  try {
    type Item = { map?: { name: string; elem?: [string, unknown][] }; chain?: { name: string } };
    const items = (JSON.parse(r.stdout) as { nftables: Item[] }).nftables;
    const elements = items.flatMap((i) =>
      i.map?.name === SPOOF_MAP ? (i.map.elem ?? []).map((e) => String(e[0])) : [],
    );
    const chains = items.flatMap((i) =>
      i.chain?.name.startsWith('port-') ? [i.chain.name.slice('port-'.length)] : [],
    );
    return { elements, chains };
  } catch {
    return undefined;
  }
}

/**
 * Removes these ports' filters (one nft call when they are whole; else whatever of them is
 * left). With `lastOnBridge` the table goes too once no port is left in it.
 */
async function removeSpoofFilter(veths: string[], lastOnBridge: boolean): Promise<void> {
  if (!veths.length) return;
  let r = { code: 1, stderr: '' };
  // the usual case: the first name is the port, whole
  if (!lastOnBridge) r = await nftBatch(spoofRemoval(veths[0]!));
  if (r.code === 0 && veths.length === 1) return;
  const state = await spoofFilterState();
  if (!state) return;
  const lines = veths.flatMap((v) => {
    const has = { element: state.elements.includes(v), chain: state.chains.includes(v) };
    return has.element || has.chain ? spoofRemoval(v, has) : [];
  });
  const others = new Set([...state.elements, ...state.chains].filter((p) => !veths.includes(p)));
  if (lastOnBridge && others.size === 0) lines.splice(0, lines.length, `delete table bridge ${SPOOF_TABLE}`);
  if (!lines.length) return;
  r = await nftBatch(lines);
  if (r.code !== 0) {
    throw new JailyardError('JY_ERR_PLATFORM', `cannot remove the bridge filter of ${veths.join(', ')}`, {
      step: 'addresses',
      output: r.stderr.trim(),
    });
  }
}

/** Jail ports that have a bridge filter (reconcile: those of gone veths are leftovers). */
export async function filteredPorts(): Promise<string[]> {
  const state = await spoofFilterState();
  return state ? [...new Set([...state.elements, ...state.chains])] : [];
}
