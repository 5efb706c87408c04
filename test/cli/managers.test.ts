// Two managers at once on one state folder: while one CLI process starts a jail, another
// process's `reconcile` leaves it alone (its owner is alive) and a second `start` is refused
// with a clear message; the first start finishes and nothing leaks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { cliFor, hookWaitingFor } from '../helpers/cli.ts';

let state: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-managers-'));
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
  // exec.prestart waits (up to 60 s) for the test's go: a fixed sleep had to outlast an ls,
  // a reconcile and a start, which a loaded machine may not do in time
  const r = await jy(
    'create',
    'm1',
    'skeleton=host',
    'persist',
    'ip4.addr=198.51.100.140/24',
    `exec.prestart=${hookWaitingFor(join(state, 'go'), 60)}`,
  );
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await jy('remove', 'm1');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

async function stateOf(name: string): Promise<string> {
  const r = await jy('ls', '-a', '--json', 'name', 'state');
  return (JSON.parse(r.stdout) as { 'jail-information': { jail: { name: string; state: string }[] } })[
    'jail-information'
  ].jail.find((j) => j.name === name)!.state;
}

test('reconcile and a second start leave a jail alone while another process starts it', {
  timeout: 120_000,
}, async () => {
  const other = spawn(
    process.execPath,
    [join(import.meta.dirname, '../../bin/jailyard.js'), '--state', state, 'start', 'm1'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  other.stdout!.on('data', (d) => (out += d));
  other.stderr!.on('data', (d) => (out += d));
  const done = new Promise<number | null>((r) => other.once('exit', (c) => r(c)));
  // wait until the other process is inside the slow exec.prestart
  for (let i = 0; i < 300 && !out.includes('exec.prestart'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(await stateOf('m1'), 'starting');

  const rec = await jy('reconcile', '--json');
  assert.equal(rec.code, 0, rec.stderr);
  const report = JSON.parse(rec.stdout) as { busy: string[]; recovered: string[]; removed: unknown[] };
  assert.deepEqual(report.busy, ['m1']);
  assert.deepEqual(report.recovered, []);
  assert.deepEqual(report.removed, [], 'nothing of the starting jail was taken away');

  const second = await jy('start', 'm1');
  assert.equal(second.code, 1);
  assert.match(second.stderr, /m1.*starting/);

  writeFileSync(join(state, 'go'), '');
  assert.equal(await done, 0, out);
  assert.equal(await stateOf('m1'), 'running');
  assert.equal((await jy('stop', 'm1')).code, 0);
});
