// The export manifest (the archive's first entry, jailyard-export.json) and its checks. A
// manifest is read from a file that may come from anywhere: every field is checked for type
// and range before the import uses it.

import { JailyardError, printableValue } from '../errors.ts';
import { checkSkeletonName } from '../skeleton/registry.ts';
import { checkListEntry } from '../skeleton/paths.ts';
import { PART_NAMES, type PartName } from './parts.ts';

export const FORMAT = 'jailyard-export';
export const FORMAT_VERSION = 1;

export interface SkeletonRef {
  name: string;
  version: number;
  /** sha256 of the version's manifest.tsv (src/skeleton/registry.ts manifestDigest). */
  digest: string;
  kind: 'owned' | 'reference';
  /** The tree is in the archive (below skeleton/): an export with --full. */
  included: boolean;
  /** With the tree: the digest of its manifest without the entries an archive does not
   * carry (device nodes, FIFOs, sockets), which the tree unpacked must have. */
  contentDigest?: string;
}

export interface ExportManifest {
  format: typeof FORMAT;
  version: typeof FORMAT_VERSION;
  jail: string;
  /** The jail's parameters as jail.conf text (src/conf/printer.ts), one block. */
  conf: string;
  meta: string;
  env: string;
  skeleton: SkeletonRef | null;
  /** The skeleton pin's own fields (src/skeleton/hooks.ts PinnedSkeleton) besides name and
   * version: copy-on-write dirs, disk image size, live layout. */
  pin: { cow: string[]; disk?: number; live?: boolean } | null;
  parts: PartName[];
  /** Directories of overlay layers (part/cow/..., part/overlay/...) that carry overlayfs's
   * opaque mark; absent in archives that have none. */
  opaque?: string[];
  /** File bytes and entries of everything after the manifest (limits for the reader). */
  bytes: number;
  entries: number;
  createdAt: string;
  /** The host it was made on (for the reader's information only). */
  host: string;
  notes: string[];
}

const bad = (file: string, why: string): JailyardError =>
  new JailyardError('JY_ERR_ARCHIVE', `${file}: refused: its manifest ${why}; nothing was imported`);

const isInt = (v: unknown, min = 0): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
const isText = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;

/** Checks a parsed manifest field by field; returns it typed. */
export function checkManifest(m: unknown, file: string): ExportManifest {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw bad(file, 'is not an object');
  const o = m as Record<string, unknown>;
  if (o.format !== FORMAT) throw bad(file, `is not a ${FORMAT} manifest`);
  if (o.version !== FORMAT_VERSION)
    throw bad(file, `has format version ${JSON.stringify(o.version)}; this jailyard reads version ${FORMAT_VERSION}`);
  if (!isText(o.jail, 255) || o.jail === '') throw bad(file, 'has no jail name');
  if (!isText(o.conf, 1 << 20)) throw bad(file, 'has no config text');
  if (!isText(o.meta, 1 << 20) || !isText(o.env, 1 << 20)) throw bad(file, 'has no meta/env text');
  if (!isInt(o.bytes) || !isInt(o.entries)) throw bad(file, 'has no byte or entry count');
  if (!Array.isArray(o.parts) || !o.parts.every((p) => (PART_NAMES as readonly unknown[]).includes(p)))
    throw bad(file, `names parts other than ${PART_NAMES.join(', ')}`);
  if (new Set(o.parts).size !== o.parts.length) throw bad(file, 'names a part twice');
  let skeleton: SkeletonRef | null = null;
  if (o.skeleton !== null) {
    const s = o.skeleton as Record<string, unknown>;
    if (typeof s !== 'object' || s === null) throw bad(file, 'has a bad skeleton reference');
    if (typeof s.name !== 'string') throw bad(file, 'has a skeleton without a name');
    try {
      checkSkeletonName(s.name);
    } catch {
      throw bad(file, `names a bad skeleton ${JSON.stringify(s.name)}`);
    }
    if (!isInt(s.version, 1)) throw bad(file, 'has a bad skeleton version');
    if (typeof s.digest !== 'string' || !/^[0-9a-f]{64}$/.test(s.digest)) throw bad(file, 'has a bad skeleton digest');
    if (s.kind !== 'owned' && s.kind !== 'reference') throw bad(file, 'has a bad skeleton kind');
    if (typeof s.included !== 'boolean') throw bad(file, 'does not say whether the skeleton is included');
    if (s.included && s.kind !== 'owned') throw bad(file, 'includes a reference skeleton');
    if (
      s.contentDigest !== undefined &&
      (typeof s.contentDigest !== 'string' || !/^[0-9a-f]{64}$/.test(s.contentDigest))
    )
      throw bad(file, 'has a bad skeleton content digest');
    skeleton = {
      name: s.name,
      version: s.version,
      digest: s.digest,
      kind: s.kind,
      included: s.included,
      ...(s.included && s.contentDigest !== undefined ? { contentDigest: s.contentDigest as string } : {}),
    };
  }
  let pin: ExportManifest['pin'] = null;
  if (o.pin !== null) {
    const p = o.pin as Record<string, unknown>;
    if (typeof p !== 'object' || p === null || !Array.isArray(p.cow) || !p.cow.every((c) => typeof c === 'string'))
      throw bad(file, 'has a bad skeleton pin');
    const cow = (p.cow as string[]).map((c) => {
      try {
        return checkListEntry(c, { param: 'skeleton.cow' });
      } catch {
        throw bad(file, `has a bad copy-on-write dir ${JSON.stringify(c)}`);
      }
    });
    if (p.disk !== undefined && !isInt(p.disk, 1)) throw bad(file, 'has a bad disk size');
    if (p.live !== undefined && typeof p.live !== 'boolean') throw bad(file, 'has a bad live flag');
    pin = {
      cow,
      ...(p.disk !== undefined ? { disk: p.disk as number } : {}),
      ...(p.live !== undefined ? { live: p.live as boolean } : {}),
    };
  }
  if ((skeleton === null) !== (pin === null)) throw bad(file, 'has a skeleton without a pin, or a pin without one');
  let opaque: string[] | undefined;
  if (o.opaque !== undefined) {
    if (!Array.isArray(o.opaque) || o.opaque.length > 1_000_000) throw bad(file, 'has a bad opaque list');
    opaque = o.opaque.map((p) => {
      const comps = typeof p === 'string' ? p.split('/') : [];
      if (
        typeof p !== 'string' ||
        !/^part\/(cow|overlay)\//.test(p) ||
        p.includes('\0') ||
        comps.some((c) => c === '' || c === '.' || c === '..')
      )
        throw bad(file, `has a bad opaque directory ${JSON.stringify(p)}`);
      return p;
    });
  }
  // an archive's notes are printed on the operator's terminal (import): one line each, no
  // control character of the archive's maker
  const notes = Array.isArray(o.notes)
    ? o.notes
        .filter((n): n is string => isText(n, 4096))
        .slice(0, 1000)
        .map(printableValue)
    : [];
  return {
    format: FORMAT,
    version: FORMAT_VERSION,
    jail: o.jail,
    conf: o.conf,
    meta: o.meta,
    env: o.env,
    skeleton,
    pin,
    parts: o.parts as PartName[],
    ...(opaque ? { opaque } : {}),
    bytes: o.bytes,
    entries: o.entries,
    createdAt: isText(o.createdAt, 64) ? o.createdAt : '',
    host: isText(o.host, 255) ? o.host : '',
    notes,
  };
}
