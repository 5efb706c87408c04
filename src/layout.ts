// The state folder's layout: where jailyard keeps each jail's and each skeleton's files.
//   <state>/jails/NAME/                a jail's own folder (console log, guest folder,
//                                      writable parts, skeleton pin, disk image)
//   <state>/jails/NAME/root            a skeleton jail's root when it has no `path`
//   <state>/jails/NAME/guest           its guest folder (env file, guest socket)
//   <state>/jails/NAME/skeleton.json   the skeleton version it was seeded from
//   <state>/skeletons/NAME/            a skeleton's versions (src/skeleton/registry.ts)
// One home for these rules, below the skeleton module and the runtime, so both (and the CLI)
// name the same places and check a jail's `path` the same way.

import { rmSync } from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import { paramString, type JailSpec } from './conf/spec.ts';
import { JailyardError } from './errors.ts';

/** The state folder when neither --state nor $JAILYARD_STATE names one. */
export const DEFAULT_STATE_DIR = '/var/db/jailyard';

/** The host's folder of host-wide registries and locks (address claims, state-folder tags,
 * shared netns, moved vnet interfaces, locks). */
export const HOST_RUN_DIR = '/run/jailyard';

/** Where a jail's guest folder appears inside the jail (its env file, guest socket, tools). */
export const GUEST_TARGET = '/run/jailyard';

/** A name that becomes one folder name: never empty, ".", ".." or with a "/" or NUL. */
function folderName(name: string, what: 'jail' | 'skeleton'): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new JailyardError('JY_ERR_USAGE', `${JSON.stringify(name)} cannot name a ${what}'s folder`, {
      ...(what === 'jail' ? { jail: name } : { param: 'skeleton' }),
    });
  }
  return name;
}

/** All jails' folders; one per jail name below it. */
export function jailsDir(stateDir: string): string {
  return join(stateDir, 'jails');
}

/** jailyard's folder for one jail: console log, guest folder, writable parts. */
export function jailStateDir(stateDir: string, name: string): string {
  return join(jailsDir(stateDir), folderName(name, 'jail'));
}

/** Where a nested jail's root is mounted in the private mount namespace its start uses
 * (src/platform/linux/mounts.ts nestedRoot, given the jail's folder): host messages about a
 * child's start name paths below it (src/api/tool-paths.ts shows them as the parent sees them). */
export function nestedRootDir(stateDir: string, name: string): string {
  return join(jailStateDir(stateDir, name), NEST_ROOT);
}

/** The name of that mount point in a jail's folder. */
export const NEST_ROOT = 'nest-root';

/** The jail's guest folder (its env file and guest socket, bound at /run/jailyard). */
export function guestDir(stateDir: string, name: string): string {
  return join(jailStateDir(stateDir, name), 'guest');
}

/** The jail's console log (what its processes and its exec.* commands inside it write; it
 * rotates to console.log.1, with a time index console.log.idx: src/platform/linux/console.ts,
 * read by src/runtime/logs.ts). Host-only: the jail never sees this folder. */
export function consoleLogFile(stateDir: string, name: string): string {
  return join(jailStateDir(stateDir, name), 'console.log');
}

/** The skeleton version a jail was seeded from (src/skeleton/hooks.ts PinnedSkeleton). */
export function skeletonPinFile(stateDir: string, name: string): string {
  return join(jailStateDir(stateDir, name), 'skeleton.json');
}

/** The `exec` fast path's files in a jail's folder (its host-only state folder, never its
 * root): `live` while the jail runs (bin/jailyard.js runs jy-enter --fast on it), `next` as a
 * start writes it (src/platform/linux/exec.ts), renamed to `live` once the jail is running. */
export function enterFiles(jailDir: string): { live: string; next: string } {
  return { live: join(jailDir, 'enter'), next: join(jailDir, 'enter.next') };
}

/** Both enter files gone: from then on every exec of the jail goes through the CLI. */
export function removeEnterFiles(jailDir: string): void {
  for (const f of Object.values(enterFiles(jailDir))) rmSync(f, { force: true });
}

/** All skeletons; one folder per skeleton name below it. */
export function skeletonsDir(stateDir: string): string {
  return join(stateDir, 'skeletons');
}

/** One skeleton's folder (its versions and skeleton.json). */
export function skeletonDir(stateDir: string, name: string): string {
  return join(skeletonsDir(stateDir), folderName(name, 'skeleton'));
}

/**
 * The skeleton a top-level jail without a `path` (or with `path = /`) and without a
 * `skeleton` runs on: a reference skeleton of the host's own / that jailyard makes on first
 * use (src/skeleton/hooks.ts). jail(8) gives such a jail its parent's root; on Linux that is
 * the host's tree read-only with a private writable part and none of the host's secrets,
 * which is exactly a thin jail on a reference skeleton of / (docs/skeletons.md, "Jails
 * without a path").
 */
export const HOST_ROOT_SKELETON = 'host-root';

/** Whether a jail is nested ("a.b" lives inside "a"). */
function isNested(jail: Pick<JailSpec, 'name'>): boolean {
  return jail.name.lastIndexOf('.') > 0;
}

/** Whether the jail takes its parent's root: no `path` (or `path = /`) and no `skeleton`. */
export function takesParentRoot(jail: Pick<JailSpec, 'params'>): boolean {
  const path = paramString(jail.params, 'path');
  return !paramString(jail.params, 'skeleton') && (!path || normalize(path) === '/');
}

/**
 * The skeleton reference a jail's root is made from: its `skeleton` parameter, or for a
 * top-level jail that takes its parent's root (the host's), HOST_ROOT_SKELETON. A nested
 * one takes its parent's root as it is (no skeleton); a jail with its own `path` has none.
 */
export function skeletonOf(jail: JailSpec): string | undefined {
  const s = paramString(jail.params, 'skeleton');
  if (s) return s;
  return takesParentRoot(jail) && !isNested(jail) ? HOST_ROOT_SKELETON : undefined;
}

/**
 * The jail's root on the host: its `path`, or for a skeleton jail without one (and a
 * top-level jail without a path, on HOST_ROOT_SKELETON), state/jails/NAME/root. A nested
 * jail's `path` is read inside its parent's root (`parentRoot`, FreeBSD semantics), and a
 * nested jail without one takes its parent's root; the driver resolves it there without
 * following a symlink out.
 */
export function jailRoot(stateDir: string, jail: JailSpec, parentRoot?: string): string {
  const path = paramString(jail.params, 'path');
  if (parentRoot !== undefined && takesParentRoot(jail)) return parentRoot;
  if (path && parentRoot !== undefined) return join(parentRoot, normalize(`/${path}`));
  if (path && !takesParentRoot(jail)) {
    if (!isAbsolute(path) || path.split('/').includes('..')) {
      throw new JailyardError('JY_ERR_PATH', `path must be absolute and without "..": ${JSON.stringify(path)}`, {
        jail: jail.name,
        param: 'path',
      });
    }
    // jail(8)'s mounts are made under the jail's root on the host: with / as the root they
    // would land on the host's own tree. `path = /` without a skeleton is a thin jail on
    // HOST_ROOT_SKELETON instead (below); with a skeleton it is refused.
    if (normalize(path) === '/') {
      throw new JailyardError(
        'JY_ERR_PATH',
        "path = / with a skeleton would mount over the host's own tree; leave path unset (the root is then in the state folder)",
        { jail: jail.name, param: 'path' },
      );
    }
    return normalize(path);
  }
  if (skeletonOf(jail)) return join(jailStateDir(stateDir, jail.name), 'root');
  throw new JailyardError('JY_ERR_PARAM_VALUE', "a nested jail without a path needs its parent's root", {
    jail: jail.name,
    param: 'path',
  });
}
