// What jailyard may have left on the system (for `jailyard reconcile`): mounts below the
// state roots, jy-* netns, jyh* veths (and the bridge filter rules of veths that are gone),
// jy-* cgroups below the parent groups, live jail pid-1 processes (the pid 1 below a
// jy-stage) and console log relays (jy-log) whose jail folder is gone.
import { mountTargets } from './mountinfo.ts';
import { readdirSync } from 'node:fs';
import type { Leftovers } from '../driver.ts';
import { parentDirs, removeGroups, type CgroupConfig } from './cgroups.ts';
import { isStageProcess } from './native.ts';
import { unmountAll } from './mounts.ts';
import { isUnder } from './paths.ts';
import { childrenOf, innermostPid, killTree, run } from './proc.ts';
import { filteredPorts, netnsOfVeth, sharedInUse, teardownNetwork } from './network.ts';
import { strayConsoleRelays } from './console.ts';

export interface LeftoverConfig {
  /** Folders whose mounts are all jailyard's (state dirs, jail roots). */
  stateRoots: string[];
  cgroups: CgroupConfig;
}

function jailInitPids(): number[] {
  const found: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // jy-stage waits for its child, which is pid 1 of the jail's new pid namespace (or,
      // for a nested jail, a jy-stage in the parent's namespace that waits for that pid 1)
      if (!isStageProcess(d)) continue;
      found.push(...childrenOf(Number(d)).filter((c) => innermostPid(c) === 1));
    } catch {
      // gone
    }
  }
  return found;
}

export async function scanLeftovers(cfg: LeftoverConfig): Promise<Leftovers> {
  // Mounts in mountinfo order: removing them newest first means walking this list backwards.
  const mounts = mountTargets().filter((t) => cfg.stateRoots.some((r) => isUnder(r, t)));
  let netns: string[] = [];
  try {
    // a shared netns a process still uses is another state folder's member's, never a leftover
    netns = readdirSync('/run/netns').filter((n) => n.startsWith('jy-') && !sharedInUse(n));
  } catch {
    // none
  }
  const links = readdirSync('/sys/class/net').filter(
    (n) => (netnsOfVeth(n) !== undefined && !sharedInUse(netnsOfVeth(n))) || /^jyh\d+$/.test(n),
  );
  // a port's bridge filter rules outlive a crash that lost its veth: reported as that link
  for (const port of await filteredPorts())
    if (!links.includes(port) && netnsOfVeth(port) !== undefined && !sharedInUse(netnsOfVeth(port))) links.push(port);
  const cgroups: string[] = [];
  const layout = parentDirs(cfg.cgroups);
  for (const parent of layout.version === 1 ? Object.values(layout.dirs) : [layout.dir]) {
    try {
      for (const e of readdirSync(parent, { withFileTypes: true }))
        if (e.isDirectory() && e.name.startsWith('jy-')) cgroups.push(`${parent}/${e.name}`);
    } catch {
      // no parent group: nothing there
    }
  }
  // Console log relays end with their last writer; one whose jail folder is gone is stray.
  return { mounts: [...new Set(mounts)], netns, links, cgroups, pids: [...jailInitPids(), ...strayConsoleRelays()] };
}

export async function removeLeftover(kind: keyof Leftovers, id: string | number): Promise<void> {
  switch (kind) {
    case 'mounts': {
      // Everything below it goes first (umount -R), lazily if busy; and every mount stacked
      // at the same place (an overlay root on the root bound onto itself), one per round.
      const target = String(id);
      for (let round = 0; round < 16 && mountTargets().includes(target); round++) {
        const r = await run(['umount', '-R', target]);
        if (r.code !== 0) await unmountAll([target]);
      }
      return;
    }
    case 'netns':
      return teardownNetwork({ netns: String(id), addresses: [] });
    case 'links':
      return teardownNetwork({ veth: { host: String(id), jail: 'eth0' }, addresses: [] });
    case 'cgroups':
      return removeGroups([String(id)], '', 2000);
    case 'pids':
      // SIGKILL to a pid namespace's init ends every process in it.
      killTree(Number(id), 'SIGKILL');
      return;
  }
}
