// Crash injection in the daemon: a real `jailyard serve` killed with SIGKILL at a point of an
// API-driven create, start, stop or remove (its request handlers' points, and the lifecycle's
// and the service's points it runs: CRASH_POINTS in src/runtime/crashpoint.ts). Then
// `jailyard reconcile` and the daemon started again: no mount, netns, veth, cgroup, process,
// address claim, intent or orphan folder is left, the jail is fully there (stopped or
// running, and it starts and stops through the API) or fully gone. CI runs a fixed sample;
// JAILYARD_SOAK=1 every point.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { binArgs, cliFor } from '../helpers/cli.ts';
import { assertNothingHalfDone, Coverage, SOAK } from '../helpers/crash.ts';
import { createRemoteService } from '../../src/api/client.ts';
import { CRASH_POINTS } from '../../src/runtime/crashpoint.ts';

let state: string;
let baseline: SystemSnapshot;
const cli = cliFor(() => state);
const coverage = new Coverage('crash-daemon');
const url = () => `unix://${join(state, 'jailyard.sock')}`;
const JAIL = 'cd1';
const CREATE = { name: JAIL, params: { skeleton: 'host', persist: true, 'ip4.addr': ['198.51.100.159/24'] } };

/** `jailyard serve` on the state folder, killed at `crashAt` when given; up when it lists. */
async function serve(crashAt?: string): Promise<{ child: ChildProcess; err: () => string }> {
  const child = spawn(process.execPath, binArgs(state, 'serve'), {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...(crashAt ? { JAILYARD_CRASH_AT: crashAt } : {}) },
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await createRemoteService(url()).list();
      return { child, err: () => err };
    } catch {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`daemon did not come up: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function stopDaemon(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = once(child, 'exit');
  child.kill('SIGTERM');
  await gone;
}

async function jy(...args: string[]): Promise<{ code: number; out: string }> {
  const r = await cli(...args);
  return { code: r.code, out: r.stdout + r.stderr };
}

async function jails(): Promise<{ name: string; state: string }[]> {
  const r = await cli('ls', '-a', '--json', 'name', 'state');
  return (
    (JSON.parse(r.stdout) as { 'jail-information'?: { jail?: { name: string; state: string }[] } })['jail-information']
      ?.jail ?? []
  );
}

async function stateOf(name: string): Promise<string> {
  return (await jails()).find((j) => j.name === name)?.state ?? '(none)';
}

type Op = 'create' | 'start' | 'stop' | 'remove';

/** The jail as the operation needs it before: absent for create, stopped for start, running
 * for stop and remove (made by the CLI on the same store, so only the request reaches the
 * daemon's crash point). */
async function prepare(op: Op): Promise<void> {
  const now = await stateOf(JAIL);
  if (op === 'create') {
    if (now !== '(none)') assert.equal((await jy('remove', JAIL)).code, 0);
    return;
  }
  if (now === '(none)') {
    const r = await jy('create', JAIL, 'skeleton=host', 'persist', 'ip4.addr=198.51.100.159/24');
    assert.equal(r.code, 0, r.out);
  }
  const want = op === 'start' ? 'stopped' : 'running';
  if ((await stateOf(JAIL)) !== want) assert.equal((await jy(want === 'running' ? 'start' : 'stop', JAIL)).code, 0);
}

async function request(op: Op): Promise<unknown> {
  const api = createRemoteService(url());
  if (op === 'create') return api.create({ spec: { name: CREATE.name, params: { name: JAIL, ...CREATE.params } } });
  return api[op]([JAIL]);
}

/** The daemon killed at `point` during `op`; reconcile; the daemon again; all checked. */
async function crashAt(op: Op, point: string): Promise<void> {
  await prepare(op);
  const daemon = await serve(point);
  const exited = once(daemon.child, 'exit');
  await request(op).then(
    () => undefined,
    () => undefined, // the connection is cut by the kill
  );
  // answered: the kill must follow at once (api:answered), else the point was never reached
  const timer = setTimeout(() => daemon.child.kill('SIGTERM'), 5_000);
  await exited;
  clearTimeout(timer);
  assert.equal(daemon.child.signalCode, 'SIGKILL', `${op} ${point}: the daemon was killed there (${daemon.err()})`);
  const rec = await jy('reconcile');
  assert.equal(rec.code, 0, `${op} ${point}: reconcile: ${rec.out}`);
  const again = await serve();
  let names: string[];
  try {
    const api = createRemoteService(url());
    const all = await api.list();
    for (const j of all)
      assert.ok(j.state === 'stopped' || j.state === 'running', `${op} ${point}: ${j.name} is ${j.state}`);
    names = all.map((j) => j.name);
    const jail = all.find((j) => j.name === JAIL);
    if (jail && (SOAK || point.startsWith('api:') || jail.state === 'running')) {
      if (jail.state !== 'running') assert.ok((await api.start([JAIL])).ok, `${op} ${point}: starts through the API`);
      assert.ok((await api.stop([JAIL])).ok, `${op} ${point}: stops through the API`);
    }
  } finally {
    await stopDaemon(again.child);
  }
  // the daemon is gone too: nothing of this state folder may run or stay mounted
  assertNoLeaks(baseline, state);
  assertNothingHalfDone(state, names, `${op} ${point}`);
  coverage.covered(`daemon ${op}`, point);
}

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-crashd-'));
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
});

after(async () => {
  if ((await stateOf(JAIL)) !== '(none)') await jy('remove', JAIL);
  await jy('reconcile');
  coverage.print();
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

const api = CRASH_POINTS.api;
const plan: Record<Op, readonly string[]> = {
  create: [...api, ...CRASH_POINTS.create],
  start: [...api, ...CRASH_POINTS.start],
  stop: [...api, ...CRASH_POINTS.stop],
  remove: [...api, ...CRASH_POINTS.stop, ...CRASH_POINTS.remove],
};
const ci: Record<Op, readonly string[]> = {
  create: ['jail.create:recorded'],
  start: ['api:received', 'create:done'],
  stop: ['remove:begin'],
  remove: ['jail.remove:forgotten'],
};

test('the daemon killed during API-driven create, start, stop and remove, then reconcile and restarted: nothing leaks, the jail works', {
  timeout: 1_800_000,
}, async () => {
  for (const op of ['create', 'start', 'stop', 'remove'] as const) {
    coverage.declare(`daemon ${op}`, plan[op]);
    for (const point of SOAK ? plan[op] : ci[op]) await crashAt(op, point);
  }
  assert.ok(coverage.count >= (SOAK ? 59 : 5));
});
