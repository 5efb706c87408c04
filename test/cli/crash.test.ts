// Crash injection: the CLI is killed with SIGKILL at every point of the start and stop
// lifecycle (before each step acts, and after it acted but before it was recorded:
// JAILYARD_CRASH_AT, CRASH_POINTS.start/stop in src/runtime/crashpoint.ts), then `jailyard
// reconcile` runs. Afterwards the store agrees with the system: the jail is fully stopped,
// nothing of it is left (mounts, netns, veth, cgroups, processes, address claims), and it
// starts and stops again (in CI checked after every third point and the last, to keep the
// crash suites within their budget; after every point with JAILYARD_SOAK=1). The other
// operations' points: crash-ops.test.ts (CLI) and test/api/crash-daemon.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { LIFECYCLE } from '../../src/runtime/lifecycle.ts';
import { CRASH_POINTS, START_STEPS, STOP_STEPS } from '../../src/runtime/crashpoint.ts';
import { cliFor } from '../helpers/cli.ts';
import { assertNothingHalfDone, Coverage, SOAK } from '../helpers/crash.ts';

const BIN = join(import.meta.dirname, '../../bin/jailyard.js');
let state: string;
let baseline: SystemSnapshot;

const cli = cliFor(() => state);

/** The CLI in a process of its own, killed at `crashAt`. */
function crashing(args: string[], crashAt: string): { code: number | null; signal: string | null; out: string } {
  const r = spawnSync(process.execPath, [BIN, '--state', state, ...args], {
    encoding: 'utf8',
    env: { ...process.env, JAILYARD_CRASH_AT: crashAt },
    timeout: 60_000,
  });
  return { code: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}` };
}

/** The CLI in this process (fast): code and all it printed. */
async function jy(...args: string[]): Promise<{ code: number; out: string }> {
  const r = await cli(...args);
  return { code: r.code, out: r.stdout + r.stderr };
}

async function stateOf(name: string): Promise<string> {
  const r = await cli('ls', '-a', '--json', 'name', 'state');
  const doc = JSON.parse(r.stdout) as { 'jail-information'?: { jail?: { name: string; state: string }[] } };
  return doc['jail-information']?.jail?.find((j) => j.name === name)?.state ?? '(none)';
}

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-crash-'));
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
  const r = await jy(
    'create',
    'c1',
    'skeleton=host',
    'persist',
    'ip4.addr=198.51.100.150/24',
    'limits.procs=64',
    'exec.prepare=true',
    'exec.prestart=true',
    'exec.created=true',
    'exec.start=sleep 1000 &',
    'exec.poststart=true',
    'exec.prestop=true',
    'exec.stop=true',
    'exec.poststop=true',
    'exec.release=true',
  );
  assert.equal(r.code, 0, r.out);
});

after(async () => {
  await jy('remove', 'c1');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

/** After a crash and reconcile: stopped, nothing left, and (when `verify`) a normal start + stop works. */
async function assertRecovered(point: string, verify: boolean): Promise<void> {
  const rec = await jy('reconcile');
  assert.equal(rec.code, 0, `${point}: reconcile failed: ${rec.out}`);
  assert.equal(await stateOf('c1'), 'stopped', `${point}: the jail is stopped after reconcile`);
  assertNoLeaks(baseline, state);
  assertNothingHalfDone(state, ['c1'], point);
  if (!verify) return;
  const start = await jy('start', 'c1');
  assert.equal(start.code, 0, `${point}: the next start works: ${start.out}`);
  const stop = await jy('stop', 'c1');
  assert.equal(stop.code, 0, `${point}: the next stop works: ${stop.out}`);
  assertNoLeaks(baseline, state);
}

test('the declared crash points are the lifecycle steps, in order', () => {
  assert.deepEqual(
    LIFECYCLE.map((s) => s.step),
    [...START_STEPS],
  );
  assert.deepEqual(
    LIFECYCLE.map((s) => s.undo)
      .filter((u) => u !== null)
      .reverse(),
    [...STOP_STEPS],
  );
});

test('kill -9 at every point of start and stop, then reconcile: nothing leaks and the jail works again', {
  timeout: 900_000,
}, async () => {
  const coverage = new Coverage('crash');
  coverage.declare('start', CRASH_POINTS.start);
  coverage.declare('stop', CRASH_POINTS.stop);
  let n = 0;
  const verify = (i: number, all: readonly string[]) => SOAK || i % 3 === 0 || i === all.length - 1;
  for (const [i, point] of CRASH_POINTS.start.entries()) {
    const r = crashing(['start', 'c1'], point);
    assert.equal(r.signal, 'SIGKILL', `${point}: the CLI was killed there (${r.out})`);
    await assertRecovered(point, verify(i, CRASH_POINTS.start));
    coverage.covered('start', point);
    n++;
  }
  for (const [i, point] of CRASH_POINTS.stop.entries()) {
    assert.equal((await jy('start', 'c1')).code, 0);
    const r = crashing(['stop', 'c1'], point);
    assert.equal(r.signal, 'SIGKILL', `${point}: the CLI was killed there (${r.out})`);
    await assertRecovered(point, verify(i, CRASH_POINTS.stop));
    coverage.covered('stop', point);
    n++;
  }
  coverage.print();
  assert.equal(n, CRASH_POINTS.start.length + CRASH_POINTS.stop.length);
});
