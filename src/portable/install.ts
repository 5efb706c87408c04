// Making a jail from a writable part that came from elsewhere (an import's staged archive, a
// clone's copy): its skeleton is matched by digest, the jail is created through the local
// service (one record, the create intent, its undo on failure) with a `prepare` that moves the
// staged parts into place instead of seeding them, and the skeleton pin is written again.

import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { JailyardError } from '../errors.ts';
import type { JailSpec, Params } from '../conf/spec.ts';
import { paramList, paramString } from '../conf/spec.ts';
import type { MetaOp } from '../meta/ops.ts';
import { HOST_ROOT_SKELETON, skeletonOf } from '../layout.ts';
import type { Store, JailRecord } from '../store/types.ts';
import type { SkeletonHooks } from '../runtime/service.ts';
import { createLocalService } from '../runtime/service.ts';
import { ensureHostRootSkeleton, skeletonHooks, writePinned, type PinnedSkeleton } from '../skeleton/hooks.ts';
import { createSkeleton, manifestDigest, parseSkeletonRef, skeletonDigests } from '../skeleton/registry.ts';
import { buildManifest, formatManifest, type ManifestEntry } from '../skeleton/manifest.ts';
import { loadDefaults } from '../defaults.ts';
import { addressBits } from '../platform/linux/addresses.ts';
import { copyExact } from './tree.ts';
import { checkPartKind, partPaths } from './parts.ts';
import type { SkeletonRef } from './manifest.ts';

/** Moves `src` to `dest` (a rename; across filesystems a copy, then the source goes). */
function move(src: string, dest: string): void {
  try {
    renameSync(src, dest);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    copyExact(src, dest);
    rmSync(src, { recursive: true, force: true });
  }
}

function emptyDir(p: string): boolean {
  try {
    return readdirSync(p).length === 0;
  } catch {
    return false;
  }
}

/**
 * Moves the parts staged in `from` (root, cow, overlay, rw, disk.img) to the jail's places.
 * The jail's root must be missing or an empty folder (a `path` of the admin's is never
 * overwritten).
 */
export function installParts(stateDir: string, jail: JailSpec, from: string): void {
  // a failure part way moves back what was moved (the caller removes the staging folder, and
  // the create's undo the jail's folder; a root at an admin's path is not left there)
  const moved: { src: string; dest: string }[] = [];
  try {
    for (const part of partPaths(stateDir, jail)) {
      const src = join(from, part.name);
      if (!existsSync(src)) continue;
      // a link here would make the jail's root or layer the host's own tree
      checkPartKind({ name: part.name, path: src }, jail.name);
      if (existsSync(part.path)) {
        if (!emptyDir(part.path))
          throw new JailyardError(
            'JY_ERR_PATH',
            `${part.path} exists and is not empty; give the jail another path=`,
            part.name === 'root' ? { jail: jail.name, param: 'path' } : { jail: jail.name },
          );
        rmdirSync(part.path);
      }
      mkdirSync(dirname(part.path), { recursive: true, mode: 0o700 });
      move(src, part.path);
      moved.push({ src, dest: part.path });
    }
  } catch (e) {
    for (const m of moved.reverse()) {
      try {
        move(m.dest, m.src);
      } catch {
        rmSync(m.dest, { recursive: true, force: true });
      }
    }
    throw e;
  }
}

/**
 * The local version of the skeleton `ref` names: one with the same digest (the same version
 * number first), else, when the archive holds the tree (`tree`), a new version made from it
 * (its digest checked before it is made). JY_ERR_SKELETON_MISMATCH when NAME@N here has
 * other content, JY_ERR_SKELETON_NOT_FOUND when it is not here, each saying what to do.
 */
/** Without the tree: NAME has a version with the archive's digest here, else the error
 * matchSkeleton would give (checked before the archive is unpacked). */
export function requireSkeletonDigest(stateDir: string, ref: SkeletonRef, jail: string): void {
  const digests = skeletonDigests(stateDir);
  if (Object.entries(digests).some(([k, d]) => d === ref.digest && k.startsWith(`${ref.name}@`))) return;
  throw skeletonMissing(ref, digests, jail);
}

function skeletonMissing(ref: SkeletonRef, digests: Record<string, string>, jail: string): JailyardError {
  const key = `${ref.name}@${ref.version}`;
  const how =
    ref.kind === 'reference'
      ? `it is a reference skeleton (a live tree of the exporting host): make it here with "jailyard skel create ${ref.name} --from DIR" from a tree with the same content`
      : `export the jail with --full (the archive then carries the skeleton), or make it here with "jailyard skel create ${ref.name} ..." from the same tree`;
  if (digests[key] !== undefined)
    return new JailyardError(
      'JY_ERR_SKELETON_MISMATCH',
      `skeleton ${key} here has digest ${digests[key]}, the archive's has ${ref.digest} (other content, and no version of ${ref.name} here matches); ${how}`,
      { jail, param: 'skeleton' },
    );
  return new JailyardError(
    'JY_ERR_SKELETON_NOT_FOUND',
    `skeleton ${key} (digest ${ref.digest}) is not on this host; ${how}`,
    { jail, param: 'skeleton' },
  );
}

/** The digest of a manifest without the entries an archive does not carry (device nodes,
 * FIFOs, sockets: type "other"). */
export function contentDigest(entries: ManifestEntry[]): string {
  return manifestDigest(formatManifest(entries.filter((e) => e.type !== 'other')));
}

export async function matchSkeleton(
  stateDir: string,
  ref: SkeletonRef,
  tree: string | undefined,
  jail: string,
): Promise<{ version: number; made: boolean; notes: string[] }> {
  if (ref.name === HOST_ROOT_SKELETON) await ensureHostRootSkeleton(stateDir);
  const digests = skeletonDigests(stateDir);
  const key = `${ref.name}@${ref.version}`;
  if (digests[key] === ref.digest) return { version: ref.version, made: false, notes: [] };
  const same = Object.entries(digests).find(([k, d]) => d === ref.digest && k.startsWith(`${ref.name}@`));
  if (same) return { version: Number(same[0].slice(ref.name.length + 1)), made: false, notes: [] };
  if (tree) {
    // what the archive carries of the tree, unpacked, must be what its manifest says
    const expected = ref.contentDigest ?? ref.digest;
    const digest = contentDigest(buildManifest(tree));
    if (digest !== expected)
      throw new JailyardError(
        'JY_ERR_SKELETON_MISMATCH',
        `the archive's skeleton tree has digest ${digest}, its manifest says ${expected}: damaged or altered`,
        { jail, param: 'skeleton' },
      );
    const v = await createSkeleton(stateDir, ref.name, { type: 'copy', path: tree });
    const made = skeletonDigests(stateDir)[`${ref.name}@${v.version}`];
    // a tree with device nodes (a debootstrap's /dev), or files a copy leaves out (key
    // material by name), is not the same content here: said, not hidden
    const notes =
      made === ref.digest
        ? []
        : [
            `skeleton ${ref.name}@${v.version} made from the archive has digest ${made ?? '?'}, the exporting host's ${key} has ${ref.digest}: the archive does not carry its device nodes, FIFOs and sockets, and a copy leaves out key material; its jails run the same, but the two versions are not the same by digest`,
          ];
    return { version: v.version, made: true, notes };
  }
  throw skeletonMissing(ref, digests, jail);
}

/** The `skeleton` parameter pointed at the matched version (only a versioned NAME@N changes). */
export function repointSkeleton(params: Params, name: string, version: number): Params {
  const s = paramString(params, 'skeleton');
  if (!s || parseSkeletonRef(s).version === undefined) return params;
  return { ...params, skeleton: `${name}@${version}` };
}

/** The first address of the network range `cidr` not in `used` (skipping the network's
 * first two: the network itself and the gateway). */
export function nextFreeAddress(cidr: string, used: Iterable<string>, prefix: number): string {
  const [net = '', len = ''] = cidr.split('/');
  const { bits, width } = addressBits(net);
  const size = 1n << BigInt(width - Number(len));
  const taken = new Set([...used].map((a) => addressBits(a).bits));
  const last = size > 1n << 16n ? bits + (1n << 16n) : bits + size - 1n;
  for (let b = bits + 2n; b < last; b++) {
    if (taken.has(b)) continue;
    const text =
      width === 32
        ? [24n, 16n, 8n, 0n].map((s) => String((b >> s) & 255n)).join('.')
        : Array.from({ length: 8 }, (_, i) => ((b >> BigInt(112 - 16 * i)) & 0xffffn).toString(16)).join(':');
    return `${text}/${prefix}`;
  }
  throw new JailyardError('JY_ERR_ADDRESS', `no free address left in ${cidr}`);
}

/** Every address the jails of this store name (ip4 and ip6), without prefix or interface. */
export function usedAddresses(jails: readonly Pick<JailRecord, 'params'>[]): string[] {
  const out: string[] = [];
  for (const j of jails)
    for (const p of ['ip4.addr', 'ip6.addr'])
      for (const e of paramList(j.params, p).flatMap((x) => x.split(','))) {
        const a = e
          .trim()
          .replace(/^[^|]*\|/, '')
          .split(/[\s/]/)[0];
        if (a) out.push(a);
      }
  return out;
}

/** The network range of a family from the defaults (network.range / range6). */
export function addressRange(family: 4 | 6): string {
  const n = loadDefaults().network as { range: string; range6?: string; gateway?: string; gateway6?: string };
  const r = family === 4 ? n.range : n.range6;
  if (!r) throw new JailyardError('JY_ERR_ADDRESS', `the defaults have no IPv${family} range for a new address`);
  return r;
}

export interface NewJail {
  spec: JailSpec;
  meta: MetaOp[];
  env: MetaOp[];
  /** The staged parts (root, cow, ...), moved into place at create. */
  staged: string;
  /** The pin to write; undefined for a jail without a skeleton. */
  pin?: PinnedSkeleton;
}

/**
 * Creates the jail with its staged writable part: through the local service, so the record,
 * the create intent and its undo are the same as `create`'s; nothing is seeded.
 */
export async function createWithParts(store: Store, stateDir: string, n: NewJail): Promise<JailRecord> {
  const base = skeletonHooks();
  const hooks: SkeletonHooks = {
    plan: base.plan,
    batch: base.batch,
    async prepare(dir, record) {
      installParts(dir, record, n.staged);
      if (n.pin) writePinned(dir, record.name, n.pin);
    },
  };
  const service = createLocalService({ store, stateDir, skeletons: hooks });
  const record = await service.create({ spec: n.spec, meta: n.meta, env: n.env });
  if (!skeletonOf(record) && existsSync(join(n.staged, 'root'))) {
    // a jail of its own path without a skeleton: no prepare ran
    try {
      installParts(stateDir, record, n.staged);
    } catch (e) {
      await service.remove([record.name]);
      throw e;
    }
  }
  return record;
}
