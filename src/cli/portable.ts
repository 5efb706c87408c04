// What the export, import, clone and snapshot verbs share: a local session (they read and
// write the state folder's files, so they run on the jail host itself, like `upgrade`), the
// driver's view of mounts, and --restart: stop a running jail for the time of the work and
// start it again afterwards, whatever happened.

import type { Command } from 'commander';
import { JailyardError } from '../errors.ts';
import type { Store } from '../store/types.ts';
import type { JailService } from '../runtime/types.ts';
import type { CliIO } from './context.ts';
import { withSession } from './jails.ts';

export interface LocalWork {
  service: JailService;
  store: Store;
  stateDir: string;
  mountsBelow: (dir: string) => string[];
}

/** Runs `fn` on the local store; with --host, a usage error naming the verb. */
export async function withLocal<T>(
  program: Command,
  io: CliIO,
  verb: string,
  fn: (w: LocalWork) => Promise<T>,
): Promise<T> {
  return withSession(program, io, async ({ service, store, stateDir }) => {
    if (!store)
      throw new JailyardError(
        'JY_ERR_USAGE',
        `${verb} reads and writes the jail's files in the state folder: run it on the jail host itself, not through --host`,
      );
    const { loadDriver } = await import('../platform/index.ts');
    const driver = await loadDriver({ stateDir });
    return fn({ service, store, stateDir, mountsBelow: (dir) => driver.mountsBelow(dir) });
  });
}

/** With `restart`, stops the jail if it runs, runs `fn`, and starts it again (also after a
 * failure of `fn`); without, runs `fn` (which refuses a running jail). */
export async function whileStopped<T>(
  w: LocalWork,
  io: CliIO,
  name: string,
  restart: boolean | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  const running = w.store.requireJail(name).state !== 'stopped';
  if (!restart || !running) return fn();
  const r = await w.service.stop([name]);
  if (!r.ok) throw new JailyardError('JY_ERR_STEP_FAILED', r.outcomes[0]?.message ?? 'stop failed', { jail: name });
  try {
    return await fn();
  } finally {
    const s = await w.service.start([name]);
    io.err(`${name}: ${s.ok ? 'started again' : `failed to start again: ${s.outcomes[0]?.message}`}`);
    if (!s.ok) process.exitCode = 1;
  }
}
