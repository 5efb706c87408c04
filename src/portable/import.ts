// jailyard import: an export archive (hostile input: src/portable/archive.ts checks every
// entry, manifest.ts every field) becomes a jail of this host: staged in a folder of the
// state folder's own filesystem, its skeleton matched by digest (or made from a --full
// archive's tree), then created through the local service with its parts moved into place.
// Any refusal or failure removes the staging folder and leaves no jail.
//
// The config is the exporting host's: parameters that reach the host (exec.* commands run
// on the host, mounts of host paths, the root's host path, host interfaces, the console log
// file, the cgroup parent), allow.* rights and nouserns, which widen what the jail may do, are refused
// unless the caller trusts the archive (--trust); `param=value` words given to the import
// replace or drop (`param=`) them.

import { lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { currentPlatform, loadDefaults, type Defaults } from '../defaults.ts';
import { skeletonLists } from '../skeleton/planner.ts';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { JailyardError } from '../errors.ts';
import { parseConfString } from '../conf/evaluate.ts';
import type { Params } from '../conf/spec.ts';
import { applyMetaOps, DEFAULT_META_MAXBUFSIZE, type MetaOp } from '../meta/ops.ts';
import { labelMapOf } from '../meta/labels.ts';
import type { JailRecord, Store } from '../store/types.ts';
import { readArchive, exists } from './archive.ts';
import { checkManifest, type ExportManifest } from './manifest.ts';
import { createWithParts, matchSkeleton, repointSkeleton, requireSkeletonDigest, usedAddresses } from './install.ts';
import { HOST_ROOT_SKELETON } from '../layout.ts';
import { PART_NAMES, refuseNested } from './parts.ts';
import { alive } from './stopped.ts';
import { markOpaque } from '../platform/linux/whiteout.ts';

/** Parameters whose values act on the host, not only inside the jail. */
const HOST_PARAMS = new Set([
  'exec.prepare',
  'exec.prestart',
  'exec.created',
  'exec.poststart',
  'exec.prestop',
  'exec.poststop',
  'exec.release',
  'exec.consolelog',
  'exec.system_user',
  'mount',
  'mount.fstab',
  'path',
  'interface',
  'vnet.interface',
  'limits.cgroup_parent',
  // a host directory as the skeleton tree
  'skeleton.root',
  // host ports published to the jail
  'expose',
  // FreeBSD: host ZFS datasets handed to the jail to manage
  'zfs.dataset',
]);

/** Skeleton directory lists: relative to the skeleton, which for one made from the host's
 * root is the host's `/` (`skeleton.romounts = root` binds the host's /root into the jail).
 * A list equal to this platform's default is the jail's own as any new jail's. */
const SKELETON_LISTS = {
  'skeleton.romounts': 'romounts',
  'skeleton.rwmounts': 'rwmounts',
  'skeleton.cow': 'cow',
} as const;

/** Parameters whose kernel meaning shares something of the host's with the jail (FreeBSD:
 * `inherit` is the host's network stack, host name or System V IPC). */
const JAILSYS_SHARED = new Set(['ip4', 'ip6', 'host', 'sysvmsg', 'sysvsem', 'sysvshm', 'vnet']);

/** The archive's parameters that reach the host or widen the jail's rights. */
export function hostReaching(params: Params, defaults: Defaults = loadDefaults()): string[] {
  const platform = currentPlatform();
  return Object.entries(params)
    .filter(([k, v]) => {
      const set = v !== false && v !== '' && !(Array.isArray(v) && v.length === 0);
      // nouserns: the jail's root would be the host's root where the defaults map it away
      if (k === 'userns') return v === false;
      if (k in SKELETON_LISTS) {
        const fallback = defaults.skeleton[SKELETON_LISTS[k as keyof typeof SKELETON_LISTS]]?.[platform];
        const list = (Array.isArray(v) ? v : [v]).filter((x) => x !== '');
        return list.length > 0 && JSON.stringify(list) !== JSON.stringify(fallback ?? []);
      }
      if (JAILSYS_SHARED.has(k)) return v === 'inherit';
      // FreeBSD: devfs rules other than jail(8)'s own 4 may show host devices; a lower
      // enforce_statfs shows the host's mount points; children may be made
      if (k === 'devfs_ruleset') return v !== 4;
      if (k === 'enforce_statfs') return v !== 2;
      if (k === 'children.max') return v !== 0;
      return set && (HOST_PARAMS.has(k) || (k.startsWith('allow.') && v === true));
    })
    .map(([k]) => k);
}

/**
 * The labels the archive would give the jail (key=value lines of its meta and env, after the
 * import's own meta/env operations) that the import's operations did not set: what selectors
 * and load balancers act on (docs/lb.md), chosen by whoever made the archive. A replace on
 * the command line (`meta=...`) makes that buffer's lines the operator's.
 */
export function archiveLabels(
  m: Pick<ExportManifest, 'meta' | 'env'>,
  meta: MetaOp[] = [],
  env: MetaOp[] = [],
): string[] {
  const mine = new Set<string>();
  const own = (ops: MetaOp[]) => {
    for (const op of ops) {
      if (op.op === 'set') mine.add(op.key);
      if (op.op === 'replace') for (const k of labelMapOf(op.value, '').keys()) mine.add(k);
    }
  };
  own(meta);
  own(env);
  const after = (buffer: string, ops: MetaOp[]) =>
    applyMetaOps(buffer, ops, Math.max(DEFAULT_META_MAXBUFSIZE, buffer.length + 1) * 2);
  const labels = labelMapOf(after(m.meta, meta), after(m.env, env));
  return [...labels.keys()].filter((k) => !mine.has(k)).sort();
}

/** Addresses of the archive's config that a jail of this host has already: jails sharing an
 * address share a network stack (its loopback services, its ports, its /proc/net). */
function takenAddresses(params: Params, store: Store, name: string): string[] {
  const wanted = new Set(usedAddresses([{ params }]));
  if (!wanted.size) return [];
  return store
    .listJails()
    .filter((j) => j.name !== name)
    .flatMap((j) =>
      usedAddresses([j])
        .filter((a) => wanted.has(a))
        .map((a) => `${a} (jail ${j.name})`),
    );
}

/** The archive's parameters (its one jail.conf block, no .include), without `name`. */
function archivedParams(m: ExportManifest, file: string): Params {
  const specs = parseConfString(m.conf, `${file}:jail.conf`, {
    include: () => {
      throw new JailyardError('JY_ERR_ARCHIVE', `${file}: refused: its config has an .include; nothing was imported`);
    },
  });
  if (specs.length !== 1 || specs[0]!.name !== m.jail)
    throw new JailyardError(
      'JY_ERR_ARCHIVE',
      `${file}: refused: its config must define exactly the jail "${m.jail}"; nothing was imported`,
    );
  const { name: _n, ...params } = specs[0]!.params;
  return params;
}

/** A staging folder in the state folder (same filesystem as the jails: parts are renamed). */
export function makeStaging(stateDir: string, what: string): string {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  // what an import, clone or upload killed part way left (its process is gone)
  for (const n of readdirSync(stateDir)) {
    const m = /^\.(?:import|clone|upload)-(\d+)-[0-9a-f]+(?:\.tar\.zst)?$/.exec(n);
    if (m && !alive(Number(m[1]))) rmSync(join(stateDir, n), { recursive: true, force: true });
  }
  const dir = join(stateDir, `.${what}-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

export interface ImportOptions {
  /** The new jail's name (default: the archive's). */
  name?: string;
  /** Parameters given on the command line: replace the archive's (an empty value drops one). */
  params?: Params;
  meta?: MetaOp[];
  env?: MetaOp[];
  /** Accept host-reaching parameters from the archive. */
  trust?: boolean;
  /** The most file bytes to unpack (default: the free space). */
  maxBytes?: number;
}

export interface ImportResult {
  jail: JailRecord;
  from: string;
  skeleton: { name: string; version: number; made: boolean } | null;
  entries: number;
  bytes: number;
  notes: string[];
}

export async function importJail(
  store: Store,
  stateDir: string,
  file: string,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  const staging = makeStaging(stateDir, 'import');
  try {
    // the manifest is judged before any other entry is unpacked: its config and its skeleton
    // can refuse the archive without reading the rest
    let manifest: ExportManifest | undefined;
    let name = '';
    let archived: Params = {};
    const given = opts.params ?? {};
    const read = await readArchive(file, staging, PART_NAMES, {
      ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}),
      onManifest(raw) {
        const m = checkManifest(raw, file);
        manifest = m;
        name = opts.name ?? m.jail;
        refuseNested(name, 'import');
        archived = archivedParams(m, file);
        // a disk image is a file system the host's kernel parses when it mounts it: a crafted
        // one is hostile input to the kernel itself
        if (m.parts.includes('disk.img') && !opts.trust)
          throw new JailyardError(
            'JY_ERR_ARCHIVE',
            `${file}: refused: it carries a disk image (limits.disk), a file system this host's kernel would mount as it is; import it with --trust only when you made or trust the archive; nothing was imported`,
            { jail: name, param: 'limits.disk' },
          );
        const risky = hostReaching(archived).filter((k) => !(k in given));
        if (risky.length && !opts.trust)
          throw new JailyardError(
            'JY_ERR_ARCHIVE',
            `${file}: refused: its config sets ${risky.join(', ')}, which act on this host or widen the jail's rights; read them (tar -xOf ${file} --zstd jailyard-export.json), then import with --trust, or replace them (param=value, "param=" drops one); nothing was imported`,
            { jail: name, param: risky[0]! },
          );
        // a skeleton the archive does not carry must be here already
        if (m.skeleton && !m.skeleton.included && m.skeleton.name !== HOST_ROOT_SKELETON)
          requireSkeletonDigest(stateDir, m.skeleton, name);
        // what it takes of this host's other jails: an address (their network stack), labels
        // (their load balancer pools and selectors)
        const taken = takenAddresses(
          Object.fromEntries(Object.entries(archived).filter(([k]) => !(k in given))),
          store,
          name,
        );
        if (taken.length && !opts.trust)
          throw new JailyardError(
            'JY_ERR_ARCHIVE',
            `${file}: refused: its config takes the address ${taken.join(', ')} of this host: jails sharing an address share a network stack; give it one here (ip4.addr=, ip6.addr=; "ip4.addr=" drops it) or import with --trust; nothing was imported`,
            { jail: name, param: taken[0]!.includes(':') ? 'ip6.addr' : 'ip4.addr' },
          );
        const labels = archiveLabels(m, opts.meta, opts.env);
        if (labels.length && !opts.trust)
          throw new JailyardError(
            'JY_ERR_ARCHIVE',
            `${file}: refused: its meta/env carry the labels ${labels.join(', ')}, which selectors and load balancers act on (docs/lb.md); set them here (meta.KEY=VALUE, env.KEY=VALUE; meta= and env= drop the archive's) or import with --trust; nothing was imported`,
            { jail: name, param: 'meta', key: labels[0]! },
          );
        return { bytes: m.bytes, entries: m.entries };
      },
    });
    const m = manifest!;
    if (m.opaque?.length) {
      // each must be a directory the archive made, reached without a link (jy-xattr refuses one)
      try {
        markOpaque(staging, m.opaque);
      } catch (e) {
        throw new JailyardError(
          'JY_ERR_ARCHIVE',
          `${file}: refused: an opaque directory of its manifest is not a directory of its layers (${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? String(e)}); nothing was imported`,
        );
      }
    }
    let params: Params = { ...archived };
    for (const [k, v] of Object.entries(given)) {
      if (v === '') delete params[k];
      else params[k] = v;
    }
    // the rwmounts' sources are bound into the jail as they are: real directories only
    const rw = join(staging, 'part', 'rw');
    if (exists(rw)) {
      const lists = skeletonLists(name, params, loadDefaults(), currentPlatform());
      for (const entry of lists.rwmounts) {
        let at = rw;
        for (const c of entry.split('/')) {
          at = join(at, c);
          const st = lstatSync(at, { throwIfNoEntry: false });
          if (st && !st.isDirectory())
            throw new JailyardError(
              'JY_ERR_ARCHIVE',
              `${file}: refused: part/rw/${entry} is bound into the jail and must be a directory, not a ${st.isSymbolicLink() ? 'link' : 'file'}; nothing was imported`,
            );
          if (!st) break;
        }
      }
    }
    if (exists(join(staging, 'part', 'root')) && params.path === undefined && archived.path !== undefined)
      throw new JailyardError('JY_ERR_PATH', 'the jail had a path of its own: give it one here (path=DIR)', {
        jail: name,
        param: 'path',
      });
    let skeleton: ImportResult['skeleton'] = null;
    const notes = [...m.notes];
    if (m.skeleton) {
      const tree = m.skeleton.included ? join(staging, 'skeleton') : undefined;
      if (tree && !exists(tree))
        throw new JailyardError(
          'JY_ERR_ARCHIVE',
          `${file}: refused: it says it holds its skeleton but has no skeleton/`,
        );
      const found = await matchSkeleton(stateDir, m.skeleton, tree, name);
      params = repointSkeleton(params, m.skeleton.name, found.version);
      skeleton = { name: m.skeleton.name, version: found.version, made: found.made };
      notes.push(...found.notes);
    }
    const record = await createWithParts(store, stateDir, {
      spec: { name, params: { name, ...params } },
      meta: [{ op: 'replace', value: m.meta }, ...(opts.meta ?? [])],
      env: [{ op: 'replace', value: m.env }, ...(opts.env ?? [])],
      staged: join(staging, 'part'),
      ...(m.skeleton && m.pin && skeleton
        ? { pin: { name: m.skeleton.name, version: skeleton.version, ...m.pin } }
        : {}),
    });
    return {
      jail: record,
      from: file,
      skeleton,
      entries: read.entries,
      bytes: read.bytes,
      notes,
    };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
