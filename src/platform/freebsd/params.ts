// JailSpec -> the `param=value` arguments of `jail -c`: only what the kernel takes. jail(8)'s
// own parameters (exec.*, mount.*, depend, interface, ...) are steps the runtime already ran,
// and jailyard's own (skeleton*, limits.*) mean nothing to the kernel. Pure functions.

import { JailyardError } from '../../errors.ts';
import { paramList, paramString, type JailSpec, type Params, type ParamValue } from '../../conf/spec.ts';
import type { MetaOp } from '../../meta/ops.ts';

/** jail(8)'s internal parameters (usr.sbin/jail/config.c intparams[], PF_INTERNAL). */
const JAIL8_INTERNAL = new Set([
  'allow.dying',
  'command',
  'depend',
  'interface',
  'ip_hostname',
  'mount',
  'stop.timeout',
  'vnet.interface',
  'zfs.dataset',
]);
/** Whole families that never reach the kernel: jail(8)'s hooks and mounts, jailyard's own. */
const NON_KERNEL_PREFIXES = ['exec.', 'mount.', 'skeleton.', 'limits.', 'jailyard.'];
const NON_KERNEL_NAMES = new Set(['skeleton', 'limits', 'jailyard']);
/** Written first (name, path) or forced (persist: the runtime, not the kernel, ends a jail). */
const PLACED_BY_DRIVER = new Set(['name', 'path', 'persist', 'host.hostname']);

export function isKernelParam(name: string): boolean {
  if (JAIL8_INTERNAL.has(name) || NON_KERNEL_NAMES.has(name)) return false;
  return !NON_KERNEL_PREFIXES.some((p) => name.startsWith(p));
}

/** `allow.mount` -> `allow.nomount`, `persist` -> `nopersist` (libjail's boolean spelling). */
export function negatedName(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? `no${name}` : `${name.slice(0, dot + 1)}no${name.slice(dot + 1)}`;
}

/** One `param=value` argv element (no quoting: each is its own argument); booleans bare. */
export function paramArg(name: string, value: ParamValue): string {
  if (value === true) return name;
  if (value === false) return negatedName(name);
  if (Array.isArray(value)) return `${name}=${value.join(',')}`;
  return `${name}=${value}`;
}

/** One ip4.addr / ip6.addr entry: `[iface|]addr[/prefix or /netmask][ ifconfig options]`. */
export interface AddressEntry {
  family: 'inet' | 'inet6';
  iface?: string;
  addr: string;
  /** What followed the `/`: a prefix length, or (IPv4) a dotted netmask. */
  mask?: string;
  /** Extra ifconfig options after the address (e.g. `vhid 1 pass x`). */
  options: string[];
}

export function parseAddress(entry: string, family: 'inet' | 'inet6', defaultIface?: string): AddressEntry {
  const [head = '', ...options] = entry.trim().split(/\s+/);
  const bar = head.indexOf('|');
  const iface = bar >= 0 ? head.slice(0, bar) : defaultIface;
  const rest = bar >= 0 ? head.slice(bar + 1) : head;
  const slash = rest.indexOf('/');
  const addr = slash >= 0 ? rest.slice(0, slash) : rest;
  const mask = slash >= 0 ? rest.slice(slash + 1) : undefined;
  return { family, ...(iface ? { iface } : {}), addr, ...(mask !== undefined ? { mask } : {}), options };
}

/** The entry written back in ip4.addr syntax, with its interface made explicit (for facts). */
export function formatAddress(a: AddressEntry): string {
  const head = `${a.iface ? `${a.iface}|` : ''}${a.addr}${a.mask !== undefined ? `/${a.mask}` : ''}`;
  return [head, ...a.options].join(' ');
}

/** An address list parameter's entries (each element may hold several, comma-separated). */
function addressList(params: Params, name: string): string[] {
  return paramList(params, name)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
}

/** Every ip4.addr / ip6.addr entry of the spec, parsed. */
export function specAddresses(spec: JailSpec): AddressEntry[] {
  const iface = paramString(spec.params, 'interface') || undefined;
  return [
    ...addressList(spec.params, 'ip4.addr').map((e) => parseAddress(e, 'inet', iface)),
    ...addressList(spec.params, 'ip6.addr').map((e) => parseAddress(e, 'inet6', iface)),
  ];
}

/**
 * `jail -i -c` argv: name and path first, then the kernel parameters in the spec's order
 * (ip4.addr / ip6.addr stripped to bare addresses, as jail(8) does), then `persist`.
 */
export function createArgs(spec: JailSpec, path: string): string[] {
  const args = [`name=${spec.name}`, `path=${path}`];
  args.push(`host.hostname=${paramString(spec.params, 'host.hostname') || spec.name}`);
  for (const [name, value] of Object.entries(spec.params)) {
    if (PLACED_BY_DRIVER.has(name) || !isKernelParam(name)) continue;
    if (name === 'ip4.addr' || name === 'ip6.addr') {
      const family = name === 'ip4.addr' ? 'inet' : 'inet6';
      const addrs = addressList(spec.params, name).map((e) => parseAddress(e, family).addr);
      if (addrs.length > 0) args.push(`${name}=${addrs.join(',')}`);
      continue;
    }
    args.push(paramArg(name, value));
  }
  args.push('persist');
  return args;
}

/** meta/env key operations as `jail -m` arguments (FreeBSD 15 kern_jailmeta.c syntax). */
export function metaArgs(param: 'meta' | 'env', ops: MetaOp[], jail: string): string[] {
  return ops.map((op) => {
    if (op.op === 'replace') return `${param}=${op.value}`;
    if (op.key === '' || op.key.includes('=')) {
      throw new JailyardError('JY_ERR_META_KEY', `invalid ${param} key ${JSON.stringify(op.key)}`, {
        jail,
        key: op.key,
        param,
      });
    }
    return op.op === 'set' ? `${param}.${op.key}=${op.value}` : `${param}.${op.key}`;
  });
}
