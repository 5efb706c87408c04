// Which process is working on a jail. A jail is 'starting' or 'stopping' only while one
// jailyard process walks its steps; the store records that process (pid and, where /proc
// exists, its start time, so a reused pid is not mistaken for it). reconcile recovers a
// jail only when that process is gone: a second manager at work is never undercut.
import { readFileSync } from 'node:fs';
import type { Owner } from '../store/types.ts';

export type { Owner };

function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count from the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

let self: Owner | undefined;

/** This process, as recorded in a jail's runtime facts. */
export function selfOwner(): Owner {
  if (!self) {
    const startTime = startTimeOf(process.pid);
    self = { pid: process.pid, ...(startTime ? { startTime } : {}) };
  }
  return self;
}

/** Whether the recorded owner is still running (and is not this process). */
export function ownerAlive(owner: Owner | undefined): boolean {
  if (!owner || owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  return owner.startTime === undefined || startTimeOf(owner.pid) === owner.startTime;
}
