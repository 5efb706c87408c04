// Applying image layers (tar streams) to a tree being built, as hostile input. Used by
// image.ts for `skel create NAME --oci-archive FILE` (docs/skeletons.md, "Skeletons from
// images"). node-tar parses (strict: a bad checksum or a truncated archive is an error);
// every write is ours, entry by entry:
// - entry names are relative, without `..`, at most 4096 bytes (255 a component); absolute
//   names and `..` are refused, never stripped;
// - every parent of an entry must be a real directory of the tree: a symlink there (`a ->
//   /etc`, then `a/passwd`) is refused, never followed; missing parents are made 0755 root;
// - the entry itself is replaced (unlink, or rm -r of a directory, neither follows a
//   symlink) and created with O_CREAT|O_EXCL|O_NOFOLLOW / mkdir / symlink / link;
// - hard links must name an earlier file or symlink of the tree by the same rules;
// - whiteouts (`.wh.NAME`, `.wh..wh..opq`) remove only what lower layers made, found by the
//   same rules (a whiteout below a symlink is refused);
// - device nodes and FIFOs are not made (jails get their own /dev): skipped with a note;
// - owners and modes (setuid/setgid included) are kept, set through the open descriptor;
// - file bytes and entry counts are capped; the first entry over a cap is refused.
// Errors are JY_ERR_IMAGE naming the layer and the entry; the caller removes the tree.

import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { JailyardError, printableValue } from '../errors.ts';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_DIRECTORY } = constants;

export interface LayerLimits {
  /** Bytes of file content over all layers. */
  maxBytes: number;
  /** Entries over all layers (whiteouts included). */
  maxEntries: number;
}

export const DEFAULT_LIMITS: LayerLimits = { maxBytes: 16 * 1024 ** 3, maxEntries: 2_000_000 };

/** What the layers applied so far have used, and what was skipped. */
export interface ApplyTally {
  bytes: number;
  entries: number;
  notes: string[];
}

const MAX_NOTES = 50;

export function note(t: ApplyTally, text: string): void {
  if (t.notes.length < MAX_NOTES) t.notes.push(text);
  else if (t.notes.length === MAX_NOTES) t.notes.push('(more notes left out)');
}

export function imageError(msg: string, layer?: string, entry?: string): JailyardError {
  return new JailyardError(
    'JY_ERR_IMAGE',
    `${layer ? `${layer}: ` : ''}${entry !== undefined ? `entry "${printableValue(entry)}": ` : ''}${msg}`,
    { param: '--oci-archive' },
  );
}

/**
 * An entry's name as components: "./a/b/" -> ["a", "b"]; the root ("./", ".") -> [].
 * Refuses absolute names, `..`, NUL, over-long names. Pure.
 */
export function entryParts(name: string): string[] {
  if (name.includes('\0')) throw new Error('a NUL byte in the name');
  if (name.startsWith('/')) throw new Error('an absolute name (refused, not stripped)');
  if (Buffer.byteLength(name) > 4096) throw new Error('a name longer than 4096 bytes');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  for (const p of parts) {
    if (p === '..') throw new Error('a name with ".." (refused, not resolved)');
    if (Buffer.byteLength(p) > 255) throw new Error('a name component longer than 255 bytes');
  }
  return parts;
}

/** What a layer entry name means: a whiteout of NAME in the parent, an opaque marker of the
 * parent, an other AUFS marker (ignored), or a plain entry. Pure. */
export function classify(
  parts: string[],
): { kind: 'whiteout'; name: string } | { kind: 'opaque' | 'marker' | 'plain' } {
  const base = parts[parts.length - 1];
  if (base === undefined || !base.startsWith('.wh.')) return { kind: 'plain' };
  if (base === '.wh..wh..opq') return { kind: 'opaque' };
  if (base.startsWith('.wh..wh.')) return { kind: 'marker' };
  const name = base.slice('.wh.'.length);
  if (name === '' || name === '.' || name === '..') throw new Error('a whiteout without a name');
  return { kind: 'whiteout', name };
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * The directory `parts` names below `root`, every component a real directory (never a
 * symlink). Missing ones are made (0755, root) when `make`, else undefined is returned.
 */
function dirIn(root: string, parts: string[], make: boolean): string | undefined {
  let cur = root;
  for (let i = 0; i < parts.length; i++) {
    cur = join(cur, parts[i]!);
    const st = lstatOrUndefined(cur);
    const shown = parts.slice(0, i + 1).join('/');
    if (!st) {
      if (!make) return undefined;
      mkdirSync(cur, { mode: 0o755 });
      continue;
    }
    if (st.isSymbolicLink()) throw new Error(`"${printableValue(shown)}" is a symlink: nothing is written through one`);
    if (!st.isDirectory()) throw new Error(`"${printableValue(shown)}" is not a directory`);
  }
  return cur;
}

/** Removes what is at `p` (a directory with its contents), never following a symlink. */
function removeAt(p: string, st: Stats): void {
  if (st.isDirectory()) rmSync(p, { recursive: true, force: true });
  else unlinkSync(p);
}

function idOf(v: number | undefined, what: string): number {
  const n = v ?? 0;
  if (!Number.isInteger(n) || n < 0 || n > 0xfffffffe) throw new Error(`bad ${what} ${n}`);
  return n;
}

function metaOf(entry: ReadEntry): { mode: number; uid: number; gid: number; mtime: Date } {
  return {
    mode: (entry.mode ?? 0o644) & 0o7777,
    uid: idOf(entry.uid, 'uid'),
    gid: idOf(entry.gid, 'gid'),
    mtime: entry.mtime && !Number.isNaN(entry.mtime.getTime()) ? entry.mtime : new Date(0),
  };
}

/**
 * Feeds an uncompressed tar stream to node-tar's strict parser and calls `onEntry` for each
 * entry in order; settles when the archive ended (rejects with the first error). `feed`
 * also gets every chunk first (digests, counts). Double compression is refused.
 */
export async function parseTar(
  input: AsyncIterable<Buffer>,
  onEntry: (entry: ReadEntry, fail: (e: unknown) => void) => void,
  feed: (chunk: Buffer) => void = () => {},
): Promise<void> {
  const parser = new Parser({ strict: true, zstd: false, brotli: false });
  let failure: unknown;
  let rejectDone: (e: unknown) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    rejectDone = reject;
    parser.on('end', () => resolve());
    parser.on('error', (e: unknown) => reject(failure ?? e));
  });
  done.catch(() => {});
  const fail = (e: unknown): void => {
    if (failure === undefined) failure = e;
    rejectDone(failure);
    try {
      parser.abort(e instanceof Error ? e : new Error(String(e)));
    } catch {
      // the abort's own error event: settled above
    }
  };
  parser.on('entry', (entry: ReadEntry) => {
    if (failure !== undefined) {
      entry.resume();
      return;
    }
    try {
      onEntry(entry, fail);
    } catch (e) {
      entry.resume();
      fail(e);
    }
  });
  parser.on('ignoredEntry', (entry: ReadEntry) =>
    fail(new Error(`entry "${printableValue(entry.path)}": unsupported type ${entry.type}`)),
  );
  let first = true;
  for await (const chunk of input) {
    if (failure !== undefined) break;
    if (first && chunk.length >= 2) {
      first = false;
      if ((chunk[0] === 0x1f && chunk[1] === 0x8b) || chunk.readUInt32LE(0) === 0xfd2fb528)
        fail(new Error('compressed twice (a compressed stream inside the layer)'));
    }
    try {
      feed(chunk);
    } catch (e) {
      fail(e);
      break;
    }
    if (!parser.write(chunk)) await Promise.race([new Promise((r) => parser.once('drain', r)), done]);
  }
  if (failure === undefined) parser.end();
  await done;
  if (failure !== undefined) throw failure;
}

export interface LayerInput {
  /** "layer 2 (sha256:...)": how errors and notes name it. */
  label: string;
  /** The layer's uncompressed tar. */
  tar: AsyncIterable<Buffer>;
  /** Gets every uncompressed chunk (the diff_id). */
  feed?: (chunk: Buffer) => void;
}

/** Applies one layer to `root` (the tree of the layers below). Throws JY_ERR_IMAGE. */
export async function applyLayer(
  root: string,
  layer: LayerInput,
  tally: ApplyTally,
  limits: LayerLimits,
): Promise<void> {
  // what this layer made: whiteouts and opaque markers do not touch it
  const mine = new Set<string>();
  let current = '';
  let fd: number | undefined;
  const onEntry = (entry: ReadEntry, fail: (e: unknown) => void): void => {
    current = entry.path;
    tally.entries++;
    if (tally.entries > limits.maxEntries)
      throw new Error(`more than ${limits.maxEntries} entries in the image (the limit)`);
    const parts = entryParts(entry.path);
    const rel = parts.join('/');
    const shape = classify(parts);
    if (shape.kind === 'marker') {
      entry.resume();
      return;
    }
    if (shape.kind === 'opaque' || shape.kind === 'whiteout') {
      entry.resume();
      const dir = dirIn(root, parts.slice(0, -1), false);
      if (dir === undefined) return;
      const dirRel = parts.slice(0, -1).join('/');
      const under = (name: string): string => (dirRel ? `${dirRel}/${name}` : name);
      if (shape.kind === 'whiteout') {
        const target = under(shape.name);
        const st = lstatOrUndefined(join(dir, shape.name));
        if (st && !mine.has(target)) removeAt(join(dir, shape.name), st);
        return;
      }
      // opaque: everything of the lower layers below the directory goes
      const sweep = (abs: string, relDir: string): void => {
        for (const name of readdirSync(abs)) {
          const r = relDir ? `${relDir}/${name}` : name;
          const p = join(abs, name);
          const st = lstatSync(p);
          if (!mine.has(r)) removeAt(p, st);
          else if (st.isDirectory()) sweep(p, r);
        }
      };
      sweep(dir, dirRel);
      return;
    }
    if (parts.length === 0) {
      // the root itself: its owner and mode stay jailyard's (0755 root), so jails can use it
      if (entry.type !== 'Directory') throw new Error(`the root is a ${entry.type}, not a directory`);
      entry.resume();
      return;
    }
    const type = entry.type;
    if (type === 'CharacterDevice' || type === 'BlockDevice' || type === 'FIFO') {
      note(tally, `${layer.label}: ${printableValue(rel)}: ${type} not made (jails get their own /dev)`);
      entry.resume();
      return;
    }
    if (!['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link'].includes(type))
      throw new Error(`unsupported entry type ${type}`);
    const meta = metaOf(entry);
    const size = type === 'Directory' || type === 'SymbolicLink' || type === 'Link' ? 0 : entry.size;
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`bad size ${size}`);
    if (tally.bytes + size > limits.maxBytes)
      throw new Error(
        `${size} bytes would take the image over ${limits.maxBytes} bytes of files (the limit; --max-size raises it)`,
      );
    const dir = dirIn(root, parts.slice(0, -1), true)!;
    const base = parts[parts.length - 1]!;
    const path = join(dir, base);
    const existing = lstatOrUndefined(path);
    // the entry and its parents are this layer's: an opaque marker keeps them
    for (let i = 1; i <= parts.length; i++) mine.add(parts.slice(0, i).join('/'));
    if (type === 'Directory') {
      if (existing && !existing.isDirectory()) removeAt(path, existing);
      if (!existing?.isDirectory()) mkdirSync(path, { mode: 0o700 });
      const dfd = openSync(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      try {
        fchownSync(dfd, meta.uid, meta.gid);
        fchmodSync(dfd, meta.mode);
      } finally {
        closeSync(dfd);
      }
      entry.resume();
      return;
    }
    if (existing) removeAt(path, existing);
    if (type === 'SymbolicLink') {
      const target = entry.linkpath ?? '';
      if (target === '' || target.includes('\0') || Buffer.byteLength(target) > 4095)
        throw new Error('a symlink without a usable target');
      symlinkSync(target, path);
      lchownSync(path, meta.uid, meta.gid);
      lutimesSync(path, meta.mtime, meta.mtime);
      entry.resume();
      return;
    }
    if (type === 'Link') {
      let tparts: string[];
      try {
        tparts = entryParts(entry.linkpath ?? '');
      } catch (e) {
        throw new Error(`a hard link to "${printableValue(entry.linkpath ?? '')}": ${(e as Error).message}`);
      }
      if (tparts.length === 0) throw new Error('a hard link to the root');
      const tdir = dirIn(root, tparts.slice(0, -1), false);
      const tpath = tdir === undefined ? undefined : join(tdir, tparts[tparts.length - 1]!);
      const tst = tpath === undefined ? undefined : lstatOrUndefined(tpath);
      if (!tpath || !tst)
        throw new Error(`a hard link to "${printableValue(tparts.join('/'))}", which the image does not have`);
      if (!tst.isFile() && !tst.isSymbolicLink())
        throw new Error(`a hard link to "${printableValue(tparts.join('/'))}", which is not a file`);
      linkSync(tpath, path);
      entry.resume();
      return;
    }
    // a regular file
    fd = openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    const out = fd;
    let written = 0;
    entry.on('data', (chunk: Buffer) => {
      if (fd === undefined) return;
      try {
        let off = 0;
        while (off < chunk.length) off += writeSync(out, chunk, off, chunk.length - off);
        written += chunk.length;
      } catch (e) {
        fail(e);
      }
    });
    entry.on('end', () => {
      if (fd === undefined) return;
      try {
        if (written !== size) throw new Error(`${written} bytes of ${size}`);
        fchownSync(out, meta.uid, meta.gid);
        // chown clears setuid/setgid: the mode after it
        fchmodSync(out, meta.mode);
        futimesSync(out, meta.mtime, meta.mtime);
        tally.bytes += size;
      } catch (e) {
        fail(e);
      } finally {
        closeSync(out);
        fd = undefined;
      }
    });
    entry.resume();
  };
  try {
    await parseTar(
      layer.tar,
      (entry, fail) => {
        try {
          onEntry(entry, fail);
        } catch (e) {
          throw imageError((e as Error).message, layer.label, current);
        }
      },
      layer.feed,
    );
  } catch (e) {
    if (e instanceof JailyardError) throw e;
    // a full disk stays what it is (createSkeleton says so, naming the state folder)
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') throw e;
    throw imageError(
      `${(e as Error).message}${current ? '' : ' (before the first entry)'}`,
      layer.label,
      current || undefined,
    );
  } finally {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  }
}
