// What the tools a jail runs inside itself (guest-tools.ts runTool) answer must not name the
// host's paths: the state folder (where every jail lives, as host root laid it out) and the
// /proc/PID/root views of host processes through which the driver reaches a mount namespace
// (a host pid). The driver's and the stage's messages name them (a failed mkdir below a
// child's root, "jailyard stage: ... is not a directory"). So do the paths of jailyard's
// install folder and of node itself, which name where the host keeps its programs: a
// helper that is missing ("missing .../native/build/jy-stage: run npm install"), a spawn
// that failed ("spawn .../native/build/jy-enter EACCES"), a module not found, a `file://`
// URL of a stack. A path inside the calling jail's root is shown as the jail sees it; any
// other path of the state folder or the install becomes HIDDEN_PATH, so the message keeps
// its step, parameter and reason.
import { realpathSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GUEST_TARGET, guestDir, nestedRootDir } from '../layout.ts';

/** What a host path the jail has no view of is shown as. */
export const HIDDEN_PATH = '<host path>';

export interface HostPathMap {
  /** Host path prefixes and what the jail calls them ('' for its root), longest first. */
  shown: Array<[host: string, inJail: string]>;
  /** Host folders (and files: node's program) whose paths are hidden when no prefix above
   * shows them. */
  hidden: string[];
}

/** An absolute path in a message: up to a space, a quote or the punctuation around it. */
const PATH = /\/[^\s'"`,;:()<>[\]{}]*/g;
/** A host process's view of its root (/proc/18013/root/tmp/...): the path that follows is
 * what that process sees, the pid is the host's. */
const PROC_ROOT = /\/proc\/\d+\/root(?=\/)/g;

const under = (dir: string, p: string): boolean => p === dir || p.startsWith(`${dir}/`);

/** `text` with each host path of `map` as the jail sees it, or hidden. */
export function hideHostPaths(text: string, map: HostPathMap): string {
  const shown = text.replace(PROC_ROOT, '').replace(PATH, (p) => {
    const path = posix.normalize(p);
    for (const [host, inJail] of map.shown) {
      if (under(host, path)) return inJail + path.slice(host.length) || '/';
    }
    return map.hidden.some((d) => under(d, path)) ? HIDDEN_PATH : p;
  });
  // a state folder whose name has a space or a quote in it is not one PATH match
  return map.hidden.reduce(
    (t, d) => t.replace(new RegExp(`${escaped(d)}(?=$|[/\\s'"\`,;:()<>[\\]{}])`, 'g'), HIDDEN_PATH),
    shown,
  );
}

const escaped = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export interface PathSources {
  /** The calling jail (its host name). */
  caller: string;
  /** Its descendants' host names (their roots and nest roots are below the caller's). */
  descendants: string[];
  /** A jail's root on the host (guest-tools.ts ScopeOptions.rootOf). */
  rootOf?: (name: string) => string | undefined;
  /** The state folder (hidden); without it only roots, /proc/PID/root and the install are
   * handled. */
  stateDir?: string;
}

/**
 * Where jailyard runs from: its package folder (this file is src/api/ or, built, dist/api/
 * or dist/bundle/: two levels below it; its native helpers are in native/build/), the real
 * folder of its node_modules (a link, in a worktree or a linked install), and node's own
 * program (process.execPath, and what it links to), each also as its real path.
 */
export function installPaths(): string[] {
  const real = (p: string): string | undefined => {
    try {
      return realpathSync(p);
    } catch {
      return undefined;
    }
  };
  const pkg = fileURLToPath(new URL('../..', import.meta.url)).replace(/(.)\/+$/, '$1');
  const found = [pkg, real(pkg), real(posix.join(pkg, 'node_modules')), process.execPath, real(process.execPath)];
  return [...new Set(found.filter((p): p is string => p !== undefined && p !== '/'))];
}

let install: string[] | undefined;

/**
 * The map for `caller`: its root is its `/`, its guest folder /run/jailyard; each
 * descendant's root, and the host's mount point of it while it starts (layout.ts
 * nestedRootDir), is that descendant's path in the caller's tree; the state folder and the
 * install (installPaths) are hidden.
 */
export function hostPathMap(src: PathSources): HostPathMap {
  const shown: Array<[string, string]> = [];
  const clean = (p: string): string => posix.normalize(p).replace(/(.)\/+$/, '$1');
  const callerRoot = src.rootOf?.(src.caller);
  const inCaller = (hostPath: string): string | undefined => {
    if (!callerRoot) return undefined;
    const root = clean(callerRoot);
    const p = clean(hostPath);
    if (!under(root, p)) return undefined;
    return p.slice(root.length);
  };
  if (callerRoot) shown.push([clean(callerRoot), '']);
  if (src.stateDir) {
    shown.push([clean(guestDir(src.stateDir, src.caller)), GUEST_TARGET]);
    for (const d of src.descendants) {
      const root = src.rootOf?.(d);
      const view = root === undefined ? undefined : inCaller(root);
      if (view !== undefined) shown.push([clean(nestedRootDir(src.stateDir, d)), view]);
    }
  }
  // the longest prefix first: a child's root is below its parent's
  shown.sort((a, b) => b[0].length - a[0].length);
  install ??= installPaths().map(clean);
  return { shown, hidden: [...(src.stateDir ? [clean(src.stateDir)] : []), ...install] };
}
