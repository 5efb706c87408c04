// Leak checks for tests that create jails: what a test made must be gone at its end.
// Reads the system directly (/proc/self/mountinfo, ip netns, ip link, cgroupfs, /proc).

import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { stateTag } from '../../src/platform/linux/paths.ts';

export interface SystemSnapshot {
  mounts: string[];
  netns: string[];
  links: string[];
  cgroups: string[];
  pids: number[];
}

function mountTargets(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4]!.replace(/\\040/g, ' '));
}

function netns(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

function links(): string[] {
  const out = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(': ')[1]!.split('@')[0]!);
}

function cgroupDirs(): string[] {
  const found: string[] = [];
  for (const base of [
    '/sys/fs/cgroup/memory',
    '/sys/fs/cgroup/pids',
    '/sys/fs/cgroup/cpu',
    '/sys/fs/cgroup/unified',
    '/sys/fs/cgroup',
  ]) {
    if (!existsSync(base)) continue;
    const walk = (dir: string, depth: number): void => {
      if (depth > 4) return;
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        const p = `${dir}/${e.name}`;
        if (e.name.includes('jailyard') || e.name.startsWith('jy')) found.push(p);
        walk(p, depth + 1);
      }
    };
    walk(base, 0);
  }
  return [...new Set(found)];
}

function pids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/**
 * The links `isOurs` picks that are still there. A stopped jail's veth is deleted by the
 * kernel with its netns, asynchronously: they get up to 2 s to go (a real leak stays).
 */
export function linksLeft(isOurs: (link: string) => boolean): string[] {
  let left = links().filter(isOurs);
  for (let i = 0; i < 100 && left.length; i++) {
    execFileSync('sleep', ['0.02']);
    left = links().filter(isOurs);
  }
  return left;
}

/** Processes (other than this one) whose command line mentions `marker`. */
export function processesMentioning(marker: string): number[] {
  return pids().filter((pid) => {
    if (pid === process.pid) return false;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
    } catch {
      return false;
    }
  });
}

export function snapshot(): SystemSnapshot {
  return { mounts: mountTargets(), netns: netns(), links: links(), cgroups: cgroupDirs(), pids: pids() };
}

/**
 * What of `items` belongs to the test whose marker is `marker`. When the marker is a state
 * folder (a path, existing or removed already), only that folder's objects count: its path (mounts, processes) and its state tag
 * (netns jy-TAG-N, veths jyhTAGN, cgroups jy-TAG-N), so two test runs (or two engineers) on
 * one machine never fail each other. Any other marker (a name prefix) checks everything new.
 */
function ownedBy(marker: string): (item: string) => boolean {
  // a folder's tag is a hash of its path: it names its objects whether the folder still exists
  if (!marker.startsWith('/')) return () => true;
  const tag = stateTag(`${marker}/jails/x`);
  return (item) => item.includes(marker) || item.includes(`jy-${tag}-`) || item.startsWith(`jyh${tag}`);
}

/**
 * Asserts nothing new of the kinds jails make exists now compared to `before`:
 * mounts, network namespaces, links, cgroups, and processes whose command line mentions
 * `marker` (a string unique to the test, e.g. its state folder or jail name prefix).
 */
export function assertNoLeaks(before: SystemSnapshot, marker: string): void {
  const now = snapshot();
  const ours = ownedBy(marker);
  const added = (a: string[], b: string[]) => a.filter((x) => !b.includes(x) && ours(x));
  // /run/netns itself becomes a mount the first time anything on the host runs `ip netns
  // add` (iproute2 binds it onto itself, shared, and never undoes that): host set-up, not a
  // leak. The namespaces below it are mounts too and stay checked.
  const newMounts = added(now.mounts, before.mounts).filter((m) => m !== '/run/netns');
  assert.deepEqual(newMounts, [], 'mounts left behind');
  assert.deepEqual(added(now.netns, before.netns), [], 'network namespaces left behind');
  assert.deepEqual(
    linksLeft((l) => !before.links.includes(l) && ours(l)),
    [],
    'links left behind',
  );
  assert.deepEqual(added(now.cgroups, before.cgroups), [], 'cgroups left behind');
  // A jail's processes show no host path in their command line (jy-stage blanks its own):
  // they are found by the cgroups named with the state folder's tag as well.
  const tag = marker.startsWith('/') ? stateTag(`${marker}/jails/x`) : undefined;
  const stray = now.pids
    .filter((pid) => !before.pids.includes(pid))
    .filter((pid) => {
      if (pid === process.pid) return false;
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)) return true;
        return tag !== undefined && readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`/jy-${tag}-`);
      } catch {
        return false;
      }
    });
  assert.deepEqual(stray, [], `processes mentioning ${marker} left behind`);
}
