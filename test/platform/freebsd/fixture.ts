// Shared setup for the FreeBSD driver tests: a real temporary jail root (directories and
// symlinks are real files), and a context whose commands go to the strict fake runner.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { JailContext } from '../../../src/platform/driver.ts';
import type { Params } from '../../../src/conf/spec.ts';

export interface Sandbox {
  dir: string;
  root: string;
  ctx: JailContext;
}

/** A jail root in a fresh temporary folder, removed after the test T. */
export function sandbox(t: TestContext, name: string, params: Params = {}): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'jyfb-'));
  const root = join(dir, 'root');
  mkdirSync(root);
  const ctx: JailContext = {
    spec: { name, params: { name, path: root, ...params } },
    name,
    jid: 3,
    path: root,
    stateDir: join(dir, 'state'),
  };
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, root, ctx };
}

/** A fake clock: sleeping advances it, so stop.timeout paths run instantly. */
export function fakeClock(): { now: () => number; sleep: (ms: number) => Promise<void>; slept: number[] } {
  let t = 1_000_000;
  const slept: number[] = [];
  return {
    now: () => t,
    sleep: async (ms) => {
      slept.push(ms);
      t += ms;
    },
    slept,
  };
}
