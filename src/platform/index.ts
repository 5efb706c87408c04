// Picks the driver for the platform we run on. The only place that knows there are two.
import type { Driver } from './driver.ts';

/** The driver for this host; `stateDir` tells it which mounts are jailyard's (reconcile). */
export async function loadDriver(opts: { stateDir?: string } = {}): Promise<Driver> {
  if (process.platform === 'freebsd') {
    const { createFreeBSDDriver } = await import('./freebsd/index.ts');
    return createFreeBSDDriver(opts.stateDir ? { stateRoot: opts.stateDir } : {});
  }
  const { createLinuxDriver } = await import('./linux/index.ts');
  return createLinuxDriver(opts.stateDir ? { stateRoots: [opts.stateDir] } : {});
}

/** The driver's runInJail alone, for `exec`: on Linux the rest of the driver is not loaded. */
export async function loadRunInJail(opts: { stateDir?: string } = {}): Promise<Driver['runInJail']> {
  if (process.platform === 'freebsd') {
    const driver = await loadDriver(opts);
    return (...args) => driver.runInJail(...args);
  }
  const { runInJail } = await import('./linux/exec.ts');
  return runInJail;
}
