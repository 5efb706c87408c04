// The etcd key names of a cluster, all under one prefix (default /jailyard/, --etcd-prefix),
// so several clusters (or tests) can share one etcd.

import { JailyardError } from '../errors.ts';

export const DEFAULT_PREFIX = '/jailyard/';

export interface ClusterKeys {
  /** The prefix, always ending in '/'. */
  readonly prefix: string;
  /** Prefix of every node record (`P nodes/`). */
  readonly nodes: string;
  /** Prefix of every jail record (`P jails/`). */
  readonly jails: string;
  /** `P settings`. */
  readonly settings: string;
  node(name: string): string;
  jail(name: string): string;
  /** The node or jail name a key under `nodes` / `jails` names, or undefined. */
  nodeName(key: string): string | undefined;
  jailName(key: string): string | undefined;
}

/** The keys under `prefix` (a trailing '/' is added when missing). */
export function clusterKeys(prefix: string = DEFAULT_PREFIX): ClusterKeys {
  if (prefix === '' || prefix.includes('\0')) {
    throw new JailyardError('JY_ERR_USAGE', `--etcd-prefix must be a non-empty key prefix, got "${prefix}"`, {
      param: '--etcd-prefix',
    });
  }
  const p = prefix.endsWith('/') ? prefix : `${prefix}/`;
  const nodes = `${p}nodes/`;
  const jails = `${p}jails/`;
  const under = (key: string, base: string): string | undefined => {
    if (!key.startsWith(base)) return undefined;
    const rest = key.slice(base.length);
    return rest === '' ? undefined : rest;
  };
  return {
    prefix: p,
    nodes,
    jails,
    settings: `${p}settings`,
    node: (name) => `${nodes}${name}`,
    jail: (name) => `${jails}${name}`,
    nodeName: (key) => under(key, nodes),
    jailName: (key) => under(key, jails),
  };
}
