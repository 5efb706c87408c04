// jailyard clone: a new jail from a stopped one on this host: its parameters, meta and env,
// its skeleton pin, and a copy of its writable part (reflinked where the filesystem can,
// src/portable/tree.ts). The clone gets its own name, hostname (NEW unless given) and
// addresses (the next free ones of the defaults' ranges unless given); a jail with a `path`
// of its own needs `path=` for the clone, and an explicit `jid` is not copied.

import { join } from 'node:path';
import { JailyardError } from '../errors.ts';
import type { Params } from '../conf/spec.ts';
import { paramList } from '../conf/spec.ts';
import type { MetaOp } from '../meta/ops.ts';
import type { JailRecord, Store } from '../store/types.ts';
import { readPinned } from '../skeleton/hooks.ts';
import { skeletonOf } from '../layout.ts';
import { requireQuiet } from './export.ts';
import { addressRange, createWithParts, nextFreeAddress, usedAddresses } from './install.ts';
import { makeStaging } from './import.ts';
import { checkPartKind, holdsLayers, jailParts, refuseNested, rootOutsideState, skipInPart } from './parts.ts';
import { checkSpace, copyExact, noSpace } from './tree.ts';
import { rmSync } from 'node:fs';

export interface CloneResult {
  jail: JailRecord;
  from: string;
  entries: number;
  bytes: number;
  notes: string[];
}

/** The clone's parameters: the original's, then NEW's name, hostname, addresses, `given`. */
export function cloneParams(original: JailRecord, name: string, given: Params, all: JailRecord[]): Params {
  const { jid: _jid, ...params } = original.params;
  if (given['host.hostname'] === undefined) params['host.hostname'] = name;
  const used = usedAddresses(all);
  for (const [p, family] of [
    ['ip4.addr', 4],
    ['ip6.addr', 6],
  ] as const) {
    const had = paramList(original.params, p).flatMap((x) => x.split(','));
    if (given[p] !== undefined || had.length === 0) continue;
    // the first address's prefix; one new address for the clone
    const prefix = Number(/\/(\d+)/.exec(had[0]!)?.[1] ?? (family === 4 ? 24 : 64));
    const next = nextFreeAddress(addressRange(family), used, prefix);
    params[p] = [next];
    used.push(next.split('/')[0]!);
  }
  for (const [k, v] of Object.entries(given)) {
    if (v === '') delete params[k];
    else params[k] = v;
  }
  return params;
}

export async function cloneJail(
  store: Store,
  stateDir: string,
  original: JailRecord,
  name: string,
  opts: { params?: Params; meta?: MetaOp[]; env?: MetaOp[]; mountsBelow: (dir: string) => string[] },
): Promise<CloneResult> {
  refuseNested(name, 'clone');
  requireQuiet(stateDir, original, 'clone', opts.mountsBelow);
  if (store.getJail(name))
    throw new JailyardError('JY_ERR_JAIL_EXISTS', `jail "${name}" already exists`, { jail: name });
  const given = opts.params ?? {};
  if (rootOutsideState(stateDir, original) && given.path === undefined)
    throw new JailyardError(
      'JY_ERR_PATH',
      `the jail's root is its own path (${String(original.params.path)}): give the clone one (path=DIR)`,
      { jail: name, param: 'path' },
    );
  const params = cloneParams(original, name, given, store.listJails());
  const parts = jailParts(stateDir, original);
  for (const p of parts) checkPartKind(p, original.name);
  const staging = makeStaging(stateDir, 'clone');
  try {
    checkSpace(
      parts.map((p) => ({ src: p.path, destDir: staging, skip: skipInPart(p.name) })),
      original.name,
      'clone',
    );
    const notes: string[] = [];
    let entries = 0;
    let bytes = 0;
    try {
      for (const p of parts) {
        const s = copyExact(p.path, join(staging, p.name), skipInPart(p.name), { overlay: holdsLayers(p.name) });
        entries += s.entries;
        bytes += s.bytes;
        notes.push(...s.notes.map((n) => `${p.name}/${n}`));
      }
    } catch (e) {
      throw noSpace(e, original.name, 'clone');
    }
    const pin = skeletonOf(original) ? readPinned(stateDir, original.name) : undefined;
    const jail = await createWithParts(store, stateDir, {
      spec: { name, params: { name, ...params } },
      meta: [{ op: 'replace', value: original.meta }, ...(opts.meta ?? [])],
      env: [{ op: 'replace', value: original.env }, ...(opts.env ?? [])],
      staged: staging,
      ...(pin ? { pin } : {}),
    });
    return { jail, from: original.name, entries, bytes, notes };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
