// Copying one entry at a time from a trusted tree (a skeleton) into a tree a jail may
// control, never following a symlink on the destination side: files are created with
// O_CREAT|O_EXCL|O_NOFOLLOW, modes and owners set through the open descriptor, symlinks
// copied as symlinks. An entry that already exists at the destination is left alone.

import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readSync,
  readlinkSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY } = constants;

export type EntryKind = 'dir' | 'file' | 'symlink' | 'other';

export function kindOf(st: Stats): EntryKind {
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  if (st.isSymbolicLink()) return 'symlink';
  return 'other';
}

/** Owner, mode (incl. setuid/sticky bits) and times of `st` onto an open descriptor. */
function applyMeta(fd: number, st: Stats): void {
  fchownSync(fd, st.uid, st.gid);
  // chown clears setuid/setgid bits: set the mode after it
  fchmodSync(fd, st.mode & 0o7777);
  futimesSync(fd, st.atime, st.mtime);
}

/**
 * Copies a regular file; the destination must not exist (not even as a symlink). A copy that
 * fails half way (a full disk) is removed: it was made here (O_EXCL), and a truncated file
 * must not pass for the source's.
 */
export function copyFileNoFollow(src: string, dest: string, st: Stats): void {
  const input = openSync(src, O_RDONLY | O_NOFOLLOW);
  try {
    const output = openSync(dest, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      const buf = Buffer.allocUnsafe(1 << 16);
      for (;;) {
        const n = readSync(input, buf, 0, buf.length, null);
        if (n === 0) break;
        let off = 0;
        while (off < n) off += writeSync(output, buf, off, n - off);
      }
      applyMeta(output, st);
    } catch (e) {
      unlinkSync(dest);
      throw e;
    } finally {
      closeSync(output);
    }
  } finally {
    closeSync(input);
  }
}

/** Writes bytes to a new file (must not exist) with the given mode/owner. */
export function writeFileNoFollow(
  dest: string,
  data: Uint8Array | string,
  meta: { mode: number; uid: number; gid: number },
): void {
  const fd = openSync(dest, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fchownSync(fd, meta.uid, meta.gid);
    fchmodSync(fd, meta.mode & 0o7777);
  } finally {
    closeSync(fd);
  }
}

/** Creates a directory (must not exist) with the owner and mode of `st`. */
export function mkdirLike(dest: string, st: Stats): void {
  mkdirSync(dest, { mode: 0o700 });
  const fd = openSync(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    applyMeta(fd, st);
  } finally {
    closeSync(fd);
  }
}

/** Copies a symlink as a symlink (its target text unchanged, never resolved). */
export function copySymlink(src: string, dest: string, st: Stats): void {
  symlinkSync(readlinkSync(src), dest);
  lchownSync(dest, st.uid, st.gid);
  lutimesSync(dest, st.atime, st.mtime);
}
