// The Linux driver: named netns + veth on a shared bridge, host-side mounts under the jail
// root, jy-stage (namespaces, pivot_root) + tini as pid 1, cgroup limits, jy-enter exec.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { loadDefaults } from '../../defaults.ts';
import { JailyardError } from '../../errors.ts';
import { JY_HOLD, checkNative } from './native.ts';
import { groupsBelow, killGroupProcs, parentDirs, type CgroupConfig } from './cgroups.ts';
import { sleep } from './proc.ts';
import { mountsBelow } from './mountinfo.ts';
import { makeDiskImage } from './diskimage.ts';
import { runDebootstrap } from './debootstrap.ts';
import type { Driver } from '../driver.ts';
import * as life from './create.ts';
import { removeEnterFile, runHost, runInJail, writeEnterFile } from './exec.ts';
import { removeLeftover, scanLeftovers } from './leftovers.ts';
import { mount, unmount } from './mounts.ts';
import { holderOf, removeBridgeIfUnused, setupNetwork, teardownNetwork } from './network.ts';
import { isUnder, stateTag } from './paths.ts';
import { publishPorts, syncPorts, unpublishPorts } from './ports.ts';
import { releaseRange } from './userns.ts';
import { claimStateTag, liveOtherFolder, tagOf } from './statefolders.ts';
import { dirname } from 'node:path';
import type { Leftovers } from '../driver.ts';

/**
 * Whether a leftover belongs to the state folder `stateDir`: every netns, veth and cgroup of
 * its jails is named with its tag (jy-TAG-JID, jyhTAGJID), a jail process sits in such a
 * cgroup, and its mounts lie below it.
 */
function ownLeftover(stateDir: string | undefined): (kind: keyof Leftovers, id: string | number) => boolean {
  if (!stateDir) return () => false;
  const tag = stateTag(`${stateDir}/jails/x`);
  return (kind, id) => {
    const s = String(id);
    switch (kind) {
      case 'mounts':
        return isUnder(stateDir, s);
      case 'netns':
        return s.startsWith(`jy-${tag}-`);
      case 'links':
        return s.startsWith(`jyh${tag}`);
      case 'cgroups':
        return (s.split('/').pop() ?? '').startsWith(`jy-${tag}-`);
      case 'pids':
        try {
          return readFileSync(`/proc/${s}/cgroup`, 'utf8').includes(`/jy-${tag}-`);
        } catch {
          return false;
        }
    }
  };
}

/**
 * SIGKILLs every process in the cgroups of the state folder `stateDir`'s jails (jy-TAG-JID
 * and every group below them: nested jails), round after round until none is found or
 * `timeoutMs` passed (a process forked between the read and the kill). Returns how many
 * processes the first round killed.
 */
async function killAllOf(stateDir: string | undefined, cgroups: CgroupConfig, timeoutMs = 2000): Promise<number> {
  if (!stateDir) return 0;
  const prefix = `jy-${stateTag(`${stateDir}/jails/x`)}-`;
  const layout = parentDirs(cgroups);
  // every process is in each v1 hierarchy: one of them lists them all
  const parent = layout.version === 1 ? layout.dirs.pids : layout.dir;
  const end = Date.now() + timeoutMs;
  let killed = 0;
  for (let round = 0; ; round++) {
    let groups: string[];
    try {
      groups = readdirSync(parent, { withFileTypes: true })
        .filter((e) => e.isDirectory() && e.name.startsWith(prefix))
        .map((e) => `${parent}/${e.name}`);
    } catch {
      return killed;
    }
    const dirs: string[] = [];
    for (const g of groups) dirs.push(g, ...(await groupsBelow(g)));
    const found = await killGroupProcs(dirs);
    if (round === 0) killed = found;
    // a killed process stays listed as a zombie until its new parent reaps it: it runs nothing
    if (!found || !runningIn(dirs) || Date.now() > end) return killed;
    await sleep(round < 10 ? 2 : 20);
  }
}

/** Whether a process that is not a zombie is listed in any of the groups `dirs`. */
function runningIn(dirs: string[]): boolean {
  for (const d of dirs) {
    let pids: string[];
    try {
      pids = readFileSync(`${d}/cgroup.procs`, 'utf8').split('\n').filter(Boolean);
    } catch {
      continue;
    }
    for (const pid of pids) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (stat[stat.lastIndexOf(')') + 2] !== 'Z') return true;
      } catch {
        // gone
      }
    }
  }
  return false;
}

export interface LinuxDriverOptions {
  bridge?: string;
  /** The bridge's address with prefix (defaults: network.gateway). */
  gateway?: string;
  /** Where jail IPv4 addresses must lie (defaults: network.range). */
  range?: string;
  /** The bridge's IPv6 address with prefix (defaults: network.gateway6). */
  gateway6?: string;
  /** Where jail IPv6 addresses must lie (defaults: network.range6). */
  range6?: string;
  /** Name of the parent cgroup (defaults: limits.cgroupParent). */
  cgroupParent?: string;
  /** 'self' (default): the parent group sits below this process's own; 'root': at the top. */
  cgroupBase?: 'self' | 'root';
  /** Folders whose mounts are jailyard's, for scanLeftovers (e.g. the state dir). */
  stateRoots?: string[];
  /** Static tini binary bound into every jail. */
  tini?: string;
}

export interface LinuxDriver extends Driver {
  /** Deletes the shared bridge when no jail is attached (tests, reconcile). */
  removeBridgeIfUnused(): Promise<boolean>;
}

const TOOLS = ['ip', 'mount', 'umount', 'unshare', 'nsenter', 'nft'];

export function createLinuxDriver(opts: LinuxDriverOptions = {}): LinuxDriver {
  const defaults = loadDefaults();
  const net = {
    bridge: opts.bridge ?? defaults.network.bridge,
    gateway: opts.gateway ?? defaults.network.gateway,
    range: opts.range ?? defaults.network.range,
    gateway6: opts.gateway6 ?? defaults.network.gateway6,
    range6: opts.range6 ?? defaults.network.range6,
  };
  const cgroups = { parent: opts.cgroupParent ?? defaults.limits.cgroupParent, base: opts.cgroupBase ?? 'self' };
  const lifeCfg: life.LifeConfig = {
    cgroups,
    tini: opts.tini ?? '/usr/bin/tini-static',
    // a static holder of jailyard's own, bound in: no exec of the jail's dynamic `sleep`
    holder: ['/.jailyard/hold'],
    holderBin: JY_HOLD,
    readyTimeoutMs: 10_000,
  };
  return {
    platform: 'linux',
    async preflight() {
      if (process.getuid?.() !== 0)
        throw new JailyardError('JY_ERR_NOT_ROOT', 'the Linux driver needs root (namespaces, mounts, cgroups)');
      const dirs = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];
      const missing = TOOLS.filter((t) => !dirs.some((d) => existsSync(`${d}/${t}`)));
      if (!existsSync(lifeCfg.tini)) missing.push(lifeCfg.tini);
      if (missing.length)
        throw new JailyardError(
          'JY_ERR_PLATFORM',
          `missing tools: ${missing.join(', ')} (util-linux, iproute2, nftables, tini)`,
        );
      checkNative('preflight');
    },
    // the first objects named with the state folder's tag: its claim first (statefolders.ts)
    setupNetwork: (ctx) => {
      claimStateTag(dirname(dirname(ctx.stateDir)));
      return setupNetwork(ctx, net);
    },
    teardownNetwork: (ctx, facts) => teardownNetwork(facts, holderOf(ctx)),
    publishPorts: (ctx, netFacts) => publishPorts(ctx, netFacts, net),
    unpublishPorts: (_ctx, facts) => unpublishPorts(facts),
    syncPorts: (running, o) => syncPorts(opts.stateRoots?.[0], running, net, o),
    mount,
    unmount,
    create: async (ctx, netFacts, limits, mounts) => {
      claimStateTag(dirname(dirname(ctx.stateDir)));
      const facts = await life.create(ctx, netFacts, limits, lifeCfg, mounts);
      // for `jailyard exec` without Node (bin/jailyard.js); the jail runs without it too
      try {
        writeEnterFile(ctx, facts);
      } catch {
        removeEnterFile(ctx);
      }
      return facts;
    },
    destroy: (ctx, facts, timeoutMs) => {
      removeEnterFile(ctx);
      return life.destroy(ctx, facts, timeoutMs);
    },
    isAlive: life.isAlive,
    idle: life.isIdle,
    modify: life.modify,
    runHost,
    runInJail,
    scanLeftovers: () => scanLeftovers({ stateRoots: opts.stateRoots ?? [], cgroups }),
    isOwnLeftover: ownLeftover(opts.stateRoots?.[0]),
    otherStateOf: (kind, id) => {
      const tag = tagOf(kind, id);
      return tag === undefined ? undefined : liveOtherFolder(tag, opts.stateRoots?.[0]);
    },
    removeLeftover,
    killAll: () => killAllOf(opts.stateRoots?.[0], cgroups),
    makeDiskImage,
    debootstrap: runDebootstrap,
    removeBridgeIfUnused: () => removeBridgeIfUnused(net.bridge),
    mountsBelow: (dir) => mountsBelow(dir),
    async forget(jailDir) {
      try {
        await releaseRange(jailDir);
      } catch {
        // the jail is gone already; a slot left behind names a folder that no longer
        // records it, so the next allocation (or staleRanges) reclaims it
      }
    },
  };
}
