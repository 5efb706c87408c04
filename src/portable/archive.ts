// jailyard's export archives: a tar stream (POSIX ustar with pax headers, encoded by node-tar's
// Header and Pax) compressed with Node's own zstd (node:zlib). The first entry is the
// manifest (jailyard-export.json), then the writable part below `part/<name>/`, then, in a
// --full export, the skeleton's tree below `skeleton/`.
//
// Writing walks the trees itself (lstat, never following a link): directories, regular
// files and symlinks with modes, owners and times; hard links are stored as separate files;
// overlay whiteouts (character devices 0:0 in a copy-on-write layer: files the jail deleted)
// are kept; other device nodes, FIFOs and sockets are left out with a note (a jail's /dev is
// a mount). A file with holes (fewer blocks than its size, at least SPARSE_MIN) is a GNU tar
// sparse entry (PAX 1.0, src/portable/sparse-tar.ts): its data regions only, found by
// SEEK_DATA/SEEK_HOLE on the descriptor opened here (src/platform/linux/sparse.ts), so a
// `truncate -s 1T` file is neither read nor stored as zeros; at most MAX_SPARSE_REGIONS
// regions, the last then taking the rest of the file. Other files are read whole; reading
// writes no zero block of theirs either, so a hole stored as zeros is a hole again.
//
// Reading treats the archive as hostile input (it may come from another host, or be made by
// hand): every entry is checked before anything is written, and everything is written into a
// fresh staging folder only, with O_CREAT|O_EXCL|O_NOFOLLOW, below directories this reader
// made. Refused (JY_ERR_ARCHIVE): a first entry that is not the manifest, a path that is
// absolute, empty or has `.`/`..` components or a NUL, a path outside `part/<known part>/` and
// `skeleton/`, an entry whose parent is not a directory made earlier by the archive (so
// nothing is ever written below a symlink), the same path twice, a hard link to anything but
// a file earlier in the same part, a symlink whose relative target climbs out of its part, a
// type other than file, directory, symlink, hard link and a whiteout in part/cow or
// part/overlay, a sparse entry whose map is not a well-formed one (sparse-tar.ts), and sizes
// beyond the limit (the
// caller's, at most the free space of the staging folder's filesystem) or beyond what the
// manifest declares. A refused archive leaves nothing: the caller removes the staging folder.

import {
  closeSync,
  constants,
  createReadStream,
  createWriteStream,
  fchmodSync,
  fchownSync,
  ftruncateSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readlinkSync,
  readSync,
  renameSync,
  rmSync,
  type Stats,
  statfsSync,
  symlinkSync,
  utimesSync,
} from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createZstdCompress, createZstdDecompress } from 'node:zlib';
import { Header, Parser, type ReadEntry } from 'tar';
import { JailyardError, printableValue } from '../errors.ts';
import { openSame, PinnedDir } from '../skeleton/pinned.ts';
import { type DataRegion, dataRegions } from '../platform/linux/sparse.ts';
import { isWhiteout, makeWhiteout } from '../platform/linux/whiteout.ts';
import {
  encodeSparseMap,
  MAX_SPARSE_REGIONS,
  PaxWith,
  SPARSE_MIN,
  type SparseInfo,
  SparseSink,
  sparseHeader,
  sparseOfPax,
  sparseStored,
} from './sparse-tar.ts';
import { writeSkippingZeros } from './tree.ts';

/** The manifest's entry name (the archive's first entry). */
export const MANIFEST_ENTRY = 'jailyard-export.json';
/** A manifest larger than this is not ours. */
const MAX_MANIFEST = 4 << 20;
/** Space left free on the staging folder's filesystem by an import. */
const RESERVE = 64 << 20;

export interface ArchiveSource {
  /** The entries' prefix in the archive (`part/root`, `skeleton`). */
  prefix: string;
  /** The tree (or single file) on this host. */
  path: string;
  /** Leaves an entry (and its subtree) out; rel is relative to `path`. */
  skip?: (rel: string) => boolean;
}

export interface WriteResult {
  entries: number;
  bytes: number;
  /** What was left out and why. */
  notes: string[];
}

const BLOCK = 512;
/** The longest entry name written (Linux's PATH_MAX). */
const MAX_NAME = 4096;
const ZEROS = Buffer.alloc(BLOCK * 2);

function headerBlocks(
  h: {
    path: string;
    type: 'File' | 'Directory' | 'SymbolicLink' | 'CharacterDevice';
    mode: number;
    uid: number;
    gid: number;
    size: number;
    mtime: Date;
    linkpath?: string;
  },
  records?: Record<string, string>,
): Buffer[] {
  const header = new Header({ ...h, uname: '', gname: '' });
  const out: Buffer[] = [];
  // a path or link too long for ustar (or an id too large) goes into a pax header before it,
  // and so do a sparse entry's GNU.sparse.* records
  if (header.encode() || records) {
    out.push(
      new PaxWith(
        {
          path: h.path,
          ...(h.linkpath !== undefined ? { linkpath: h.linkpath } : {}),
          size: h.size,
          uid: h.uid,
          gid: h.gid,
          mtime: h.mtime,
        },
        records ?? {},
      ).encode(),
    );
  }
  out.push(header.block as Buffer);
  return out;
}

/**
 * The data regions to store of the open file `fd` (lstat `st`), or undefined to store it
 * whole: a file with no holes, a small one, or one whose regions and map would not be
 * smaller than the file.
 */
function sparseRegions(fd: number, st: Stats): DataRegion[] | undefined {
  if (st.blocks * 512 >= st.size || st.size < SPARSE_MIN) return undefined;
  const regions = dataRegions(fd, st.size, MAX_SPARSE_REGIONS);
  return sparseStored(regions, st.size) < st.size ? regions : undefined;
}

/**
 * `length` bytes of `fd` from `offset`, read into `buf` (reused: a piece is valid until the
 * next is asked for); exactly that many whatever happens to the file meanwhile: a file that
 * shrank is padded with zeros, with a note.
 */
function* readRange(fd: number, offset: number, length: number, buf: Buffer, onShort: () => void): Generator<Buffer> {
  let pos = offset;
  let left = length;
  while (left > 0) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, left), pos);
    if (n === 0) {
      onShort();
      yield Buffer.alloc(left);
      return;
    }
    pos += n;
    left -= n;
    yield buf.subarray(0, n);
  }
}

function pad(size: number): Buffer {
  const r = size % BLOCK;
  return r === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - r);
}

/** The tar stream's blocks: the manifest, then every source's entries. */
async function* tarBlocks(manifest: Buffer, sources: ArchiveSource[], result: WriteResult): AsyncGenerator<Buffer> {
  const now = new Date();
  yield* headerBlocks({
    path: MANIFEST_ENTRY,
    type: 'File',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: manifest.length,
    mtime: now,
  });
  yield manifest;
  yield pad(manifest.length);
  const buf = Buffer.allocUnsafe(1 << 20);
  // The walk holds each directory open until its entries are done and reaches them through
  // it (skeleton/pinned.ts), as copyExact does: the tree may be written meanwhile (a
  // jail sharing it), and a directory swapped for a link to a host folder must lead nowhere.
  // A file is opened (O_NONBLOCK: a FIFO swapped in never blocks) and checked to be the inode
  // lstat saw before its header is written.
  interface Held {
    dir: PinnedDir;
    left: number;
  }
  interface Item {
    path: string;
    rel: string;
    parent?: Held;
  }
  const open = new Set<PinnedDir>();
  const done = (it: Item): void => {
    if (it.parent && --it.parent.left === 0) {
      it.parent.dir.close();
      open.delete(it.parent.dir);
    }
  };
  try {
    for (const src of sources) {
      const skip = src.skip ?? (() => false);
      const stack: Item[] = [{ path: src.path, rel: '' }];
      while (stack.length) {
        const it = stack.pop()!;
        const { path, rel } = it;
        const name = rel ? `${src.prefix}/${rel}` : src.prefix;
        const raced = (): void => void result.notes.push(`${printableValue(name)}: changed while read, left out`);
        if (Buffer.byteLength(name) >= MAX_NAME) {
          // deeper than a path can reach (PATH_MAX): no import could write it, and a tree
          // made ever deeper would make each header longer (the export's time squared)
          result.notes.push(`${printableValue(name.slice(0, 200))}...: a path longer than ${MAX_NAME} bytes, left out`);
          done(it);
          continue;
        }
        let st: Stats;
        try {
          st = lstatSync(path);
        } catch {
          raced();
          done(it);
          continue;
        }
        const meta = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
        if (st.isDirectory()) {
          const dir = PinnedDir.open(path, st);
          if (!dir) {
            raced();
            done(it);
            continue;
          }
          open.add(dir);
          yield* headerBlocks({ path: `${name}/`, type: 'Directory', size: 0, ...meta });
          result.entries++;
          // a name that is not UTF-8 cannot be written in the archive's headers (strings):
          // left out, noted (read as a string it would name nothing, or another entry)
          const names: string[] = [];
          for (const raw of dir.rawNames()) {
            const child = raw.toString();
            if (!isUtf8(raw))
              result.notes.push(`${printableValue(`${name}/${child}`)}: a name that is not UTF-8, left out`);
            else if (!skip(rel ? `${rel}/${child}` : child)) names.push(child);
          }
          names.sort();
          if (names.length === 0) {
            dir.close();
            open.delete(dir);
          } else {
            const held: Held = { dir, left: names.length };
            // pushed in reverse so the archive lists a folder's entries in name order
            for (const child of names.reverse())
              stack.push({ path: dir.entry(child), rel: rel ? `${rel}/${child}` : child, parent: held });
          }
        } else if (st.isSymbolicLink()) {
          let linkpath: string;
          try {
            linkpath = readlinkSync(path);
          } catch {
            // no longer a link (EINVAL): what is there now was not looked at
            raced();
            done(it);
            continue;
          }
          yield* headerBlocks({ path: name, type: 'SymbolicLink', size: 0, linkpath, ...meta });
          result.entries++;
        } else if (st.isFile()) {
          // the inode lstat saw, never a link, a FIFO or a device swapped in for it
          const fd = openSame(path, st, constants.O_RDONLY | constants.O_NONBLOCK);
          if (fd === undefined) {
            raced();
            done(it);
            continue;
          }
          try {
            // exactly the size the header says, whatever happens to the file meanwhile
            let shrank = false;
            const onShort = (): void => {
              if (!shrank) result.notes.push(`${printableValue(name)}: shrank while it was read; padded with zeros`);
              shrank = true;
            };
            const regions = sparseRegions(fd, st);
            if (regions) {
              // the data regions only (the holes are neither read nor stored)
              const sparse = sparseHeader(name, st.size);
              const map = encodeSparseMap(regions, st.size);
              const stored = sparseStored(regions, st.size);
              yield* headerBlocks({ path: sparse.path, type: 'File', size: stored, ...meta }, sparse.records);
              yield map;
              for (const r of regions) yield* readRange(fd, r.offset, r.length, buf, onShort);
              yield pad(stored);
            } else {
              yield* headerBlocks({ path: name, type: 'File', size: st.size, ...meta });
              yield* readRange(fd, 0, st.size, buf, onShort);
              yield pad(st.size);
            }
          } finally {
            closeSync(fd);
          }
          result.entries++;
          result.bytes += st.size;
        } else if (isWhiteout(st)) {
          // an overlay whiteout (a file deleted from a copy-on-write layer): kept
          yield* headerBlocks({ path: name, type: 'CharacterDevice', size: 0, ...meta });
          result.entries++;
        } else {
          const what = st.isCharacterDevice()
            ? 'a character device'
            : st.isBlockDevice()
              ? 'a block device'
              : st.isFIFO()
                ? 'a FIFO'
                : st.isSocket()
                  ? 'a socket'
                  : 'an entry of an unknown type';
          result.notes.push(`${printableValue(name)}: ${what}, left out`);
        }
        done(it);
      }
    }
  } finally {
    for (const d of open) d.close();
  }
  yield ZEROS;
}

/**
 * The pieces (headers, pads, file data) gathered into chunks of about 1 MiB: one write into
 * zstd per MiB instead of one per header (measured: 50 MB and 2,000 small files packed in
 * 1.5 s piece by piece, 0.9-1.1 s in chunks, of which zstd alone takes ~0.5 s). Pieces are
 * copied here, so a reader may reuse its buffer for the next piece.
 */
async function* coalesce(pieces: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  const CHUNK = 1 << 20;
  let out = Buffer.allocUnsafe(CHUNK);
  let used = 0;
  for await (const p of pieces) {
    let off = 0;
    while (off < p.length) {
      const n = Math.min(p.length - off, CHUNK - used);
      p.copy(out, used, off, off + n);
      used += n;
      off += n;
      if (used === CHUNK) {
        yield out;
        out = Buffer.allocUnsafe(CHUNK);
        used = 0;
      }
    }
  }
  if (used) yield out.subarray(0, used);
}

/** The archive as a stream (tar blocks through zstd); `result` fills as it is read. */
export function packArchive(manifest: object, sources: ArchiveSource[]): { stream: Readable; result: WriteResult } {
  const result: WriteResult = { entries: 0, bytes: 0, notes: [] };
  const blocks = Readable.from(
    coalesce(tarBlocks(Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), sources, result)),
  );
  const zstd = createZstdCompress();
  blocks.on('error', (e) => zstd.destroy(e));
  return { stream: blocks.pipe(zstd), result };
}

/**
 * Writes the archive to `file` (through a temp file in the same folder, renamed at the end:
 * a failed export leaves no file).
 */
export async function writeArchive(file: string, manifest: object, sources: ArchiveSource[]): Promise<WriteResult> {
  const tmp = `${file}.tmp-${process.pid}`;
  const { stream, result } = packArchive(manifest, sources);
  try {
    await pipeline(stream, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return result;
}

export interface ReadLimits {
  /** The most file bytes the archive may hold (default: the staging filesystem's free
   * space, less a reserve). */
  maxBytes?: number;
  /** The most entries. */
  maxEntries?: number;
  /** Checks the manifest as soon as it is read (before any other entry is written); returns
   * the declared totals the rest must not exceed. */
  onManifest(manifest: unknown): { bytes: number; entries: number };
}

export interface ReadResult {
  manifest: unknown;
  entries: number;
  /** The files' sizes (as export's WriteResult counts them; a sparse file's holes too). */
  bytes: number;
}

const refuse = (file: string, why: string): JailyardError =>
  new JailyardError('JY_ERR_ARCHIVE', `${file}: refused: ${why}; nothing was imported`);

/**
 * Entries that are jailyard's own structure, not the jail's content: the top of each part
 * and of the skeleton, a copy-on-write dir's folder and its upper/work (cow/<dir>/{upper,work}),
 * the overlay's upper, work and ro layers (overlay/{upper,work,ro/<dir>/{upper,work}}). The
 * mounts use them as they are: a link there would point a mount at the host's tree.
 */
function structural(comps: string[]): boolean {
  if (comps[0] === 'skeleton') return comps.length === 1;
  const r = comps.slice(2);
  if (r.length === 0) return true;
  if (comps[1] === 'cow') return r.length <= 2;
  if (comps[1] === 'overlay') return r[0] === 'ro' ? r.length <= 3 : r.length <= 1;
  return false;
}

/** The part an entry belongs to: `part/<name>` or `skeleton`. */
function partOf(path: string): string {
  const parts = path.split('/');
  return parts[0] === 'skeleton' ? 'skeleton' : `${parts[0]}/${parts[1]}`;
}

/**
 * Reads an archive into `staging` (an empty folder this process made), checking every
 * entry first (see the head of this file). Owners, modes and times are set as recorded;
 * directories' last, deepest first.
 */
export async function readArchive(
  file: string,
  staging: string,
  parts: readonly string[],
  limits: ReadLimits,
): Promise<ReadResult> {
  const free = (() => {
    const s = statfsSync(staging);
    return Math.max(0, s.bavail * s.bsize - RESERVE);
  })();
  const maxBytes = Math.min(limits.maxBytes ?? Number.MAX_SAFE_INTEGER, free);
  const maxEntries = limits.maxEntries ?? 10_000_000;
  const dirs = new Map<string, { mode: number; uid: number; gid: number; mtime?: Date }>();
  const seen = new Set<string>();
  const files = new Set<string>();
  let manifest: unknown;
  let declared: { bytes: number; entries: number } | undefined;
  /** What the entries store (a sparse file's data and map): what the limits count. */
  let bytes = 0;
  /** The files' sizes (a sparse file's whole), as export counts them. */
  let fileBytes = 0;
  let entries = 0;
  let failure: Error | undefined;

  const parser = new Parser({ strict: true, gzip: false, zstd: false, brotli: false } as never);
  const fail = (e: unknown, entry?: ReadEntry): void => {
    failure ??= e instanceof Error ? e : new Error(String(e));
    entry?.resume();
    parser.abort(failure);
  };

  const checkPath = (raw: string, type: string): string => {
    if (raw.includes('\0')) throw refuse(file, `an entry's path has a NUL byte`);
    if (raw.startsWith('/')) throw refuse(file, `entry "${raw}" has an absolute path`);
    const path = type === 'Directory' ? raw.replace(/\/+$/, '') : raw;
    const comps = path.split('/');
    if (path === '' || comps.some((c) => c === '' || c === '.' || c === '..'))
      throw refuse(file, `entry "${raw}" has an empty, "." or ".." component`);
    const top = comps[0] === 'skeleton' ? 'skeleton' : comps[0] === 'part' ? comps[1] : undefined;
    if (top === undefined || (top !== 'skeleton' && !parts.includes(top)))
      throw refuse(file, `entry "${raw}" is outside the archive's parts (part/{${parts.join(',')}}/, skeleton/)`);
    if (structural(comps) && type !== (comps[1] === 'disk.img' && comps.length === 2 ? 'File' : 'Directory'))
      throw refuse(
        file,
        `entry "${raw}" must be a ${comps[1] === 'disk.img' ? 'file' : 'directory'}: it is where jailyard mounts or copies from, never a link`,
      );
    const parent = comps.slice(0, -1).join('/');
    // the top of a part is made by its own entry, below `part` (made here)
    if (parent !== '' && parent !== 'part' && !dirs.has(parent))
      throw refuse(
        file,
        `entry "${raw}" is not below a directory the archive made first (a symlink, a file, or missing)`,
      );
    if (seen.has(path)) throw refuse(file, `entry "${raw}" is in the archive twice`);
    return path;
  };

  /** A relative link target, read from the link's folder, must stay in the link's part. */
  const checkSymlink = (path: string, target: string): void => {
    if (target === '' || target.includes('\0')) throw refuse(file, `symlink "${path}" has an empty target or a NUL`);
    if (target.startsWith('/')) return; // read inside the jail's root, never by the host
    const part = partOf(path);
    const resolved = posix.normalize(posix.join(posix.dirname(path), target));
    if (resolved !== part && !resolved.startsWith(`${part}/`))
      throw refuse(file, `symlink "${path}" -> "${target}" climbs out of ${part}`);
  };

  // a pax header's GNU.sparse.* records (node-tar's parser drops them; it emits the header's
  // text as 'meta' just before the entry it belongs to)
  let paxSparse: SparseInfo | string | undefined;
  parser.on('meta', (text: string) => {
    paxSparse = sparseOfPax(text);
  });

  const onEntry = (entry: ReadEntry): void => {
    const sparse = paxSparse;
    paxSparse = undefined;
    if (failure) {
      entry.resume();
      return;
    }
    try {
      const type = entry.type;
      if (typeof sparse === 'string') throw refuse(file, `entry "${entry.path}" has ${sparse}`);
      if (sparse && type !== 'File' && type !== 'OldFile')
        throw refuse(file, `entry "${entry.path}" is a ${type} with a sparse file's header`);
      // a sparse entry's own name is .../GNUSparseFile.0/NAME; the file's is in its pax header
      const entryPath = sparse ? sparse.name : entry.path;
      if (manifest === undefined) {
        if (entryPath !== MANIFEST_ENTRY || sparse || type !== 'File' || entry.size > MAX_MANIFEST)
          throw refuse(file, `not a jailyard export (its first entry is not ${MANIFEST_ENTRY})`);
        const chunks: Buffer[] = [];
        entry.on('data', (c: Buffer) => chunks.push(c));
        entry.on('end', () => {
          try {
            manifest = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            fail(refuse(file, `its manifest is not JSON`));
            return;
          }
          try {
            declared = limits.onManifest(manifest);
          } catch (e) {
            fail(e);
          }
        });
        return;
      }
      if (!declared) throw refuse(file, 'its manifest was not accepted');
      const whiteout =
        type === 'CharacterDevice' &&
        entry.header.devmaj === 0 &&
        entry.header.devmin === 0 &&
        /^part\/(cow|overlay)\//.test(entryPath);
      if (!whiteout && !['File', 'OldFile', 'Directory', 'SymbolicLink', 'Link'].includes(type))
        throw refuse(
          file,
          `entry "${entryPath}" is a ${type}; a jailyard export holds files, directories, links and overlay whiteouts (0:0 devices in part/cow, part/overlay)`,
        );
      const path = checkPath(entryPath, type);
      if (++entries > Math.min(maxEntries, declared.entries))
        throw refuse(file, `more entries than its manifest declares (${declared.entries})`);
      const size = type === 'File' || type === 'OldFile' ? entry.size : 0;
      if (bytes + size > maxBytes)
        throw refuse(
          file,
          `its files need more than ${maxBytes} bytes (the limit, or the free space below ${staging} less ${RESERVE >> 20} MiB)`,
        );
      if (bytes + size > declared.bytes)
        throw refuse(file, `more file bytes than its manifest declares (${declared.bytes})`);
      bytes += size;
      fileBytes += sparse ? sparse.realSize : size;
      seen.add(path);
      const dest = join(staging, path);
      const meta = { mode: (entry.mode ?? 0o644) & 0o7777, uid: entry.uid ?? 0, gid: entry.gid ?? 0 };
      if (path.startsWith('part/') && !dirs.has('part')) {
        mkdirSync(join(staging, 'part'), { mode: 0o700 });
        dirs.set('part', { mode: 0o700, uid: 0, gid: 0 });
      }
      switch (type) {
        case 'Directory':
          mkdirSync(dest, { mode: 0o700 });
          dirs.set(path, { ...meta, ...(entry.mtime ? { mtime: entry.mtime } : {}) });
          entry.resume();
          return;
        case 'SymbolicLink':
          checkSymlink(path, entry.linkpath ?? '');
          symlinkSync(entry.linkpath as string, dest);
          lchownSync(dest, meta.uid, meta.gid);
          if (entry.mtime) lutimesSync(dest, entry.mtime, entry.mtime);
          entry.resume();
          return;
        case 'CharacterDevice':
          makeWhiteout(dest);
          lchownSync(dest, meta.uid, meta.gid);
          entry.resume();
          return;
        case 'Link': {
          const to = entry.linkpath ?? '';
          if (to.startsWith('/') || to.split('/').includes('..') || !files.has(to) || partOf(to) !== partOf(path))
            throw refuse(file, `hard link "${path}" -> "${to}" does not name a file earlier in the same part`);
          linkSync(join(staging, to), dest);
          entry.resume();
          return;
        }
        default: {
          const fd = openSync(
            dest,
            constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
            0o600,
          );
          files.add(path);
          let closed = false;
          const close = (): void => {
            if (!closed) closeSync(fd);
            closed = true;
          };
          // zero blocks are not written (a hole stored as zeros stays a hole), nor are a sparse
          // entry's holes; the size is set at the end
          let written = 0;
          const sink = sparse
            ? new SparseSink(entry.size, sparse.realSize, (b, pos) => writeSkippingZeros(fd, b, pos))
            : undefined;
          const asRefusal = (e: unknown): unknown =>
            sink && !(e as NodeJS.ErrnoException).code && !(e instanceof JailyardError)
              ? refuse(file, `sparse entry "${path}": ${(e as Error).message}`)
              : e;
          entry.on('data', (c: Buffer) => {
            if (failure) return;
            try {
              if (sink) sink.write(c);
              else writeSkippingZeros(fd, c, written);
              written += c.length;
            } catch (e) {
              close();
              fail(asRefusal(e));
            }
          });
          entry.on('end', () => {
            if (closed) return;
            try {
              if (sink) sink.end();
              ftruncateSync(fd, sparse ? sparse.realSize : written);
              fchownSync(fd, meta.uid, meta.gid);
              fchmodSync(fd, meta.mode);
              if (entry.mtime) futimesSync(fd, entry.mtime, entry.mtime);
            } catch (e) {
              fail(asRefusal(e));
            } finally {
              close();
            }
          });
        }
      }
    } catch (e) {
      fail(e, entry);
    }
  };
  parser.on('entry', onEntry);
  // strict: a damaged header, a bad checksum or a truncated archive is an 'error'; so is the
  // abort that fail() makes (its error is then the failure already kept)
  parser.on('error', (e: Error) => {
    failure ??= refuse(file, `damaged tar stream (${e.message})`);
  });
  const ended = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('abort', reject);
    parser.on('error', reject);
  });
  ended.catch(() => {});

  let first = true;
  const input = createReadStream(file);
  const source = input.pipe(createZstdDecompress());
  input.on('error', (e) => source.destroy(e));
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      if (failure) break;
      if (first) {
        first = false;
        // a compressed stream inside: tar's own sniffing would decompress it again
        if (chunk.length >= 4 && ((chunk[0] === 0x1f && chunk[1] === 0x8b) || chunk.readUInt32LE(0) === 0xfd2fb528))
          throw refuse(file, 'not a jailyard export (compressed twice)');
      }
      if (!parser.write(chunk))
        await Promise.race([new Promise<void>((r) => parser.once('drain', () => r())), ended.catch(() => {})]);
    }
    if (!failure) {
      parser.end();
      await ended;
    }
  } catch (e) {
    if (e instanceof JailyardError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? '';
    failure ??=
      code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR'
        ? new JailyardError('JY_ERR_USAGE', `cannot read ${file}: ${(e as Error).message}`)
        : refuse(file, `not a zstd-compressed jailyard export, or damaged (${(e as Error).message})`);
  } finally {
    source.destroy();
    input.destroy();
  }
  if (failure) throw failure;
  if (manifest === undefined) throw refuse(file, 'not a jailyard export (empty)');
  if (!declared) throw refuse(file, 'its manifest was not accepted');
  // directories last, deepest first, so a read-only one could still be filled
  for (const [path, d] of [...dirs].sort((a, b) => b[0].length - a[0].length)) {
    const p = join(staging, path);
    const fd = openSync(p, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      fchownSync(fd, d.uid, d.gid);
      fchmodSync(fd, d.mode);
    } finally {
      closeSync(fd);
    }
    if (d.mtime) utimesSync(p, d.mtime, d.mtime);
  }
  return { manifest, entries, bytes: fileBytes };
}

/** Whether `p` exists (lstat: a dangling link exists). */
export function exists(p: string): boolean {
  return lstatSync(p, { throwIfNoEntry: false }) !== undefined;
}
