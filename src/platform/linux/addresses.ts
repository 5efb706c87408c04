// Parsing and checking jail addresses (ip4.addr / ip6.addr). Pure: no system access.
import { isIPv4, isIPv6 } from 'node:net';
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
export function jailAddresses(jail: string, params: Record<string, unknown>): JailAddress[] {
  const out: JailAddress[] = [];
  for (const param of ['ip4.addr', 'ip6.addr'] as const) {
    const raw = params[param];
    if (raw === undefined || raw === '' || raw === false) continue;
    const entries = Array.isArray(raw) ? raw.map(String) : String(raw).split(',');
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
