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
