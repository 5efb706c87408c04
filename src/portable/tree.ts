// Exact copies of a jail's writable part on one host (clone, snapshots): directories, files,
// symlinks with their modes (setuid, sticky), owners and times; files through copy_file_range
// with FICLONE first, so a filesystem with reflinks (btrfs, xfs) shares the blocks and a
// copy costs no data. Symlinks are copied as symlinks, never followed; device nodes, FIFOs
// and sockets are skipped with a note (Node cannot make them; a jail's /dev is a mount).
// Overlay whiteouts (character devices 0:0: files deleted from a copy-on-write layer) are
// made again with mknod, and with `overlay` so are the directories' opaque marks (jy-xattr).
// Hard links become separate files; other extended attributes are not copied (Node has no
// API for them).
// The source may be a tree the jail (or anyone who reaches it) writes while it is copied:
// nothing here resolves a link in it, directories are read through descriptors and files
// copied from the inode lstat saw, and the destination is made fresh (O_EXCL, mkdir) below a
// folder jailyard made.

import {
  closeSync,
  constants,
  copyFileSync,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  symlinkSync,
  utimesSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { isWhiteout, makeWhiteout, markOpaque, opaqueDirs } from '../platform/linux/whiteout.ts';
import { openSame, PinnedDir, reach } from '../platform/linux/pinned.ts';

export interface CopyStats {
  entries: number;
  /** File bytes copied (or cloned). */
  bytes: number;
  /** What was left out and why ("etc/x: a character device, skipped"). */
  notes: string[];
}

const { O_RDONLY, O_NOFOLLOW, O_DIRECTORY } = constants;

function kindNote(st: Stats): string {
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'an entry of an unknown type';
}

/** Owner, mode and times onto a path jailyard just made (a file or directory). */
function applyMeta(path: string, st: Stats, dir: boolean): void {
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
  const dirTimes: [string, Stats][] = [];
  // `from` reaches the entry through its directory's descriptor (platform/linux/pinned.ts):
  // whoever writes the source meanwhile cannot swap a directory above it for a link
  const raced = (rel: string): void => void stats.notes.push(`${rel || '.'}: changed while copied, skipped`);
  const walk = (from: string, to: string, rel: string): void => {
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
        for (const name of dir.names().sort()) {
          const r = rel ? `${rel}/${name}` : name;
          if (!skip(r)) walk(dir.entry(name), join(to, name), r);
        }
      } finally {
        dir.close();
      }
      applyMeta(to, st, true);
      dirTimes.push([to, st]);
    } else if (st.isFile()) {
      // reflink when the filesystem has them, a plain copy otherwise; from the inode lstat
      // saw, opened without following a link (a file swapped for a link to a host file
      // meanwhile is not copied: host root would read the host's file, not the jail's)
      const fd = openSame(from, st, constants.O_RDONLY | constants.O_NONBLOCK);
      if (fd === undefined) {
        raced(rel);
        return;
      }
      try {
        copyFileSync(reach(fd, from), to, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
      } finally {
        closeSync(fd);
      }
      applyMeta(to, st, false);
      stats.bytes += st.size;
    } else if (st.isSymbolicLink()) {
      let target: string;
      try {
        target = readlinkSync(from);
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
      makeWhiteout(to);
      lchownSync(to, st.uid, st.gid);
    } else {
      stats.notes.push(`${rel || '.'}: ${kindNote(st)}, skipped`);
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

/** Bytes and entries below `dir` (lstat, links not followed), `skip` as for copyExact. */
export function treeSize(
  dir: string,
  skip: (rel: string) => boolean = () => false,
): { entries: number; bytes: number } {
  const out = { entries: 0, bytes: 0 };
  const walk = (p: string, rel: string): void => {
    const st = lstatSync(p);
    out.entries++;
    if (st.isFile()) out.bytes += st.size;
    if (!st.isDirectory()) return;
    for (const name of readdirSync(p)) {
      const r = rel ? `${rel}/${name}` : name;
      if (!skip(r)) walk(join(p, name), r);
    }
  };
  walk(dir, '');
  return out;
}
