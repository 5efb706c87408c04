// What a user namespace costs per start (docs/userns.md "Cost"): the same small jail (host
// /usr as its skeleton, minimal /dev, no addresses) started with and without `userns` by the
// Linux driver, 20 times each, alternating so both see the same machine load; medians of the
// start (mounts step + create step) and of a whole cycle (start, exec `true`, stop).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createLinuxDriver } from '../../src/platform/linux/index.ts';
import { recordedRange, releaseRange } from '../../src/platform/linux/userns.ts';
import { makeTestJail, type TestJail } from '../platform/linux/fixture.ts';
import { snapshot, assertNoLeaks } from '../helpers/leaks.ts';

const N = 20;
const driver = createLinuxDriver({ cgroupParent: 'jailyard-userns-cost' });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function cycle(j: TestJail): Promise<{ start: number; uid: string }> {
  const t0 = performance.now();
  const mounts = await driver.mount(j.ctx, j.plan);
  const net = { addresses: [] };
  const facts = await driver.create(j.ctx, net, {}, mounts);
  const start = performance.now() - t0;
  try {
    const r = await driver.runInJail(j.ctx, facts, ['true']);
    assert.equal(r.code, 0, r.stderr);
    const status = readFileSync(`/proc/${facts.initPid}/status`, 'utf8');
    return { start, uid: /^Uid:\s+(\d+)/m.exec(status)![1]! };
  } finally {
    await driver.destroy(j.ctx, facts, 1000);
    await driver.unmount(j.ctx, mounts);
  }
}

test(`userns: cost per start, ${N} starts with and without (medians)`, async (t) => {
  const baseline = snapshot();
  const plain = makeTestJail('jy-userns-cost-');
  const userns = makeTestJail('jy-userns-cost-');
  userns.ctx.spec.params.userns = true;
  const times = {
    plain: [] as number[],
    userns: [] as number[],
    plainTotal: [] as number[],
    usernsTotal: [] as number[],
  };
  t.after(async () => {
    await releaseRange(userns.ctx.stateDir);
    for (const j of [plain, userns]) {
      // the fixture's folder holds the jail's root and its state folder
      assertNoLeaks(baseline, dirname(j.ctx.stateDir));
      j.cleanup();
    }
  });
  for (let i = 0; i < N; i++) {
    for (const [j, key] of [
      [plain, 'plain'],
      [userns, 'userns'],
    ] as const) {
      const t0 = performance.now();
      const c = await cycle(j);
      times[key].push(c.start);
      times[key === 'plain' ? 'plainTotal' : 'usernsTotal'].push(performance.now() - t0);
      if (key === 'plain') assert.equal(c.uid, '0');
      else assert.equal(Number(c.uid), recordedRange(userns.ctx.stateDir)!.base);
    }
  }
  const line =
    `start (mounts + create): ${median(times.plain).toFixed(1)} ms without, ${median(times.userns).toFixed(1)} ms with userns; ` +
    `whole cycle (start, exec true, stop): ${median(times.plainTotal).toFixed(1)} / ${median(times.usernsTotal).toFixed(1)} ms (medians of ${N})`;
  t.diagnostic(line);
  console.log(`userns cost: ${line}`);
  // generous: the machine is shared, only a gross regression (a copy of the skeleton,
  // a chown of it) fails this
  assert.ok(median(times.userns) < median(times.plain) * 3 + 50, line);
});
