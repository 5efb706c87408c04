// A signal during `stop` or `restart`: the jail being stopped (or started again) finishes
// its step, no further jail is begun, the exit status is 128 + the signal's number, and the
// command names what is left and the command that finishes it. A second signal does not cut
// the stop short (Node's default would kill the process half-way through a jail's stop).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { cliFor, JY_BIN } from '../helpers/cli.ts';

let state: string;
let marks: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);

async function stateOf(name: string): Promise<string> {
  const r = await jy('ls', '-a', '--json', 'name', 'state');
  const doc = JSON.parse(r.stdout) as { 'jail-information'?: { jail?: { name: string; state: string }[] } };
  return doc['jail-information']?.jail?.find((j) => j.name === name)?.state ?? '(none)';
}

/**
 * Runs the CLI with `marks/hold-PHASE` in place, sends SIGINT twice once a `PHASE-` marker
 * exists (its hook is then waiting for the hold to go, so both signals land inside it however
 * loaded the machine), then lets the hook end; resolves with status and stderr.
 */
async function interrupted(
  args: string[],
  phase: 'stop' | 'start',
): Promise<{ status: number; err: string; first: string }> {
  const hold = join(marks, `hold-${phase}`);
  writeFileSync(hold, '');
  const child = spawn(process.execPath, [JY_BIN, '--state', state, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout.resume();
  const exited = new Promise<number>((r) =>
    child.on('exit', (code, sig) => r(code ?? 128 + (sig ? constants.signals[sig] : 0))),
  );
  let first = '';
  try {
    for (let i = 0; i < 200 && !first; i++) {
      first = readdirSync(marks).find((f) => f.startsWith(`${phase}-`)) ?? '';
      if (!first) await sleep(50);
    }
    assert.ok(first, `no ${phase}-* marker: ${err}`);
    child.kill('SIGINT');
    await sleep(100);
    child.kill('SIGINT');
    // the CLI has taken both (its stderr says so for the second) before the hook may end
    for (let i = 0; i < 200 && !/still/.test(err); i++) await sleep(25);
  } finally {
    rmSync(hold, { force: true });
  }
  const status = await exited;
  return { status, err, first: first.slice(phase.length + 1) };
}

/** A hook that marks `PHASE-NAME` and, while `marks/hold-PHASE` is there, waits (60 s at most). */
const held = (phase: 'stop' | 'start', n: string) =>
  `touch ${marks}/${phase}-${n}; i=0; while [ -e ${marks}/hold-${phase} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done`;

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-stopsig-'));
  marks = join(state, 'marks');
  mkdirSync(marks);
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
  for (const n of ['ss1', 'ss2']) {
    const r = await jy(
      'create',
      n,
      'skeleton=host',
      'persist',
      `exec.prestop=${held('stop', n)}`,
      `exec.poststart=${held('start', n)}`,
    );
    assert.equal(r.code, 0, r.stderr);
  }
});

after(async () => {
  await jy('stop', 'ss1', 'ss2');
  await jy('remove', 'ss1', 'ss2');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('SIGINT (twice) during a stop: the jail in hand is stopped, the other is not begun and named', async () => {
  assert.equal((await jy('start', 'ss1', 'ss2')).code, 0);
  for (const f of readdirSync(marks)) rmSync(join(marks, f));
  const r = await interrupted(['stop', '-p', '1', 'ss1', 'ss2'], 'stop');
  const other = r.first === 'ss1' ? 'ss2' : 'ss1';
  assert.equal(r.status, 130, r.err);
  assert.equal(await stateOf(r.first), 'stopped', r.err);
  assert.equal(await stateOf(other), 'running', r.err);
  assert.ok(!existsSync(join(marks, `stop-${other}`)), 'the other jail was not begun');
  assert.match(r.err, new RegExp(`not stopped: ${other}`));
  assert.match(r.err, new RegExp(`run \`jailyard stop ${other}\``));
  assert.match(r.err, /still stopping the stop/);
  assert.equal((await jy('stop', other)).code, 0);
});

test('SIGINT during a restart: what was not restarted is named, nothing is left half-started', async () => {
  assert.equal((await jy('start', 'ss1', 'ss2')).code, 0);
  for (const f of readdirSync(marks)) rmSync(join(marks, f));
  // the restart stops both, then starts them: the signal comes during the first start
  const r = await interrupted(['restart', '-p', '1', 'ss1', 'ss2'], 'start');
  assert.equal(r.status, 130, r.err);
  const states = [await stateOf('ss1'), await stateOf('ss2')];
  for (const s of states) assert.ok(s === 'running' || s === 'stopped', `state ${s}: ${r.err}`);
  const left = ['ss1', 'ss2'].filter((_, i) => states[i] !== 'running');
  assert.ok(left.length >= 1, 'the second jail was not started');
  assert.match(r.err, new RegExp(`run \`jailyard restart ${left.join(' ')}\``));
  assert.equal((await jy('restart', ...left)).code, 0);
  assert.deepEqual([await stateOf('ss1'), await stateOf('ss2')], ['running', 'running']);
});
