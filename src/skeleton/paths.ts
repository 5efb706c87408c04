// Paths inside a jail's tree, seen from the host. A jail's root may hold symlinks the jail
// made (or a previous tenant planted): every host-side operation on that tree resolves
// paths component by component under the root, the way the kernel would inside the jail
// (absolute link targets are relative to the root), and refuses to climb out of it.

import { closeSync, constants, lstatSync, openSync, readlinkSync, mkdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { JailyardError, type ErrorPlace } from '../errors.ts';
import { pinnedEntry } from './pinned.ts';

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** Linux's MAXSYMLINKS: more hops than this is a loop. */
const MAX_SYMLINK_HOPS = 40;

/** The components of a relative path; `.` and empty parts dropped. */
export function splitRel(rel: string): string[] {
  return rel.split('/').filter((p) => p !== '' && p !== '.');
}

/**
 * Checks one entry of a directory list (romounts, rwmounts, writable): relative, no `..`,
 * not empty. Returns it normalized (no leading `./`, no trailing or doubled `/`).
 */
export function checkListEntry(entry: string, place: ErrorPlace): string {
  const why =
    typeof entry !== 'string' || entry.trim() === ''
      ? 'is empty'
      : entry.startsWith('/')
        ? 'is absolute (entries are relative to the jail root)'
        : entry.split('/').includes('..')
          ? 'contains ".." (entries must stay inside the jail root)'
          : /[\0\n]/.test(entry)
            ? 'contains a NUL or newline'
            : undefined;
  if (why) throw new JailyardError('JY_ERR_PATH', `list entry "${String(entry)}" ${why}`, place);
  const norm = splitRel(entry).join('/');
  if (norm === '') throw new JailyardError('JY_ERR_PATH', `list entry "${entry}" names the jail root itself`, place);
  return norm;
}

function lstatOrUndefined(p: string): Stats | undefined {
  // ENOENT without an exception (one per missing entry was costly when seeding many jails)
  return lstatSync(p, { throwIfNoEntry: false });
}

export interface ResolveOptions {
  /** Follow a symlink in the last component too (default true). */
  followLast?: boolean;
  /** For error places. */
  jail?: string;
}

/**
 * The host path that `rel` names inside the jail rooted at `root`, following symlinks
 * within the tree (absolute targets taken relative to `root`). Throws JY_ERR_PATH when the
 * path or a link climbs above the root, a middle component is not a directory, or links
 * loop. Components after the first missing one are taken literally.
 */
export function resolveInRoot(root: string, rel: string, opts: ResolveOptions = {}): string {
  const followLast = opts.followLast ?? true;
  const place: ErrorPlace = opts.jail ? { jail: opts.jail } : {};
  const queue = splitRel(rel);
  const done: string[] = [];
  let hops = 0;
  let missing = false;
  while (queue.length > 0) {
    const part = queue.shift()!;
    if (part === '..') {
      if (done.length === 0)
        throw new JailyardError('JY_ERR_PATH', `"${rel}" climbs above the jail root ${root}`, place);
      done.pop();
      continue;
    }
    if (missing) {
      done.push(part);
      continue;
    }
    const here = join(root, ...done, part);
    const st = lstatOrUndefined(here);
    if (!st) {
      missing = true;
      done.push(part);
      continue;
    }
    if (st.isSymbolicLink() && (queue.length > 0 || followLast)) {
      if (++hops > MAX_SYMLINK_HOPS)
        throw new JailyardError('JY_ERR_PATH', `too many symlinks resolving "${rel}" under ${root}`, place);
      const target = readlinkSync(here);
      if (target.startsWith('/')) done.length = 0;
      queue.unshift(...splitRel(target));
      continue;
    }
    if (queue.length > 0 && !st.isDirectory()) {
      throw new JailyardError(
        'JY_ERR_PATH',
        `"${join(...done, part)}" is not a directory while resolving "${rel}" under ${root}`,
        place,
      );
    }
    done.push(part);
  }
  return join(root, ...done);
}

/**
 * The directory `rel` under `root`, opened (O_DIRECTORY) and returned as a descriptor: each
 * component opened through the one before it (/proc/self/fd/N/NAME) without following a link,
 * so a directory the jail's tree swaps for a symlink meanwhile fails the walk instead of
 * leading out of the root; missing components are made (`modeOf(prefix)`, and `made` gets
 * their relative paths) unless `modeOf` is null. The caller closes the descriptor and acts
 * on entries through pinnedEntry(fd, name): never by a path from `root` again.
 */
export function openDirInRoot(
  root: string,
  rel: string,
  modeOf: ((prefix: string) => number) | null = () => 0o755,
  jail?: string,
  made?: string[],
): number {
  const parts = splitRel(rel);
  // the root is the host's choice (a jail's `path` may be reached through a link of the host's)
  let fd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const prefix = parts.slice(0, i + 1).join('/');
      if (part === '..') throw new JailyardError('JY_ERR_PATH', `"${rel}" contains ".."`, jail ? { jail } : {});
      const entry = pinnedEntry(fd, part);
      let next: number;
      try {
        next = openSync(entry, DIR_FLAGS);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' && modeOf) {
          mkdirSync(entry, { mode: modeOf(prefix) });
          made?.push(prefix);
          next = openSync(entry, DIR_FLAGS);
        } else if (code === 'ELOOP' || code === 'ENOTDIR') {
          const st = lstatOrUndefined(entry);
          throw new JailyardError(
            'JY_ERR_PATH',
            `"${prefix}" under ${root} is a ${st?.isSymbolicLink() ? 'symlink' : 'non-directory'}, refusing to write through it`,
            jail ? { jail } : {},
          );
        } else throw e;
      }
      closeSync(fd);
      fd = next;
    }
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/**
 * Makes sure every component of `rel` under `root` is a real directory (not a symlink),
 * creating missing ones with `modeOf(prefix)` (default 0755), each through its parent held
 * open (openDirInRoot). Returns the host path: for a tree nobody writes meanwhile; where
 * someone may, use openDirInRoot's descriptor.
 */
export function ensureDirsInRoot(
  root: string,
  rel: string,
  modeOf: (prefix: string) => number = () => 0o755,
  jail?: string,
): string {
  closeSync(openDirInRoot(root, rel, modeOf, jail));
  return join(root, ...splitRel(rel));
}

export { lstatOrUndefined };
