// A skeleton version's content manifest: one line per entry, so `verify` can tell that an
// "immutable" tree is still what was recorded. Compact format (manifest.tsv), sorted by path:
//   <type>\t<mode octal>\t<uid>\t<gid>\t<size>\t<sha256 | link target | ->\t<path JSON>
// (path last and JSON-quoted so tabs/newlines in names cannot break a line).

import { createHash } from 'node:crypto';
import { closeSync, constants, lstatSync, openSync, readSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { kindOf } from './tree.ts';
import { splitRel } from './paths.ts';

export interface ManifestEntry {
  path: string;
  type: 'dir' | 'file' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** sha256 for files, the link text for symlinks, '' otherwise. */
  digest: string;
}

export function sha256File(path: string): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 16);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
    return h.digest('hex');
  } finally {
    closeSync(fd);
  }
}

/** Entries under `root` (only below `dirs` if given), on root's filesystem, sorted. */
export function buildManifest(root: string, dirs?: string[]): ManifestEntry[] {
  const out: ManifestEntry[] = [];
  const rootDev = lstatSync(root).dev;
  const visit = (rel: string): void => {
    let st;
    try {
      st = lstatSync(join(root, rel));
    } catch {
      return;
    }
    const type = kindOf(st);
    const digest =
      type === 'file' ? sha256File(join(root, rel)) : type === 'symlink' ? readlinkSync(join(root, rel)) : '';
    out.push({
      path: rel,
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: type === 'file' ? st.size : 0,
      digest,
    });
    if (type === 'dir' && st.dev === rootDev)
      for (const name of readdirSync(join(root, rel))) visit(rel ? `${rel}/${name}` : name);
  };
  if (dirs) for (const d of dirs) visit(splitRel(d).join('/'));
  else for (const name of readdirSync(root)) visit(name);
  out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return out;
}

export function formatManifest(entries: ManifestEntry[]): string {
  return (
    entries
      .map((e) =>
        [
          e.type,
          e.mode.toString(8),
          e.uid,
          e.gid,
          e.size,
          e.digest === '' ? '-' : JSON.stringify(e.digest),
          JSON.stringify(e.path),
        ].join('\t'),
      )
      .join('\n') + (entries.length ? '\n' : '')
  );
}

export function parseManifest(text: string): ManifestEntry[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [type, mode, uid, gid, size, digest, path] = line.split('\t');
      return {
        type: type as ManifestEntry['type'],
        mode: parseInt(mode ?? '0', 8),
        uid: Number(uid),
        gid: Number(gid),
        size: Number(size),
        digest: digest === '-' || digest === undefined ? '' : (JSON.parse(digest) as string),
        path: JSON.parse(path ?? '""') as string,
      };
    });
}

export interface ManifestDiff {
  added: string[];
  removed: string[];
  changed: string[];
}

export function diffManifests(recorded: ManifestEntry[], now: ManifestEntry[]): ManifestDiff {
  const a = new Map(recorded.map((e) => [e.path, e]));
  const b = new Map(now.map((e) => [e.path, e]));
  const diff: ManifestDiff = { added: [], removed: [], changed: [] };
  for (const [p, e] of a) {
    const f = b.get(p);
    if (!f) diff.removed.push(p);
    else if (
      e.type !== f.type ||
      e.mode !== f.mode ||
      e.uid !== f.uid ||
      e.gid !== f.gid ||
      e.size !== f.size ||
      e.digest !== f.digest
    )
      diff.changed.push(p);
  }
  for (const p of b.keys()) if (!a.has(p)) diff.added.push(p);
  return diff;
}
