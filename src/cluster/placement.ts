// Where a jail runs in a cluster (pure: no etcd, no clock). The jail's `node` parameter names
// a node, `node.selector` selects nodes by label; a candidate is a live node that matches,
// has capacity left and whose range holds every IPv4 address of the jail (its addresses
// route only there). The least loaded candidate wins, ties by name.

import { JailyardError } from '../errors.ts';
import { paramList, paramString, type Params } from '../conf/spec.ts';
import { parseSelector } from '../meta/selector.ts';
import { ipv4Number, parseCidr, type NodeRecord } from './records.ts';

export type RestartPolicy = 'no' | 'always' | 'on-failure';

export interface NodeLoad {
  record: NodeRecord;
  /** Jails placed on the node now. */
  placed: number;
}

/** Each address of ip4.addr or ip6.addr as a node's driver reads it: comma-separated
 * entries "[iface|]addr[/len][ options]", the address without its length. */
export function addressEntries(params: Params, param: 'ip4.addr' | 'ip6.addr'): { entry: string; address: string }[] {
  return paramList(params, param)
    .flatMap((e) => e.split(','))
    .map((e) => e.trim())
    .filter(Boolean)
    .map((entry) => {
      const text = (entry.includes('|') ? entry.slice(entry.indexOf('|') + 1) : entry).trim().split(/\s+/)[0] ?? '';
      return { entry, address: text.split('/')[0] ?? '' };
    });
}

/** The jail's IPv4 addresses ("[iface|]addr[/len]") as numbers; a value that is not an
 * IPv4 address is refused (it could never be checked against a range). */
export function jailIpv4(name: string, params: Params): number[] {
  return addressEntries(params, 'ip4.addr').map(({ entry, address }) => {
    const n = /^[\d.]+$/.test(address) ? ipv4Number(address) : undefined;
    if (n === undefined) {
      throw new JailyardError('JY_ERR_ADDRESS', `ip4.addr ${JSON.stringify(entry)} is not an IPv4 address`, {
        jail: name,
        param: 'ip4.addr',
      });
    }
    return n;
  });
}

/** Refuses ip6.addr: a node has an IPv4 jail range only (serve --range), so an IPv6 address
 * could not be checked against anything, nor routed to the node that holds it. */
export function refuseIpv6(name: string, params: Params, node?: string): void {
  const [first] = addressEntries(params, 'ip6.addr');
  if (!first) return;
  throw new JailyardError(
    'JY_ERR_ADDRESS',
    `ip6.addr ${JSON.stringify(first.entry)}: ${node ? `node ${node} has` : 'cluster nodes have'} no IPv6 jail range (serve --range is IPv4 only); a cluster jail takes IPv4 addresses of its node's range`,
    { jail: name, param: 'ip6.addr' },
  );
}

/**
 * What a node's agent checks before it creates, changes or starts a jail placed on it: every
 * ip4.addr in the node's own range, no ip6.addr. Placement checks the same, but a record
 * written by hand (or by anything else with etcd access) never went through placement.
 */
export function checkNodeAddresses(name: string, params: Params, node: { name: string; range: string }): void {
  refuseIpv6(name, params, node.name);
  const r = parseCidr(node.range);
  const addrs = jailIpv4(name, params);
  const entries = addressEntries(params, 'ip4.addr');
  addrs.forEach((a, i) => {
    if (r !== undefined && a >= r.first && a <= r.last) return;
    throw new JailyardError(
      'JY_ERR_ADDRESS',
      `ip4.addr ${entries[i]!.address} is outside node ${node.name}'s range ${node.range}: the node does not start the jail (a jail's addresses route only to the node whose range holds them)`,
      { jail: name, param: 'ip4.addr' },
    );
  });
}

export function restartPolicy(params: Params): RestartPolicy {
  const p = paramString(params, 'restart.policy');
  return p === 'always' || p === 'on-failure' ? p : 'no';
}

/**
 * The node for a jail, or JY_ERR_NO_NODE saying why none fits. `exclude` names nodes not to
 * consider (a lost node, when re-placing).
 */
export function choosePlacement(
  jail: { name: string; params: Params },
  nodes: readonly NodeLoad[],
  opts: { exclude?: ReadonlySet<string>; skeletonRefs?: ReadonlyMap<string, string> } = {},
): string {
  const { name, params } = jail;
  const wanted = paramString(params, 'node') || undefined;
  const selText = paramString(params, 'node.selector') || undefined;
  let selector;
  try {
    selector = selText ? parseSelector(selText) : undefined;
  } catch (e) {
    if (e instanceof JailyardError)
      throw new JailyardError(e.code, e.message, { ...e.place, jail: name, param: 'node.selector' }, { cause: e });
    throw e;
  }
  const addrs = jailIpv4(name, params);
  refuseIpv6(name, params);
  const why: string[] = [];
  const live = nodes.filter((n) => !opts.exclude?.has(n.record.name));
  if (live.length === 0) throw noNode(name, 'no live node');
  let candidates = live;
  if (wanted !== undefined) {
    candidates = candidates.filter((n) => n.record.name === wanted);
    if (!candidates.length) why.push(`node "${wanted}" is not a live node`);
  }
  if (selector && candidates.length) {
    candidates = candidates.filter((n) => selector.matches(n.record.labels));
    if (!candidates.length) why.push(`no${wanted ? ` matching` : ''} node has labels matching "${selText}"`);
  }
  const skel = skeletonOf(params);
  if (skel && candidates.length) {
    const before = candidates;
    candidates = candidates.filter((n) => skeletonFits(n.record, skel, opts.skeletonRefs).ok);
    if (!candidates.length)
      why.push(
        `no such node has skeleton "${skel.text}" with the cluster's content (${before
          .map((n) => `${n.record.name}: ${skeletonFits(n.record, skel, opts.skeletonRefs).why}`)
          .join('; ')})`,
      );
  }
  if (addrs.length && candidates.length) {
    const before = candidates;
    candidates = candidates.filter((n) => {
      const r = parseCidr(n.record.range);
      return r !== undefined && addrs.every((a) => a >= r.first && a <= r.last);
    });
    if (!candidates.length)
      why.push(
        `no such node's range holds ${paramList(params, 'ip4.addr').join(', ')} (${before
          .map((n) => `${n.record.name}: ${n.record.range}`)
          .join(', ')})`,
      );
  }
  if (candidates.length) {
    const before = candidates;
    candidates = candidates.filter((n) => n.placed < n.record.capacity);
    if (!candidates.length)
      why.push(
        `every such node is full (${before.map((n) => `${n.record.name}: ${n.placed}/${n.record.capacity}`).join(', ')})`,
      );
  }
  if (!candidates.length) throw noNode(name, why.join('; '));
  const best = [...candidates].sort(
    (a, b) => a.placed - b.placed || (a.record.name < b.record.name ? -1 : a.record.name > b.record.name ? 1 : 0),
  )[0]!;
  return best.record.name;
}

/** The jail's `skeleton` parameter as NAME[@VERSION]; undefined when it names none (or is
 * not a reference: the node's own validation refuses it). */
export function skeletonOf(params: Params): { text: string; name: string; version?: number } | undefined {
  const text = paramString(params, 'skeleton') ?? '';
  const m = text ? /^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})(?:@([1-9]\d{0,9}))?$/.exec(text) : null;
  if (!m) return undefined;
  return { text, name: m[1]!, ...(m[2] ? { version: Number(m[2]) } : {}) };
}

/** The version of skeleton `name` a node would use: NAME@V, or its highest version. */
export function nodeSkeletonVersion(
  node: NodeRecord,
  skel: { name: string; version?: number },
): { ref: string; digest: string } | undefined {
  const have = node.skeletons ?? {};
  if (skel.version !== undefined) {
    const ref = `${skel.name}@${skel.version}`;
    return Object.hasOwn(have, ref) ? { ref, digest: have[ref]! } : undefined;
  }
  let best: { ref: string; digest: string; v: number } | undefined;
  for (const [ref, digest] of Object.entries(have)) {
    const at = ref.lastIndexOf('@');
    const v = Number(ref.slice(at + 1));
    if (ref.slice(0, at) === skel.name && (!best || v > best.v)) best = { ref, digest, v };
  }
  return best && { ref: best.ref, digest: best.digest };
}

/** Whether `node` has the skeleton with the cluster's reference digest (no reference yet:
 * the node's own content is the first, so it fits). A record without `skeletons` (a node
 * registered by something that does not publish them) is not judged here: its agent checks
 * the digest before it creates the jail. */
export function skeletonFits(
  node: NodeRecord,
  skel: { name: string; version?: number },
  refs: ReadonlyMap<string, string> | undefined,
): { ok: boolean; why: string } {
  if (node.skeletons === undefined) return { ok: true, why: '' };
  const v = nodeSkeletonVersion(node, skel);
  if (!v) return { ok: false, why: 'does not have it' };
  const ref = refs?.get(v.ref);
  if (ref !== undefined && ref !== v.digest)
    return { ok: false, why: `${v.ref} has digest ${v.digest.slice(0, 12)}, the cluster's is ${ref.slice(0, 12)}` };
  return { ok: true, why: '' };
}

function noNode(jail: string, why: string): JailyardError {
  return new JailyardError('JY_ERR_NO_NODE', `no node can take the jail: ${why}`, { jail });
}
