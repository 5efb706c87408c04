// jailyard export: one stopped jail as an archive (src/portable/archive.ts): a manifest with its
// config (jail.conf text), meta, env, skeleton name@version and digest and pin, then its
// writable part, and with `full` the skeleton's own tree. A running jail is refused (its files
// change under the copy; the CLI's --restart stops it for the export); so is a jail with a
// mount left below its folder or an unfinished upgrade.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { JailyardError } from '../errors.ts';
import { printConf } from '../conf/printer.ts';
import { skeletonOf } from '../layout.ts';
import type { JailRecord } from '../store/types.ts';
import { jailSkeleton, readPinned } from '../skeleton/hooks.ts';
import { manifestDigest } from '../skeleton/registry.ts';
import { parseManifest } from '../skeleton/manifest.ts';
import { contentDigest } from './install.ts';
import { refuseUnfinished } from '../runtime/intent.ts';
import { writeArchive, type ArchiveSource } from './archive.ts';
import { FORMAT, FORMAT_VERSION, type ExportManifest, type SkeletonRef } from './manifest.ts';
import { checkPartKind, finishRollbacks, holdsLayers, jailParts, refuseNested, skipInPart } from './parts.ts';
import { opaqueDirs } from '../platform/linux/whiteout.ts';
import { treeSize } from './tree.ts';

/** A jail whose writable part may be read or replaced now: stopped, no unfinished upgrade,
 * nothing mounted below its folder or root. */
export function requireQuiet(
  stateDir: string,
  record: JailRecord,
  verb: string,
  mountsBelow: (dir: string) => string[],
): void {
  refuseNested(record.name, verb);
  if (record.state !== 'stopped')
    throw new JailyardError(
      'JY_ERR_INVALID_TRANSITION',
      `the jail is ${record.state}: ${verb} reads its files, which change while it runs; stop it first, or pass --restart`,
      { jail: record.name },
    );
  refuseUnfinished(stateDir, record.name);
  // a rollback killed in its renames is finished or undone first
  finishRollbacks(stateDir, record);
  for (const p of jailParts(stateDir, record)) {
    const left = mountsBelow(p.path);
    if (left.length)
      throw new JailyardError(
        'JY_ERR_MOUNT',
        `still mounted below ${p.path}: ${left.join(', ')}; run jailyard reconcile`,
        {
          jail: record.name,
        },
      );
  }
}

/** The skeleton reference of a jail (the version it is pinned to) with its digest. */
export function skeletonRefOf(stateDir: string, record: JailRecord, full: boolean): SkeletonRef | null {
  if (!skeletonOf(record)) return null;
  const v = jailSkeleton(stateDir, record);
  if (full && v.kind !== 'owned')
    throw new JailyardError(
      'JY_ERR_USAGE',
      `skeleton ${v.name}@${v.version} is a reference to ${v.root} on this host, not a tree of its own: --full cannot carry it (export without --full; the importing host needs a skeleton with the same digest)`,
      { jail: record.name, param: 'skeleton' },
    );
  const text = readFileSync(v.manifest);
  return {
    name: v.name,
    version: v.version,
    digest: manifestDigest(text),
    kind: v.kind,
    included: full,
    ...(full ? { contentDigest: contentDigest(parseManifest(text.toString('utf8'))) } : {}),
  };
}

export interface ExportResult {
  file: string;
  jail: string;
  skeleton: SkeletonRef | null;
  parts: string[];
  entries: number;
  bytes: number;
  notes: string[];
}

/** What an export writes: its manifest and the trees, checked (a stopped, quiet jail). */
export function planExport(
  stateDir: string,
  record: JailRecord,
  opts: { full?: boolean; mountsBelow: (dir: string) => string[] },
): { manifest: ExportManifest; sources: ArchiveSource[] } {
  requireQuiet(stateDir, record, 'export', opts.mountsBelow);
  const skeleton = skeletonRefOf(stateDir, record, !!opts.full);
  const pinned = skeleton ? readPinned(stateDir, record.name) : undefined;
  const parts = jailParts(stateDir, record);
  for (const p of parts) checkPartKind(p, record.name);
  const sources: ArchiveSource[] = parts.map((p) => ({
    prefix: `part/${p.name}`,
    path: p.path,
    skip: skipInPart(p.name),
  }));
  if (skeleton?.included) {
    const v = jailSkeleton(stateDir, record);
    sources.push({ prefix: 'skeleton', path: v.root });
  }
  // the totals the reader holds the archive to (the trees are stopped: they stay)
  let bytes = 0;
  let entries = 0;
  for (const s of sources) {
    const t = treeSize(s.path, s.skip);
    bytes += t.bytes;
    entries += t.entries;
  }
  const opaque = parts
    .filter((p) => holdsLayers(p.name))
    .flatMap((p) => opaqueDirs(p.path).map((rel) => `part/${p.name}/${rel}`));
  const manifest: ExportManifest = {
    format: FORMAT,
    version: FORMAT_VERSION,
    jail: record.name,
    conf: printConf([{ name: record.name, params: record.params }]),
    meta: record.meta,
    env: record.env,
    skeleton,
    pin: skeleton
      ? {
          cow: pinned?.cow ?? [],
          ...(pinned?.disk !== undefined ? { disk: pinned.disk } : {}),
          ...(pinned?.live !== undefined ? { live: pinned.live } : {}),
        }
      : null,
    parts: parts.map((p) => p.name),
    ...(opaque.length ? { opaque } : {}),
    bytes,
    entries,
    createdAt: new Date().toISOString(),
    host: hostname(),
    notes: [],
  };
  return { manifest, sources };
}

export async function exportJail(
  stateDir: string,
  record: JailRecord,
  file: string,
  opts: { full?: boolean; mountsBelow: (dir: string) => string[] },
): Promise<ExportResult> {
  const { manifest, sources } = planExport(stateDir, record, opts);
  const written = await writeArchive(file, manifest, sources);
  return {
    file,
    jail: record.name,
    skeleton: manifest.skeleton,
    parts: manifest.parts,
    entries: written.entries,
    bytes: written.bytes,
    notes: written.notes,
  };
}
