// Crash injection (bounded, for CI): the CLI is killed with SIGKILL at every point of the
// start and stop lifecycle (before each step acts, and after it acted but before it was
// recorded: JAILYARD_CRASH_AT), then `jailyard reconcile` runs. Afterwards the store
// agrees with the system: the jail is fully stopped, nothing of it is left (mounts, netns,
// veth, cgroups, processes), and it starts and stops again normally.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { LIFECYCLE } from '../../src/runtime/lifecycle.ts';
import { cliFor } from '../helpers/cli.ts';

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

/** After a crash and reconcile: stopped, nothing left, and a normal start + stop works. */
async function assertRecovered(point: string): Promise<void> {
  const rec = await jy('reconcile');
  assert.equal(rec.code, 0, `${point}: reconcile failed: ${rec.out}`);
  assert.equal(await stateOf('c1'), 'stopped', `${point}: the jail is stopped after reconcile`);
  assertNoLeaks(baseline, state);
  const start = await jy('start', 'c1');
  assert.equal(start.code, 0, `${point}: the next start works: ${start.out}`);
  const stop = await jy('stop', 'c1');
  assert.equal(stop.code, 0, `${point}: the next stop works: ${stop.out}`);
  assertNoLeaks(baseline, state);
}

test('kill -9 at every point of start and stop, then reconcile: nothing leaks and the jail works again', {
  timeout: 600_000,
}, async () => {
  let covered = 0;
  for (const { step } of LIFECYCLE) {
    for (const when of ['begin', 'done']) {
      const point = `${step}:${when}`;
      const r = crashing(['start', 'c1'], point);
      assert.equal(r.signal, 'SIGKILL', `${point}: the CLI was killed there (${r.out})`);
      await assertRecovered(point);
      covered++;
    }
  }
  for (const undo of LIFECYCLE.map((s) => s.undo)
    .filter((u) => u !== null)
    .reverse()) {
    for (const when of ['begin', 'done']) {
      const point = `${undo}:${when}`;
      assert.equal((await jy('start', 'c1')).code, 0);
      const r = crashing(['stop', 'c1'], point);
      assert.equal(r.signal, 'SIGKILL', `${point}: the CLI was killed there (${r.out})`);
      await assertRecovered(point);
      covered++;
    }
  }
  console.log(`crash injection: ${covered} points covered`);
  assert.ok(covered >= 28);
});
