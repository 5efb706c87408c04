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

/** The jail's IPv4 addresses ("[iface|]addr[/len]") as numbers; a value that is not an
 * IPv4 address is refused (it could never be checked against a range). */
export function jailIpv4(name: string, params: Params): number[] {
  return paramList(params, 'ip4.addr').map((a) => {
    const addr = a.includes('|') ? a.slice(a.indexOf('|') + 1) : a;
    const n = ipv4Number(addr);
    if (n === undefined) {
      throw new JailyardError('JY_ERR_ADDRESS', `ip4.addr ${JSON.stringify(a)} is not an IPv4 address`, {
        jail: name,
        param: 'ip4.addr',
      });
    }
    return n;
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
  opts: { exclude?: ReadonlySet<string> } = {},
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

function noNode(jail: string, why: string): JailyardError {
  return new JailyardError('JY_ERR_NO_NODE', `no node can take the jail: ${why}`, { jail });
}
