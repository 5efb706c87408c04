// What every front end of export, clone and snapshots (the CLI, the API) needs around the
// work: the platform's view of mounts, and `restart`: stop a running jail for the time of the
// work and start it again afterwards, whatever happened.

import { JailyardError } from '../errors.ts';
import type { JailService } from '../runtime/types.ts';
import type { Store } from '../store/types.ts';

/** The driver's mountsBelow for the state folder (loaded once). */
export async function mountChecker(stateDir: string): Promise<(dir: string) => string[]> {
  const { loadDriver } = await import('../platform/index.ts');
  const driver = await loadDriver({ stateDir });
  return (dir) => driver.mountsBelow(dir);
}

/** With `restart`, stops the jail if it runs, runs `fn`, and starts it again (also after a
 * failure of `fn`), reporting the start through `started`; without, runs `fn` (which refuses
 * a running jail). */
export async function whileStopped<T>(
  service: JailService,
  store: Store,
  name: string,
  restart: boolean | undefined,
  fn: () => Promise<T>,
  started: (ok: boolean, message?: string) => void = () => {},
): Promise<T> {
  const running = store.requireJail(name).state !== 'stopped';
  if (!restart || !running) return fn();
  const r = await service.stop([name]);
  if (!r.ok) throw new JailyardError('JY_ERR_STEP_FAILED', r.outcomes[0]?.message ?? 'stop failed', { jail: name });
  try {
    return await fn();
  } finally {
    const s = await service.start([name]);
    started(s.ok, s.outcomes[0]?.message);
  }
}

/** Whether the process `pid` is alive (a leftover of a dead one may be cleaned up). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
