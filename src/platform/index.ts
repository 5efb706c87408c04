// Picks the driver for the platform we run on. The only place that knows there are two.
import type { Driver } from './driver.ts';

export async function loadDriver(): Promise<Driver> {
  if (process.platform === 'freebsd') {
    const { createFreeBSDDriver } = await import('./freebsd/index.ts');
    return createFreeBSDDriver();
  }
  const { createLinuxDriver } = await import('./linux/index.ts');
  return createLinuxDriver();
}
