// Parsing and checking jail addresses (ip4.addr / ip6.addr). Pure: no system access.
import { isIPv4, isIPv6 } from 'node:net';
import { paramList, type Params } from '../../conf/spec.ts';
import { JailyardError } from '../../errors.ts';

export interface JailAddress {
  /** As configured on eth0: address/prefix. */
  cidr: string;
  address: string;
  prefix: number;
  family: 4 | 6;
  /** The parameter it came from, for error places. */
  param: 'ip4.addr' | 'ip6.addr';
}

/** Reads ip4.addr / ip6.addr entries: "a.b.c.d", "a.b.c.d/24", or FreeBSD's "iface|addr". */
export function jailAddresses(jail: string, params: Params): JailAddress[] {
  const out: JailAddress[] = [];
  for (const param of ['ip4.addr', 'ip6.addr'] as const) {
    const entries = paramList(params, param).flatMap((e) => e.split(','));
    for (const entry of entries.map((e) => e.trim()).filter(Boolean)) {
      // FreeBSD allows "iface|addr" and a trailing " netmask ..."; the interface is ours (eth0).
      const text = (entry.includes('|') ? entry.slice(entry.indexOf('|') + 1) : entry).trim().split(/\s+/)[0]!;
      const [address = '', prefixText] = text.split('/');
      const family = param === 'ip4.addr' ? 4 : 6;
      const valid = family === 4 ? isIPv4(address) : isIPv6(address);
      const max = family === 4 ? 32 : 128;
      const prefix = prefixText === undefined ? (family === 4 ? 24 : 64) : Number(prefixText);
      if (!valid || !Number.isInteger(prefix) || prefix < 1 || prefix > max) {
        throw new JailyardError('JY_ERR_ADDRESS', `not an IPv${family} address: "${entry}"`, { jail, param });
      }
      out.push({ cidr: `${address}/${prefix}`, address, prefix, family, param });
    }
  }
  return out;
}

/** An address as a bigint, for prefix arithmetic on both families. */
export function addressBits(address: string): { bits: bigint; width: number } {
  if (isIPv4(address)) {
    return { bits: address.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n), width: 32 };
  }
  const [head = '', tail] = address.split('::');
  const groups = (s: string) => (s ? s.split(':') : []);
  let parts = groups(head);
  if (tail !== undefined) {
    const t = groups(tail);
    parts = [...parts, ...Array(8 - parts.length - t.length).fill('0'), ...t];
  }
  return { bits: parts.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n), width: 128 };
}

/** Whether `address` lies in `cidr` (same family only). */
export function inNetwork(address: string, cidr: string): boolean {
  const [net = '', prefixText = ''] = cidr.split('/');
  const a = addressBits(address);
  const n = addressBits(net);
  if (a.width !== n.width) return false;
  const prefix = prefixText === '' ? a.width : Number(prefixText);
  const shift = BigInt(a.width - prefix);
  return a.bits >> shift === n.bits >> shift;
}

/** Whether two networks (cidr) share any address. */
export function networksOverlap(a: string, b: string): boolean {
  const [aNet = '', aP = ''] = a.split('/');
  const [bNet = '', bP = ''] = b.split('/');
  const shorter = Number(aP) <= Number(bP) ? { net: aNet, p: aP } : { net: bNet, p: bP };
  const other = shorter.net === aNet && shorter.p === aP ? bNet : aNet;
  return addressBits(aNet).width === addressBits(bNet).width && inNetwork(other, `${shorter.net}/${shorter.p}`);
}

/** Whether two address texts are the same address ("2001:db8::1" = "2001:db8:0::1"). */
export function sameAddress(a: string, b: string): boolean {
  try {
    const x = addressBits(a);
    const y = addressBits(b);
    return x.width === y.width && x.bits === y.bits;
  } catch {
    return a === b;
  }
}

/** A random locally administered unicast MAC (the jail's eth0; the bridge filter allows
 * only this one from the jail's port). */
export function randomMac(bytes: Uint8Array): string {
  const b = [...bytes.slice(0, 6)];
  b[0] = (b[0]! & 0xfc) | 0x02;
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** The IPv6 link-local address the kernel derives from a MAC (EUI-64, addrgenmode eui64). */
export function eui64LinkLocal(mac: string): string {
  const b = mac.split(':').map((h) => parseInt(h, 16));
  const word = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
  return `fe80::${word(b[0]! ^ 0x02, b[1]!)}:${word(b[2]!, 0xff)}:${word(0xfe, b[3]!)}:${word(b[4]!, b[5]!)}`;
}

/** An IPv6 address as the 128-bit hex number nft compares raw payload with. */
function ipv6Hex(address: string): string {
  return `0x${addressBits(address).bits.toString(16).padStart(32, '0')}`;
}

/** jailyard's nft table (bridge family): a base chain that sends each jail port's frames,
 * by its veth name (a verdict map), to that port's own chain. */
export const SPOOF_TABLE = 'jailyard';
export const SPOOF_MAP = 'ports';
export const portChain = (veth: string) => `port-${veth}`;

function checkPortName(veth: string): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(veth))
    throw new JailyardError('JY_ERR_INTERNAL', `bad veth name ${veth} for the bridge filter`, { step: 'addresses' });
}

/**
 * The nft commands (one transaction) that make the bridge accept from a jail's port (its
 * host veth) only frames with the jail's own MAC, IPv4 and IPv6 source addresses (its
 * link-local one, and the unspecified address for duplicate address detection and MLD
 * only), ARP only for its own MAC and IPv4 addresses, neighbour advertisements only for its
 * own IPv6 addresses, no router advertisement, redirect (ICMPv6 and ICMP), router
 * renumbering or DHCP/DHCPv6 server reply (source port 67, 547), and no other ethertype (no
 * VLAN tags). Inbound traffic is not touched. Repeating them is harmless (the table, map
 * and base chain are shared by all jails; the base chain's one rule is rewritten, the port's
 * chain refilled).
 */
export function spoofRules(veth: string, mac: string, addresses: Pick<JailAddress, 'address' | 'family'>[]): string[] {
  checkPortName(veth);
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac))
    throw new JailyardError('JY_ERR_INTERNAL', `bad MAC ${mac} for the bridge filter`, { step: 'addresses' });
  const v4 = addresses.filter((a) => a.family === 4).map((a) => a.address);
  const own6 = [...addresses.filter((a) => a.family === 6).map((a) => a.address), eui64LinkLocal(mac)];
  const t = `bridge ${SPOOF_TABLE}`;
  const chain = portChain(veth);
  const rule = (text: string) => `add rule ${t} ${chain} ${text}`;
  const set = (list: string[]) => `{ ${list.join(', ')} }`;
  return [
    `add table ${t}`,
    `add map ${t} ${SPOOF_MAP} { type ifname : verdict; }`,
    `add chain ${t} antispoof { type filter hook prerouting priority -200; policy accept; }`,
    `flush chain ${t} antispoof`,
    `add rule ${t} antispoof iifname vmap @${SPOOF_MAP}`,
    `add chain ${t} ${chain}`,
    `flush chain ${t} ${chain}`,
    rule(`ether saddr != ${mac} drop`),
    rule(`ether type != { ip, ip6, arp } drop`),
    rule(`ether type arp arp saddr ether != ${mac} drop`),
    ...(v4.length
      ? [rule(`ether type arp arp saddr ip != ${set(v4)} drop`), rule(`ether type ip ip saddr != ${set(v4)} drop`)]
      : [rule('ether type { ip, arp } drop')]),
    rule(`ether type ip6 ip6 saddr != ${set([...own6, '::'])} drop`),
    rule(
      'ether type ip6 ip6 saddr :: icmpv6 type != { nd-neighbor-solicit, mld-listener-report, mld2-listener-report } drop',
    ),
    // the target address of a neighbour advertisement (ICMPv6 bytes 8-23)
    rule(`ether type ip6 icmpv6 type nd-neighbor-advert @th,64,128 != ${set(own6.map(ipv6Hex))} drop`),
    // a jail is never a router or a DHCP server on the bridge (CVE-2020-13401's class: a
    // router advertisement from its own link-local address gave other jails and the host a
    // default route through it, and the host a SLAAC address)
    rule('ether type ip6 icmpv6 type { nd-router-advert, nd-redirect, router-renumbering } drop'),
    rule('ether type ip6 udp sport 547 drop'),
    ...(v4.length ? [rule('ether type ip icmp type redirect drop'), rule('ether type ip udp sport 67 drop')] : []),
    `add element ${t} ${SPOOF_MAP} { "${veth}" : jump ${chain} }`,
  ];
}

/** The nft commands that remove a port's filter (fail when part of it is gone already). */
export function spoofRemoval(
  veth: string,
  has: { element: boolean; chain: boolean } = { element: true, chain: true },
): string[] {
  checkPortName(veth);
  return [
    ...(has.element ? [`delete element bridge ${SPOOF_TABLE} ${SPOOF_MAP} { "${veth}" }`] : []),
    ...(has.chain ? [`delete chain bridge ${SPOOF_TABLE} ${portChain(veth)}`] : []),
  ];
}
