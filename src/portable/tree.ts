// Exact copies of a jail's writable part on one host (clone, snapshots): directories, files,
// symlinks with their modes (setuid, sticky), owners and times; files by a reflink (FICLONE:
// btrfs, xfs share the blocks, a copy costs no data), else by a bounded copy of their data:
// small files here, larger ones by native/jy-sparse (SEEK_DATA finds the data without reading
// the holes), zero blocks of a file with holes not written, never more than the size the
// walk's lstat saw (a writer may grow the file meanwhile: `truncate -s 10T` after the lstat
// must not become 10 TiB of host disk, nor hours of reading holes). checkSpace refuses
// a copy the destination's filesystem has no room for before anything is written. Symlinks
// are copied as symlinks, never followed; device nodes, FIFOs and sockets are skipped with a
// note (names escaped: notes reach the operator's terminal; Node cannot make them; a jail's
// /dev is a mount).
// Overlay whiteouts (character devices 0:0: files deleted from a copy-on-write layer) are
// made again with mknod, and with `overlay` so are the directories' opaque marks (jy-xattr).
// Hard links become separate files; other extended attributes are not copied (Node has no
// API for them).
// The source may be a tree the jail (or anyone who reaches it) writes while it is copied:
// nothing here resolves a link in it, directories are read through descriptors and files
// copied from the inode lstat saw, and the destination is made fresh (O_EXCL, mkdir) below a
// folder jailyard made.

import { spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  copyFileSync,
  fchmodSync,
  fchownSync,
  ftruncateSync,
  futimesSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readlinkSync,
  readSync,
  rmSync,
  statfsSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { JailyardError, printableValue } from '../errors.ts';
import { JY_SPARSE } from '../platform/linux/native.ts';
import { isWhiteout, makeWhiteout, markOpaque, opaqueDirs } from '../platform/linux/whiteout.ts';
import { openSame, PinnedDir, reach } from '../skeleton/pinned.ts';

export interface CopyStats {
  entries: number;
  /** File bytes copied (or cloned). */
  bytes: number;
  /** What was left out and why ("etc/x: a character device, skipped"). */
  notes: string[];
}

const SLASH = Buffer.from('/');

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY } = constants;

/** A file with holes up to this size is copied here (read whole, zero blocks skipped); a
 * larger one by cp(1), which skips its holes without reading them. */
const SMALL_SPARSE = 1 << 20;
/** The unit of holes: a block all zeros is not written. */
const BLOCK = 4096;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

/** Whether a file has holes: fewer bytes allocated than its size. (Also a file a compressing
 * filesystem stores small, or ext4 inline data: copied the sparse way, to the same content.) */
const hasHoles = (st: Stats): boolean => st.blocks * 512 < st.size;

/**
 * Writes `buf` at `pos` of `fd` (a file made empty just before, written at increasing
 * positions) but its zero blocks (aligned on the file's offsets): they stay holes. The
 * caller sets the size at the end (ftruncate).
 */
export function writeSkippingZeros(fd: number, buf: Buffer, pos: number): void {
  let off = 0;
  while (off < buf.length) {
    // the data run: from the first non-zero block to the next zero block
    let start = off;
    while (start < buf.length) {
      const end = Math.min(buf.length, start + BLOCK - ((pos + start) % BLOCK));
      if (!buf.subarray(start, end).equals(ZERO_BLOCK.subarray(0, end - start))) break;
      start = end;
    }
    let end = start;
    while (end < buf.length) {
      const next = Math.min(buf.length, end + BLOCK - ((pos + end) % BLOCK));
      if (buf.subarray(end, next).equals(ZERO_BLOCK.subarray(0, next - end))) break;
      end = next;
    }
    for (let w = start; w < end; ) w += writeSync(fd, buf, w, end - w, pos + w);
    off = end;
  }
}

let smallBuf: Buffer | undefined;

/** At most `limit` bytes of `from` (open, read from position 0) into `to` (empty); with
 * `holes`, zero blocks are not written. The copy's size is what was read. */
function copySmall(from: number, to: number, limit: number, holes: boolean): void {
  const buf = (smallBuf ??= Buffer.allocUnsafe(SMALL_SPARSE));
  let pos = 0;
  while (pos < limit) {
    const n = readSync(from, buf, 0, Math.min(buf.length, limit - pos), pos);
    if (n === 0) break;
    if (holes) writeSkippingZeros(to, buf.subarray(0, n), pos);
    else for (let w = 0; w < n; ) w += writeSync(to, buf, w, n - w, pos + w);
    pos += n;
  }
  ftruncateSync(to, pos);
}

/**
 * At most `limit` bytes of `from` into `to` (empty), holes kept, by `jy-sparse copy` (native/jy-sparse.c:
 * SEEK_DATA finds the data without reading the holes): the two descriptors are its stdin and
 * stdout. The arguments are a number; no shell.
 */
function copyLarge(from: number, to: number, limit: number, rel: string): void {
  const r = spawnSync(JY_SPARSE, ['copy', String(limit)], { stdio: [from, to, 'pipe'], encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    const why = (r.stderr || `exit ${r.status ?? r.signal}`).trim();
    const e: NodeJS.ErrnoException = new Error(`copying ${printableValue(rel)} (jy-sparse copy): ${why}`);
    if (/No space left|Disk quota exceeded/.test(why)) e.code = 'ENOSPC';
    throw e;
  }
}

/**
 * The file `fd` (opened from `from` by openSame: the inode `st`, an lstat of it) copied to
 * `to`, which must not exist. Reads the descriptor only (where there is /proc/self/fd:
 * reach()): `from` may name something else by now. Never more than `st.size` bytes of data:
 * whoever writes the source may have grown it since the lstat (ftruncate to 10 TiB, or data
 * appended as fast as it is read), and copyFileSync or cp(1) would copy the size they find
 * (copy_file_range writing the holes as data): a reflink, which shares the blocks and costs
 * nothing, or a bounded copy.
 */
export function copyOpenFile(fd: number, from: string | Buffer, st: Stats, to: string | Buffer, rel = ''): void {
  const src = reach(fd, from);
  if (st.size > 0) {
    try {
      // a reflink shares the extents, holes and all
      copyFileSync(src, to, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
      return;
    } catch {
      // no reflinks here (ext4, tmpfs, another filesystem): a bounded copy, below
      rmSync(to, { force: true });
    }
  }
  const out = openSync(to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    if (st.size <= SMALL_SPARSE) copySmall(fd, out, st.size, hasHoles(st));
    else copyLarge(fd, out, st.size, rel || '.');
  } finally {
    closeSync(out);
  }
}

function kindNote(st: Stats): string {
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'an entry of an unknown type';
}

/** Owner, mode and times onto a path jailyard just made (a file or directory). */
function applyMeta(path: string | Buffer, st: Stats, dir: boolean): void {
  const fd = openSync(path, O_RDONLY | O_NOFOLLOW | (dir ? O_DIRECTORY : 0));
  try {
    fchownSync(fd, st.uid, st.gid);
    // chown clears setuid/setgid: the mode after it
    fchmodSync(fd, st.mode & 0o7777);
    if (!dir) futimesSync(fd, st.atime, st.mtime);
  } finally {
    closeSync(fd);
  }
}

/**
 * Copies the tree at `src` to `dest` (which must not exist). `skip(rel)` leaves an entry
 * (and its subtree) out; rel is relative to `src`, "" for `src` itself. Directory times are
 * set after their content, so they match the source's.
 */
export function copyExact(
  src: string,
  dest: string,
  skip: (rel: string) => boolean = () => false,
  opts: { overlay?: boolean } = {},
): CopyStats {
  const stats: CopyStats = { entries: 0, bytes: 0, notes: [] };
  const dirTimes: [string | Buffer, Stats][] = [];
  // `from` reaches the entry through its directory's descriptor (skeleton/pinned.ts):
  // whoever writes the source meanwhile cannot swap a directory above it for a link
  const raced = (rel: string): void =>
    void stats.notes.push(`${printableValue(rel || '.')}: changed while copied, skipped`);
  // names are walked as bytes (a name that is not UTF-8 is copied as it is)
  const walk = (from: string | Buffer, to: string | Buffer, rel: string): void => {
    const st = lstatSync(from);
    stats.entries++;
    if (st.isDirectory()) {
      const dir = PinnedDir.open(from, st);
      if (!dir) {
        raced(rel);
        return;
      }
      mkdirSync(to, { mode: 0o700 });
      try {
        for (const name of dir.rawNames().sort(Buffer.compare)) {
          const text = name.toString();
          const r = rel ? `${rel}/${text}` : text;
          if (!skip(r)) walk(dir.rawEntry(name), Buffer.concat([Buffer.from(to), SLASH, name]), r);
        }
      } finally {
        dir.close();
      }
      applyMeta(to, st, true);
      dirTimes.push([to, st]);
    } else if (st.isFile()) {
      // from the inode lstat saw, opened without following a link (a file swapped for a
      // link to a host file meanwhile is not copied: host root would read the host's file,
      // not the jail's); every way of copying reads that descriptor
      const fd = openSame(from, st, constants.O_RDONLY | constants.O_NONBLOCK);
      if (fd === undefined) {
        raced(rel);
        return;
      }
      try {
        copyOpenFile(fd, from, st, to, rel);
      } finally {
        closeSync(fd);
      }
      applyMeta(to, st, false);
      stats.bytes += st.size;
    } else if (st.isSymbolicLink()) {
      let target: Buffer;
      try {
        target = readlinkSync(from, { encoding: 'buffer' });
      } catch {
        // no longer a link (EINVAL): what is there now was not looked at
        raced(rel);
        return;
      }
      symlinkSync(target, to);
      lchownSync(to, st.uid, st.gid);
      lutimesSync(to, st.atime, st.mtime);
    } else if (isWhiteout(st)) {
      // a file the jail deleted from a copy-on-write layer: it stays deleted in the copy
      if (typeof to !== 'string' && !isUtf8(to)) {
        stats.notes.push(`${printableValue(rel)}: a whiteout whose name is not UTF-8, skipped`);
        return;
      }
      makeWhiteout(to.toString());
      lchownSync(to, st.uid, st.gid);
    } else {
      stats.notes.push(`${printableValue(rel || '.')}: ${kindNote(st)}, skipped`);
    }
  };
  walk(src, dest, '');
  // an overlay layer's opaque directories (what the jail removed and made again)
  if (opts.overlay && lstatSync(src).isDirectory())
    markOpaque(
      dest,
      opaqueDirs(src).filter((r) => !skip(r)),
    );
  for (const [dir, st] of dirTimes) utimesSync(dir, st.atime, st.mtime);
  return stats;
}

/** Bytes, allocated bytes (the blocks used: holes are free) and entries below `dir` (lstat,
 * links not followed, each directory held open as copyExact does: a directory swapped for a
 * link to a host folder meanwhile is not counted, nor walked), `skip` as for copyExact. */
export function treeSize(
  dir: string,
  skip: (rel: string) => boolean = () => false,
): { entries: number; bytes: number; allocated: number } {
  const out = { entries: 0, bytes: 0, allocated: 0 };
  const walk = (p: string | Buffer, rel: string): void => {
    // the top must be there; an entry below may be gone by now
    const st = lstatSync(p, { throwIfNoEntry: rel === '' });
    if (!st) return;
    out.entries++;
    out.allocated += st.blocks * 512;
    if (st.isFile()) out.bytes += st.size;
    if (!st.isDirectory()) return;
    const d = PinnedDir.open(p, st);
    if (!d) return;
    try {
      for (const name of d.rawNames()) {
        const r = rel ? `${rel}/${name.toString()}` : name.toString();
        if (!skip(r)) walk(d.rawEntry(name), r);
      }
    } finally {
      d.close();
    }
  };
  walk(dir, '');
  return out;
}

/** Space a copy leaves free on the destination's filesystem (as an import does). */
export const COPY_RESERVE = 64 << 20;

export interface CopyJob {
  /** The tree copied (a part of a jail). */
  src: string;
  /** An existing folder on the destination's filesystem (the copy's parent). */
  destDir: string;
  skip?: (rel: string) => boolean;
}

/**
 * Refuses (JY_ERR_NO_SPACE, naming the jail) copies whose trees need more blocks or inodes
 * than the destinations' filesystems have free, less COPY_RESERVE: an operator gets "not
 * enough space" before anything is written, not a full disk. Counted as allocated (copies
 * keep holes); on a filesystem with reflinks, where a copy shares the blocks, this asks for
 * more than the copy takes.
 */
export function checkSpace(jobs: readonly CopyJob[], jail: string, verb: string): void {
  const need = new Map<number, { dir: string; bytes: number; entries: number }>();
  for (const j of jobs) {
    const dev = statSync(j.destDir).dev;
    const t = treeSize(j.src, j.skip);
    const n = need.get(dev) ?? { dir: j.destDir, bytes: 0, entries: 0 };
    n.bytes += t.allocated;
    n.entries += t.entries;
    need.set(dev, n);
  }
  for (const { dir, bytes, entries } of need.values()) {
    const fs = statfsSync(dir);
    const free = Math.max(0, fs.bavail * fs.bsize - COPY_RESERVE);
    if (bytes > free)
      throw new JailyardError(
        'JY_ERR_NO_SPACE',
        `not enough space for the ${verb}: the jail's files use ${mib(bytes)}, ${dir} has ${mib(free)} free (less ${mib(COPY_RESERVE)} kept free); nothing was copied`,
        { jail },
      );
    // a filesystem that counts inodes (btrfs reports none)
    if (fs.files > 0 && entries > fs.ffree)
      throw new JailyardError(
        'JY_ERR_NO_SPACE',
        `not enough inodes for the ${verb}: the jail has ${entries} entries, ${dir} has ${fs.ffree} free; nothing was copied`,
        { jail },
      );
  }
}

const mib = (n: number): string => `${(n / (1 << 20)).toFixed(1)} MiB`;

/** A full disk (ENOSPC, EDQUOT) met while copying, as JY_ERR_NO_SPACE naming the jail;
 * any other error as it is. */
export function noSpace(e: unknown, jail: string, verb: string): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return e;
  return new JailyardError(
    'JY_ERR_NO_SPACE',
    `no space left for the ${verb} (${code}): ${(e as Error).message}; nothing of it was kept`,
    { jail },
    { cause: e },
  );
}
