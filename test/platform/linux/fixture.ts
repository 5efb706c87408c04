// A tiny jail root for driver tests (the real planner lives in src/skeleton): the host's
// /usr bound read-only, merged-usr symlinks, small writable etc/tmp/root, a minimal /dev.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { JailContext } from '../../../src/platform/driver.ts';
import type { MountPlan } from '../../../src/skeleton/plan.ts';

export interface TestJail {
  ctx: JailContext;
  plan: MountPlan;
  /** Removes the temp folder (after unmount). */
  cleanup(): void;
}

let counter = 0;

/** A jail named `${prefix}${n}` with a unique high jid (other tests may use low ones). */
export function makeTestJail(
  prefix: string,
  params: Record<string, string | string[]> = {},
  withDevfs = true,
): TestJail {
  const base = mkdtempSync(`${tmpdir()}/${prefix}`);
  const root = `${base}/root`;
  mkdirSync(`${root}/etc`, { recursive: true });
  for (const f of ['passwd', 'group']) copyFileSync(`/etc/${f}`, `${root}/etc/${f}`);
  const name = `${prefix}${counter++}`;
  const jid = 30000 + ((process.pid * 7 + counter * 13) % 30000);
  const plan: MountPlan = {
    root,
    mkdirs: [`${root}/tmp`, `${root}/root`, `${root}/usr`],
    symlinks: ['bin', 'lib', 'lib64', 'sbin'].map((d) => ({ path: `${root}/${d}`, target: `usr/${d}` })),
    mounts: [
      { kind: 'bind', source: '/usr', target: `${root}/usr`, readonly: true, origin: 'skeleton-ro' },
      ...(withDevfs ? [{ kind: 'devfs' as const, target: `${root}/dev`, origin: 'mount.devfs' }] : []),
      { kind: 'proc', target: `${root}/proc`, origin: 'mount.procfs' },
    ],
  };
  const ctx: JailContext = {
    spec: { name, params: { name, ...params } },
    name,
    jid,
    path: root,
    stateDir: `${base}/state`,
  };
  return { ctx, plan, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}
