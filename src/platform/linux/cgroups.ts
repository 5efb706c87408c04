// Limits: one cgroup per jail. cgroup v1 (one hierarchy per controller: memory, pids, cpu)
// or v2 (one unified directory). The parent group sits below the calling process's own
// group (it may be nested, e.g. memory:/some/service) or at the hierarchy root.
// Directory and file work on cgroupfs goes through the thread pool: it takes the kernel's
// cgroup_mutex, which a concurrent move into a cgroup (another jail's start) holds while it
// waits for an RCU grace period; node's main thread must not sit in that wait.
import { existsSync, openSync, readFileSync, write } from 'node:fs';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { JailyardError } from '../../errors.ts';
import type { Limits } from '../driver.ts';
import { sleep } from './proc.ts';

const CGROOT = '/sys/fs/cgroup';
const V1_CONTROLLERS = ['memory', 'pids', 'cpu'] as const;
const CPU_PERIOD_US = 100_000;

export interface CgroupConfig {
  /** Name of the parent group, e.g. "jailyard". */
  parent: string;
  /** 'self': below the calling process's own group; 'root': at the hierarchy root. */
  base: 'self' | 'root';
}

type Layout = { version: 1; dirs: Record<(typeof V1_CONTROLLERS)[number], string> } | { version: 2; dir: string };

/** The caller's group path for a v1 controller ("memory") or v2 (""), from the lines of
 * /proc/self/cgroup (read once by the caller when it asks for several). */
function ownPath(controller: string, lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n')): string {
  for (const line of lines) {
    const [, ctrls, path] = line.split(':');
    if (ctrls === undefined || path === undefined) continue;
    if (controller === '' ? ctrls === '' : ctrls.split(',').includes(controller)) return path;
  }
  return '/';
}

/** The parent directories jailyard uses on this machine (one per v1 controller, or one). */
export function parentDirs(cfg: CgroupConfig): Layout {
  const own = cfg.base === 'self' ? readFileSync('/proc/self/cgroup', 'utf8').split('\n') : [];
  const at = (ctrlRoot: string, controller: string) =>
    `${`${ctrlRoot}${cfg.base === 'self' ? ownPath(controller, own) : '/'}`.replace(/\/+$/, '')}/${cfg.parent}`;
  if (existsSync(`${CGROOT}/memory/cgroup.procs`)) {
    return {
      version: 1,
      dirs: {
        memory: at(`${CGROOT}/memory`, 'memory'),
        pids: at(`${CGROOT}/pids`, 'pids'),
        cpu: at(`${CGROOT}/cpu`, 'cpu'),
      },
    };
  }
  if (existsSync(`${CGROOT}/cgroup.controllers`)) return { version: 2, dir: at(CGROOT, '') };
  throw new JailyardError(
    'JY_ERR_PLATFORM',
    `no usable cgroup hierarchy under ${CGROOT} (need v1 memory/pids/cpu or v2)`,
    { step: 'create' },
  );
}

/**
 * Moving a process into a cgroup (what jy-stage does first) takes the kernel's global
 * cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period when no other
 * move happened lately: ~13 ms on the test machines, most of a jail's start. This starts
 * that wait early, in the background, while the driver still prepares the start: it writes
 * this process's pid into the group it already is in (a move to where it is: nothing
 * changes). jy-stage's own move then finds the lock's slow path already open. Best effort:
 * any error is ignored.
 */
export function warmCgroupMoves(): void {
  // One write on a file opened once: a single thread-pool job that starts now, not after
  // the synchronous work that follows (open + write + close would wait for it).
  if (warmFd === undefined) {
    try {
      const file = existsSync(`${CGROOT}/pids/cgroup.procs`)
        ? `${CGROOT}/pids${ownPath('pids')}/cgroup.procs`
        : `${CGROOT}${ownPath('')}/cgroup.procs`;
      warmFd = openSync(file.replace(/\/+/g, '/'), 'w');
    } catch {
      warmFd = null;
    }
  }
  if (warmFd !== null) write(warmFd, String(process.pid), () => {});
}
let warmFd: number | null | undefined;

export function jailGroupName(jid: number, tag = ''): string {
  return tag ? `jy-${tag}-${jid}` : `jy-${jid}`;
}

async function mkdirOnce(dir: string, jail: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Another jail's destroy may just have removed the empty parent: make it again (that
      // mkdir may meet the same race: its ENOENT is one more attempt, not an error; a CI
      // run of cgroup-race.test.ts failed on it)
      if (code === 'ENOENT' && attempt < 5) {
        await mkdirParent(dir.slice(0, dir.lastIndexOf('/'))).catch((e2: NodeJS.ErrnoException) => {
          if (e2.code !== 'ENOENT') throw e2;
        });
        continue;
      }
      fail(code);
    }
  }
  function fail(code: string | undefined): never {
    const what = code === 'EEXIST' ? 'already exists (a leftover? run reconcile)' : `cannot be created (${code})`;
    throw new JailyardError('JY_ERR_PLATFORM', `cgroup ${dir} ${what}`, { jail, step: 'create' });
  }
}

/** v1 parent groups this process has made (or found) already. */
const madeParents = new Set<string>();

/**
 * jailyard's own parent group, shared by every state folder: another jail's destroy removes it
 * when it empties (removeGroups), possibly between the steps of a recursive mkdir, which then
 * fails with ENOENT. Make it again; the jail's own group is made right after (mkdirOnce, which
 * handles the same race).
 */
async function mkdirParent(dir: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(dir, { recursive: true });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw e;
    }
  }
}

/**
 * Creates the jail's groups with its limits; returns their directories. A nested jail's
 * groups go below its parent's (`under`), so the parent's limits cover the child too.
 */
export async function createGroups(
  cfg: CgroupConfig,
  jid: number,
  jail: string,
  limits: Limits,
  tag = '',
  under?: string[],
): Promise<string[]> {
  const made: string[] = [];
  try {
    // the directories the jail's groups go into: the parent jail's groups, or jailyard's own
    // parent group (one per v1 controller, or one for v2)
    let parents: string[];
    if (under) {
      parents = under;
      for (const parent of under) {
        // v2 delegates controllers level by level; a parent group holding processes may
        // refuse (no internal processes): the child's own limits then fail in applyLimits.
        if (existsSync(`${parent}/cgroup.subtree_control`)) {
          try {
            await writeFile(`${parent}/cgroup.subtree_control`, '+memory +pids +cpu');
          } catch {
            // see above
          }
        }
      }
    } else {
      const layout = parentDirs(cfg);
      parents = layout.version === 1 ? V1_CONTROLLERS.map((c) => layout.dirs[c]) : [layout.dir];
      for (const parent of parents) {
        // v1: once per process (a parent removed since, by another jail's destroy, is made
        // again by mkdirOnce); v2 delegates its controllers at every make, so it goes on each time
        if (layout.version === 1 && madeParents.has(parent)) continue;
        await mkdirParent(parent);
        if (layout.version === 1) madeParents.add(parent);
      }
      if (layout.version === 2) await enableV2Controllers(layout.dir);
    }
    for (const parent of parents) {
      const dir = `${parent}/${jailGroupName(jid, tag)}`;
      await mkdirOnce(dir, jail);
      made.push(dir);
    }
    await applyLimits(made, limits, jail);
    return made;
  } catch (e) {
    for (const d of made.reverse()) await tryRmdir(d);
    throw e;
  }
}

async function enableV2Controllers(parentDir: string): Promise<void> {
  // Each level from the hierarchy root down must delegate the controllers to its children.
  const rel = parentDir.slice(CGROOT.length).split('/').filter(Boolean);
  let dir = CGROOT;
  for (const part of ['', ...rel]) {
    if (part) dir = `${dir}/${part}`;
    try {
      await writeFile(`${dir}/cgroup.subtree_control`, '+memory +pids +cpu');
    } catch {
      // a controller may be unavailable; limits on it then fail loudly in applyLimits
    }
  }
}

async function writeLimit(file: string, value: string, jail: string, param: string): Promise<void> {
  try {
    await writeFile(file, value);
  } catch (e) {
    throw new JailyardError('JY_ERR_PLATFORM', `cannot set ${file} to ${value}: ${(e as Error).message}`, {
      jail,
      param,
      step: 'create',
    });
  }
}

/** Writes limits into the jail's groups (also used by modify). Undefined = leave as is. */
export async function applyLimits(dirs: string[], limits: Limits, jail: string): Promise<void> {
  for (const dir of dirs) {
    const v2 = !/\/(memory|pids|cpu)\//.test(`${dir.slice(CGROOT.length)}/`) || existsSync(`${dir}/cgroup.controllers`);
    if (v2) {
      if (limits.memoryBytes !== undefined)
        await writeLimit(`${dir}/memory.max`, String(limits.memoryBytes), jail, 'limits.memory');
      if (limits.maxProcs !== undefined)
        await writeLimit(`${dir}/pids.max`, String(limits.maxProcs), jail, 'limits.maxprocs');
      if (limits.cpuPercent !== undefined)
        await writeLimit(
          `${dir}/cpu.max`,
          `${Math.round(limits.cpuPercent * 1000)} ${CPU_PERIOD_US}`,
          jail,
          'limits.cpu',
        );
      continue;
    }
    if (dir.startsWith(`${CGROOT}/memory/`) && limits.memoryBytes !== undefined) {
      await writeLimit(`${dir}/memory.limit_in_bytes`, String(limits.memoryBytes), jail, 'limits.memory');
    }
    if (dir.startsWith(`${CGROOT}/pids/`) && limits.maxProcs !== undefined) {
      await writeLimit(`${dir}/pids.max`, String(limits.maxProcs), jail, 'limits.maxprocs');
    }
    if (dir.startsWith(`${CGROOT}/cpu/`) && limits.cpuPercent !== undefined) {
      await writeLimit(`${dir}/cpu.cfs_period_us`, String(CPU_PERIOD_US), jail, 'limits.cpu');
      await writeLimit(`${dir}/cpu.cfs_quota_us`, String(Math.round(limits.cpuPercent * 1000)), jail, 'limits.cpu');
    }
  }
}

async function tryRmdir(dir: string): Promise<boolean> {
  try {
    await rmdir(dir);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** How many groups below a jail's group removeGroups takes per round (deepest first): a
 * jail that made more (every mkdir costs it nothing) is removed over several rounds, within
 * the time bound; and how deep it looks (a path of that depth is past PATH_MAX anyway). */
const MAX_GROUPS = 4096;
const MAX_DEPTH = 2048;

/**
 * Every group below `dir` (not `dir` itself), deepest first. The jail's root may create
 * groups below its own (a cgroup namespace of its own plus a mount of the hierarchy:
 * `unshare -UrmC`, then mkdir), and nested jails' groups sit there too: none of them may
 * keep the jail's group from being removed.
 */
export async function groupsBelow(dir: string, depth = 0, out: string[] = []): Promise<string[]> {
  if (depth >= MAX_DEPTH || out.length >= MAX_GROUPS) return out;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!e.isDirectory() || out.length >= MAX_GROUPS) continue;
    await groupsBelow(`${dir}/${e.name}`, depth + 1, out);
    out.push(`${dir}/${e.name}`);
  }
  return out;
}

/** SIGKILLs every process in `dirs` (host pids, as cgroup.procs lists them here); v2's
 * cgroup.kill ends a whole subtree at once. Returns how many processes were found. */
export async function killGroupProcs(dirs: string[]): Promise<number> {
  let found = 0;
  for (const d of dirs) {
    let text = '';
    try {
      text = await readFile(`${d}/cgroup.procs`, 'utf8');
    } catch {
      continue;
    }
    for (const pid of text.split('\n').filter(Boolean).map(Number)) {
      if (pid === process.pid || !(pid > 1)) continue;
      found++;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    if (found && existsSync(`${d}/cgroup.kill`)) await writeFile(`${d}/cgroup.kill`, '1').catch(() => {});
  }
  return found;
}

/**
 * Removes the groups (the jail's: one per v1 hierarchy, or one v2 group) with everything
 * below them: first the processes still in any of them are killed (a jail's processes are
 * normally gone by now, its pid namespace ended with its pid 1), then the groups go
 * deepest first. Retries while processes exit; fails after `timeoutMs` (a process stuck
 * in the kernel), naming the groups that are left.
 */
export async function removeGroups(dirs: string[], jail: string, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let left = [...dirs];
  for (let round = 0; ; round++) {
    const still: string[] = [];
    for (const d of left) {
      const below = await groupsBelow(d);
      // at once when the plain rmdir of an empty group would do; else kill, then remove
      if (below.length || round > 0) await killGroupProcs([d, ...below]);
      for (const b of below) await tryRmdir(b);
      if (!(await tryRmdir(d))) still.push(d);
    }
    left = still;
    if (!left.length) break;
    if (Date.now() > end) {
      throw new JailyardError('JY_ERR_PLATFORM', `cannot remove cgroup(s) ${left.join(', ')}: still in use`, {
        jail,
        step: 'destroy',
      });
    }
    await sleep(round < 10 ? 2 : 20);
  }
  // The parent group goes too once no jail uses it (concurrent creators retry their mkdir).
  for (const d of dirs) {
    const parent = d.slice(0, d.lastIndexOf('/'));
    try {
      if (!(await readdir(parent, { withFileTypes: true })).some((e) => e.isDirectory())) await rmdir(parent);
    } catch {
      // in use by another jail, or already gone
    }
  }
}
