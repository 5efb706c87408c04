// Walking a tree that someone else may write while the host walks it (a jail's writable part,
// a jail root under a folder others reach): every directory is held open and its entries are
// reached through the descriptor (/proc/self/fd/N/NAME), so no directory above an entry is
// looked up again by name and a directory swapped for a symlink meanwhile leads nowhere; an
// entry acted on is opened without following a link and checked to be the inode lstat saw.
// Node has no openat(2); the /proc/self/fd magic links give its semantics. Where there is no
// /proc/self/fd (not Linux), entries are reached by their paths as before.

import { closeSync, constants, existsSync, fstatSync, openSync, readdirSync, type Stats } from 'node:fs';
import { posix } from 'node:path';

/** O_PATH (Linux): a descriptor that names an inode without opening it for I/O. */
const O_PATH = 0o10000000;

let procFd: boolean | undefined;
const haveProcFd = (): boolean => (procFd ??= process.platform === 'linux' && existsSync('/proc/self/fd'));

/** The path that reaches what descriptor `fd` holds (the inode itself, not a name). */
export function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** The path reaching entry `name` of the directory held open as `fd` (and of no other). */
export const pinnedEntry = (fd: number, name: string): string => `${fdPath(fd)}/${name}`;

/** What reaches the inode `fd` (opened from `path`) holds: fdPath where there is one. */
export function reach(fd: number, path: string | Buffer): string | Buffer {
  return haveProcFd() ? fdPath(fd) : path;
}

/** Whether `a` and `b` are one inode of one type (a number freed and given to a new entry
 * at once, as ext4 does, is another inode: a link in its place has another type). */
const same = (a: Stats, b: Stats): boolean =>
  a.ino === b.ino && a.dev === b.dev && (a.mode & constants.S_IFMT) === (b.mode & constants.S_IFMT);

/**
 * `path` opened without following a final symlink, when it is still the inode `seen` (an
 * lstat of it); undefined when it changed meanwhile or cannot be opened. `flags`: O_RDONLY
 * with O_NONBLOCK for content (a FIFO never blocks), or O_PATH (the default) to act on the
 * inode through fdPath() (chown, chmod) without opening it.
 */
export function openSame(path: string | Buffer, seen: Stats, flags = O_PATH): number | undefined {
  let fd: number;
  try {
    fd = openSync(path, flags | constants.O_NOFOLLOW | constants.O_NOCTTY);
  } catch {
    return undefined;
  }
  if (same(fstatSync(fd), seen)) return fd;
  closeSync(fd);
  return undefined;
}

/** A directory held open; its entries are reached through it. */
export class PinnedDir {
  readonly #fd: number | undefined;
  readonly #path: string | Buffer;

  private constructor(fd: number | undefined, path: string | Buffer) {
    this.#fd = fd;
    this.#path = path;
  }

  /** The directory `path` (reached as it is: a path from another PinnedDir, or a top the
   * host chose), when it is still the directory `seen`; undefined when it changed. */
  static open(path: string | Buffer, seen: Stats): PinnedDir | undefined {
    if (!haveProcFd()) return new PinnedDir(undefined, path);
    const fd = openSame(path, seen, constants.O_RDONLY | constants.O_DIRECTORY);
    return fd === undefined ? undefined : new PinnedDir(fd, path);
  }

  /** The path that reaches entry `name` of this directory and of no other. */
  entry(name: string): string {
    return this.#fd === undefined ? posix.join(this.#path.toString(), name) : `${fdPath(this.#fd)}/${name}`;
  }

  names(): string[] {
    return readdirSync(this.#fd === undefined ? this.#path : fdPath(this.#fd));
  }

  /** The entries' names as the bytes they are: a name that is not UTF-8 (`a\xffb`) read as
   * a string is `a\ufffdb`, which names nothing (or another entry). */
  rawNames(): Buffer[] {
    return readdirSync(this.#fd === undefined ? this.#path : fdPath(this.#fd), { encoding: 'buffer' });
  }

  /** The path (bytes) that reaches entry `name` of this directory and of no other. */
  rawEntry(name: Buffer): Buffer {
    return Buffer.concat([
      Buffer.from(this.#fd === undefined ? `${this.#path.toString()}/` : `${fdPath(this.#fd)}/`),
      name,
    ]);
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
  }
}
