// The argument vectors the driver runs, built exactly the way jail(8) builds its own
// (usr.sbin/jail/command.c run_command): ifconfig aliases, nullfs/unionfs/devfs/procfs
// mounts, and rctl rules. Pure functions, so tests can read the expected argv.

import type { Limits } from '../driver.ts';
import type { MountStep } from '../../skeleton/plan.ts';
import type { AddressEntry } from './params.ts';
import { TOOLS } from './tools.ts';

/** `ifconfig IFACE inet ADDR netmask 255.255.255.255 alias` and friends (command.c IP__IP4_IFADDR). */
export function ifconfigArgv(a: AddressEntry & { iface: string }, down: boolean): string[] {
  const argv: string[] = [TOOLS.ifconfig, a.iface, a.family];
  if (a.family === 'inet') {
    if (a.mask === undefined) argv.push(a.addr, 'netmask', '255.255.255.255');
    else if (a.mask.includes('.')) argv.push(a.addr, 'netmask', a.mask);
    else argv.push(`${a.addr}/${a.mask}`);
  } else {
    if (a.mask === undefined) argv.push(a.addr, 'prefixlen', '128');
    else argv.push(`${a.addr}/${a.mask}`);
  }
  if (!down) argv.push(...a.options);
  argv.push(down ? '-alias' : 'alias');
  return argv;
}

/** One mount command of a plan step: what it mounts where (for facts and error messages). */
export interface MountCommand {
  argv: string[];
  source: string;
  target: string;
}

/**
 * The commands that make one plan step. An overlay is a read-only nullfs of its lowest layer,
 * the other lower layers stacked read-only with unionfs, and the writable upper on top:
 * unionfs(5) puts the mounted directory above what the mount point shows.
 */
export function mountCommands(step: MountStep, devfsRuleset: string): MountCommand[] {
  switch (step.kind) {
    case 'bind':
      return [
        {
          argv: [TOOLS.mountNullfs, ...(step.readonly ? ['-o', 'ro'] : []), step.source, step.target],
          source: step.source,
          target: step.target,
        },
      ];
    case 'overlay': {
      const [bottom, ...above] = [...step.lower].reverse();
      if (bottom === undefined)
        return [{ argv: [TOOLS.mountUnionfs, step.upper, step.target], source: step.upper, target: step.target }];
      return [
        { argv: [TOOLS.mountNullfs, '-o', 'ro', bottom, step.target], source: bottom, target: step.target },
        ...above.map((dir) => ({
          argv: [TOOLS.mountUnionfs, '-o', 'ro', dir, step.target],
          source: dir,
          target: step.target,
        })),
        { argv: [TOOLS.mountUnionfs, step.upper, step.target], source: step.upper, target: step.target },
      ];
    }
    case 'tmpfs':
      return [
        {
          argv: [
            TOOLS.mount,
            '-t',
            'tmpfs',
            ...(step.options.length ? ['-o', step.options.join(',')] : []),
            'tmpfs',
            step.target,
          ],
          source: 'tmpfs',
          target: step.target,
        },
      ];
    case 'proc':
      return [{ argv: [TOOLS.mount, '-t', 'procfs', '.', step.target], source: 'procfs', target: step.target }];
    case 'devfs':
      return [
        {
          argv: [TOOLS.mount, '-t', 'devfs', `-oruleset=${devfsRuleset}`, '.', step.target],
          source: 'devfs',
          target: step.target,
        },
      ];
    case 'fs':
      return [
        {
          argv: [
            TOOLS.mount,
            '-t',
            step.fstype,
            ...(step.options.length ? ['-o', step.options.join(',')] : []),
            step.source,
            step.target,
          ],
          source: step.source,
          target: step.target,
        },
      ];
  }
}

export function umountArgv(target: string): string[] {
  return [TOOLS.umount, target];
}

/** The rctl(8) subject of a jail: also the handle removing all of its rules at once. */
export function rctlSubject(jail: string): string {
  return `jail:${jail}`;
}

/** `jail:NAME:memoryuse:deny=268435456`, ... for each limit set (rctl(8) rule syntax). */
export function rctlRules(jail: string, limits: Limits): string[] {
  const s = rctlSubject(jail);
  const rules: string[] = [];
  if (limits.memoryBytes !== undefined) rules.push(`${s}:memoryuse:deny=${limits.memoryBytes}`);
  if (limits.maxProcs !== undefined) rules.push(`${s}:maxproc:deny=${limits.maxProcs}`);
  if (limits.cpuPercent !== undefined) rules.push(`${s}:pcpu:deny=${limits.cpuPercent}`);
  return rules;
}

export function hasLimits(limits: Limits): boolean {
  return limits.memoryBytes !== undefined || limits.maxProcs !== undefined || limits.cpuPercent !== undefined;
}
