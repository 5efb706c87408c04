// Making and removing entries in a tree that its owner changes meanwhile: a nested jail's root
// is its running parent's folder. A path below the tree's root is walked one part at a time,
// each directory opened without following a link and held open, and the last part is made or
// removed through its directory's descriptor (/proc/self/fd/N/NAME, as pinned.ts does). A
// symlink or a moved directory the owner swaps in between a look and a write then fails the
// step or stays inside the tree: it never leads host root out of it (red-team run of
// 2026-12-04: a parent jail's symlink race sent host root's mkdir and file creation for its
// child's start into a host folder). Paths outside the tree (jailyard's state folder) are
// the host's own and are used as they are.

import {
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  openSync,
  readlinkSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { posix } from 'node:path';
import { JailyardError } from '../../errors.ts';
import { mkdirTracked } from './paths.ts';
import { fdPath, pinnedEntry } from '../../skeleton/pinned.ts';

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

export interface TreeOps {
  /** Makes `dir` and any missing parent; the ones made, outermost first. */
  mkdirp(dir: string): string[];
  /** Makes the empty file `file` unless something is there; whether it made it. */
  touch(file: string): boolean;
  /** Whether anything (a link too) is at `p`. */
  exists(p: string): boolean;
  /** Makes the symlink `p` -> `target` unless one to `target` is there; whether it made it. */
  symlink(target: string, p: string): boolean;
  /** Removes `p` when it is a directory (if empty), an empty file, or (`links`) a link or
   * any file: what a failed or finished step made. Never throws. */
  remove(p: string, links: boolean): void;
}

/** The tree ops for paths as `fs` maps them, everything below `root` reached without a link. */
export function treeBeneath(root: string, fs: (p: string) => string): TreeOps {
  const top = posix.normalize(root).replace(/\/+$/, '');
  const below = (p: string): string[] | undefined => {
    const n = posix.normalize(p);
    if (n === top) return [];
    return n.startsWith(`${top}/`)
      ? n
          .slice(top.length + 1)
          .split('/')
          .filter(Boolean)
      : undefined;
  };
  const outside = plain(fs);
  const refused = (p: string, why: string) =>
    new JailyardError('JY_ERR_PATH', `${p} in the jail's tree ${why} (changed while it was prepared?)`, {
      step: 'mount',
    });

  /** Runs `use` with the directory holding the last part of `parts` open; `made` collects
   * the directories made on the way when `create`. */
  const inDir = <T>(parts: string[], create: boolean, made: string[], use: (entry: string) => T): T => {
    let fd = openSync(fs(top), DIR_FLAGS);
    try {
      let at = top;
      for (const part of parts.slice(0, -1)) {
        at = `${at}/${part}`;
        const entry = pinnedEntry(fd, part);
        let next: number;
        try {
          next = openSync(entry, DIR_FLAGS);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== 'ENOENT' || !create) throw code === 'ENOENT' ? e : refused(at, 'is not a directory');
          mkdirSync(entry);
          made.push(at);
          next = openSync(entry, DIR_FLAGS);
        }
        closeSync(fd);
        fd = next;
      }
      return use(pinnedEntry(fd, parts[parts.length - 1]!));
    } finally {
      closeSync(fd);
    }
  };

  return {
    mkdirp(dir) {
      const parts = below(dir);
      if (!parts) return outside.mkdirp(dir);
      if (!parts.length) return [];
      const made: string[] = [];
      inDir([...parts, '.'], true, made, () => undefined);
      return made;
    },
    touch(file) {
      const parts = below(file);
      if (!parts?.length) return outside.touch(file);
      return inDir(parts, false, [], (entry) => {
        try {
          closeSync(
            openSync(entry, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644),
          );
          return true;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
          throw e;
        }
      });
    },
    exists(p) {
      const parts = below(p);
      if (!parts?.length) return outside.exists(p);
      try {
        return inDir(parts, false, [], (entry) => lstatSync(entry, { throwIfNoEntry: false }) !== undefined);
      } catch {
        return false;
      }
    },
    symlink(target, p) {
      const parts = below(p);
      if (!parts?.length) return outside.symlink(target, p);
      return inDir(parts, false, [], (entry) => makeLink(target, entry));
    },
    remove(p, links) {
      const parts = below(p);
      if (!parts?.length) return outside.remove(p, links);
      try {
        inDir(parts, false, [], (entry) => removeEntry(entry, links));
      } catch {
        // gone, or a part of the way is no directory of the tree any more: left as it is
      }
    },
  };
}

/**
 * The file `rel` below the directory `root` (e.g. /proc/PID/root: a running jail's tree, as
 * host root reaches it), opened with `flags`, its symlinks resolved as the jail sees them:
 * inside `root`, never above it (openat2's RESOLVE_IN_ROOT, which node does not have). Each
 * directory on the way is held open and the next part looked up through it; a part that
 * became a link since it was looked at fails the open (O_NOFOLLOW) instead of being
 * followed. Through /proc/PID/root the kernel would resolve an absolute link the jail made
 * against the host's root (a host file read for the jail's /etc/passwd).
 */
export function openInRoot(root: string, rel: string, flags: number): number {
  const rootFd = openSync(root, DIR_FLAGS & ~constants.O_NOFOLLOW);
  const held: number[] = [];
  const here = (): number => held[held.length - 1] ?? rootFd;
  let parts = rel.split('/').filter(Boolean);
  let links = 0;
  try {
    while (parts.length) {
      const part = parts.shift()!;
      if (part === '.') continue;
      if (part === '..') {
        const up = held.pop();
        if (up !== undefined) closeSync(up);
        continue;
      }
      const at = pinnedEntry(here(), part);
      if (lstatSync(at, { throwIfNoEntry: false })?.isSymbolicLink()) {
        if (++links > 40) throw Object.assign(new Error(`too many links in ${rel}`), { code: 'ELOOP' });
        const target = readlinkSync(at);
        if (target.startsWith('/')) while (held.length) closeSync(held.pop()!);
        parts = [...target.split('/').filter(Boolean), ...parts];
        continue;
      }
      if (!parts.length) return openSync(at, flags | constants.O_NOFOLLOW);
      held.push(openSync(at, DIR_FLAGS));
    }
    return openSync(fdPath(here()), flags);
  } finally {
    for (const fd of held) closeSync(fd);
    closeSync(rootFd);
  }
}

/** The tree ops by path (the host's own folders, a tree nobody else writes meanwhile). */
export function plain(fs: (p: string) => string = (p) => p): TreeOps {
  return {
    mkdirp: (dir) => mkdirTracked(dir, fs),
    touch(file) {
      if (lstatSync(fs(file), { throwIfNoEntry: false })) return false;
      closeSync(openSync(fs(file), 'wx', 0o644));
      return true;
    },
    exists: (p) => lstatSync(fs(p), { throwIfNoEntry: false }) !== undefined,
    symlink: (target, p) => makeLink(target, fs(p)),
    remove(p, links) {
      try {
        removeEntry(fs(p), links);
      } catch {
        // already gone, or not empty because the jail wrote there
      }
    },
  };
}

/** The link `at` -> `target`; false when it is there already (a restart finds the links of
 * the first start in the jail's own tree); anything else there is an error. */
function makeLink(target: string, at: string): boolean {
  try {
    symlinkSync(target, at);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST' && lstatSync(at).isSymbolicLink() && readlinkSync(at) === target)
      return false;
    throw e;
  }
}

function removeEntry(at: string, links: boolean): void {
  const st = lstatSync(at, { throwIfNoEntry: false });
  if (!st) return;
  if (st.isDirectory()) rmdirSync(at);
  else if ((st.isFile() && st.size === 0) || (links && (st.isSymbolicLink() || st.isFile()))) unlinkSync(at);
}
