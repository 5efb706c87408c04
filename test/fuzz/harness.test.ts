// The fuzz harness itself: a hanging input is reported (named) instead of waited for, and an
// oracle's failure reaches the test with its message; a passing target reports its counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzzInWorker } from './harness.ts';

const fixture = new URL('./targets/fixture.ts', import.meta.url);

async function run(mode: string, runs: number, boundMs: number) {
  const saved = process.env.FUZZ_FIXTURE;
  process.env.FUZZ_FIXTURE = mode;
  try {
    return await fuzzInWorker('fixture', fixture, runs, boundMs);
  } finally {
    if (saved === undefined) delete process.env.FUZZ_FIXTURE;
    else process.env.FUZZ_FIXTURE = saved;
  }
}

test('a target that passes reports its inputs', async () => {
  const c = await run('pass', 50, 2000);
  assert.equal(c.inputs, 50);
  assert.deepEqual(c.per, { fixture: 50 });
});

test('an endless loop on one input ends the worker and names that input', async () => {
  const t0 = performance.now();
  await assert.rejects(run('hang', 50, 300), /longer than 300 ms \(a hang\): "hang-here"/);
  assert.ok(performance.now() - t0 < 20_000);
});

test("an oracle's failure reaches the test with its own message", async () => {
  await assert.rejects(run('fail', 50, 2000), /the oracle said no/);
});
