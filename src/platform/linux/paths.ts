// Resolving a host path inside a jail root the way the jail would see it: every component
// is lstat'ed under the root and symlinks (absolute ones taken relative to the root) are
// followed without ever leaving it. A host-side mount must never be redirected outside the
// jail by a symlink the jail's files contain.
import { lstatSync, readlinkSync, mkdirSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { JailyardError } from '../../errors.ts';

const MAX_LINKS = 40;

/** Whether `p` is `root` or below it (string-wise, both normalised). */
export function isUnder(root: string, p: string): boolean {
  const r = posix.normalize(root).replace(/\/+$/, '');
  const n = posix.normalize(p);
  return n === r || n.startsWith(`${r}/`);
}

/**
 * The host path `target` (which must be spelled below `root`) resolves to when every symlink
 * on the way is read as the jail would read it. Components that do not exist yet are kept
 * literally (they will be created). Throws JY_ERR_PATH when `target` is not below root.
 */
export function resolveInside(
  root: string,
  target: string,
  jail?: string,
  fs: (p: string) => string = (p) => p,
): string {
  const base = posix.normalize(root).replace(/\/+$/, '') || '/';
  if (!isUnder(base, target)) {
    throw new JailyardError('JY_ERR_PATH', `mount target ${target} is not inside the jail root ${base}`, {
      ...(jail ? { jail } : {}),
      step: 'mount',
    });
  }
  const pending = posix.normalize(target).slice(base.length).split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  let missing = false;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    done.push(part);
    if (missing) continue;
    const here = posix.join(base, ...done);
    const st = lstatOrMissing(fs(here));
    if (!st) {
      missing = true; // the rest will be created: nothing further to follow
      continue;
    }
    if (!st.isSymbolicLink()) continue;
    if (++links > MAX_LINKS) {
      throw new JailyardError('JY_ERR_PATH', `too many symbolic links resolving ${target} inside ${base}`, {
        ...(jail ? { jail } : {}),
        step: 'mount',
      });
    }
    const text = readlinkSync(fs(here));
    done.pop();
    if (text.startsWith('/')) done.length = 0; // absolute links are relative to the jail root
    pending.unshift(...text.split('/').filter(Boolean));
  }
  return posix.join(base, ...done);
}

/** lstat, or undefined for a path that cannot be looked at (missing, or below a non-dir).
 * ENOENT does not throw: mount steps look up many paths that do not exist yet, and an
 * exception per miss was a tenth of the mount step's time. */
function lstatOrMissing(p: string): Stats | undefined {
  try {
    return lstatSync(p, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/** mkdir -p that returns every directory it created, outermost first (for undo). `fs` maps
 * a path to where this process reaches it (another mount namespace's view). */
export function mkdirTracked(dir: string, fs: (p: string) => string = (p) => p): string[] {
  const made: string[] = [];
  const missing: string[] = [];
  let cur = dir;
  for (;;) {
    if (lstatOrMissing(fs(cur))) break;
    missing.unshift(cur);
    const up = posix.dirname(cur);
    if (up === cur) break;
    cur = up;
  }
  for (const d of missing) {
    mkdirSync(fs(d));
    made.push(d);
  }
  return made;
}

/**
 * A short tag of the jailyard state folder a jail belongs to, from the jail's own folder
 * (<state>/jails/<name>): four hex digits, part of the names of its netns, veth and cgroups.
 */
export function stateTag(jailStateDir: string): string {
  const store = posix.dirname(posix.dirname(posix.normalize(jailStateDir)));
  // node:crypto when first needed: loading it is a fifth of an `exec`'s start-up, which never hashes
  const { createHash } = process.getBuiltinModule('node:crypto');
  return createHash('sha256').update(store).digest('hex').slice(0, 4);
}
