// Who writes a rollout's state. A rollout's progress file has one writer at a time: the
// process that runs its steps (`jailyard rollout`, --resume, --abort, or the daemon aborting
// a rollout nobody runs) holds `<file>.owner` (its pid and start time, like a jail's
// runtime owner: src/runtime/owner.ts), created exclusively. A file whose process is gone
// (killed) is taken over. Anyone else asks the owner to abort by writing `<file>.abort`,
// which the running rollout checks between steps and while it waits (src/lb/rollout.ts).

import {
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  closeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { JailyardError } from '../errors.ts';
import { ownerAlive, selfOwner, type Owner } from '../runtime/owner.ts';

export const ownerFileOf = (stateFile: string): string => `${stateFile}.owner`;
export const abortFileOf = (stateFile: string): string => `${stateFile}.abort`;

/** Files this process holds (ownerAlive does not count this process as alive). */
const held = new Set<string>();

export function readRolloutOwner(stateFile: string): Owner | undefined {
  try {
    const o = JSON.parse(readFileSync(ownerFileOf(stateFile), 'utf8')) as Owner;
    return Number.isSafeInteger(o.pid) ? o : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a process (another one, or this one) is running the rollout's steps now. */
export function rolloutActive(stateFile: string): Owner | undefined {
  if (held.has(stateFile)) return selfOwner();
  const o = readRolloutOwner(stateFile);
  return o && ownerAlive(o) ? o : undefined;
}

/**
 * Makes this process the rollout's only writer, or throws JY_ERR_ROLLOUT naming the live
 * one. An abort request left for an owner that is gone is dropped (it was that owner's).
 * Returns the release, which removes the owner file and any abort request.
 */
export function claimRollout(stateFile: string, selector: string): () => void {
  const file = ownerFileOf(stateFile);
  const busy = (o: Owner) =>
    new JailyardError(
      'JY_ERR_ROLLOUT',
      `the rollout of ${selector} is being run by process ${o.pid}: wait for it, or ask it to abort (POST /v1/rollouts/ID/abort)`,
      { param: 'selector' },
    );
  if (held.has(stateFile)) throw busy(selfOwner());
  // the first rollout of a state folder: no rollouts/ yet
  mkdirSync(dirname(file), { recursive: true });
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      try {
        writeFileSync(fd, `${JSON.stringify(selfOwner())}\n`);
      } finally {
        closeSync(fd);
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 3) throw e;
      const o = readRolloutOwner(stateFile);
      if (o && ownerAlive(o)) throw busy(o);
      // gone (or half written by a process killed while writing it): take it over. A rename
      // to a name of our own is atomic: of two processes taking over, one gets ENOENT and
      // tries again, and then finds the other's file.
      const mine = `${file}.${process.pid}.stale`;
      try {
        renameSync(file, mine);
      } catch {
        continue; // another process took it over first
      }
      // what was moved aside may be the fresh claim of a process that took it over between
      // our read and our rename: put it back (link: never over a newer one) and give way
      let moved: Owner | undefined;
      try {
        moved = JSON.parse(readFileSync(mine, 'utf8')) as Owner;
      } catch {
        moved = undefined;
      }
      if (moved && ownerAlive(moved)) {
        try {
          linkSync(mine, file);
        } catch {
          // a third one claimed it meanwhile
        }
        rmSync(mine, { force: true });
        throw busy(moved);
      }
      rmSync(mine, { force: true });
    }
  }
  held.add(stateFile);
  rmSync(abortFileOf(stateFile), { force: true });
  return () => {
    held.delete(stateFile);
    rmSync(abortFileOf(stateFile), { force: true });
    rmSync(file, { force: true });
  };
}

/** Asks the rollout's running owner to abort (it goes back to --from, as --abort does). */
export function requestAbort(stateFile: string, by: string): void {
  const tmp = `${abortFileOf(stateFile)}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ at: new Date().toISOString(), by })}\n`);
  renameSync(tmp, abortFileOf(stateFile));
}

export function abortRequested(stateFile: string): boolean {
  return existsSync(abortFileOf(stateFile));
}
