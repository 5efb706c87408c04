// Two independent state folders on one host (two installs, or two test suites): CLI processes
// of both create, start, stop and reconcile at the same time on the one shared bridge. No
// jail of one is touched by the other, one address is one stack (one host-wide claim
// registry: a second jail with the same addresses joins the holder's network namespace, as
// jail(8)'s jails share the host's), and each side's leak check sees only its own objects,
// also while the other side's jails run and after its own folder is gone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { cliFor, type CliResult } from '../helpers/cli.ts';
import { stateTag } from '../../src/platform/linux/paths.ts';

const BIN = join(import.meta.dirname, '../../bin/jailyard.js');

let A: string;
let B: string;
let baseline: SystemSnapshot;
const jyA = cliFor(() => A);
const jyB = cliFor(() => B);

/** The CLI as a separate process (the two sides really run at the same time). */
function cli(state: string, ...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, '--state', state, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

async function states(jy: (...a: string[]) => Promise<CliResult>): Promise<Record<string, string>> {
  const r = await jy('ls', '-a', '--json', 'name', 'state');
  const list = (JSON.parse(r.stdout) as { 'jail-information': { jail: { name: string; state: string }[] } })[
    'jail-information'
  ].jail;
  return Object.fromEntries(list.map((j) => [j.name, j.state]));
}

const pidInTag = (pid: number, tag: string) => {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`/jy-${tag}-`);
  } catch {
    return false;
  }
};

const netnsOf = (state: string) =>
  readdirSync('/run/netns').filter((n) => n.startsWith(`jy-${stateTag(`${state}/jails/x`)}-`));

before(async () => {
  baseline = snapshot();
  A = mkdtempSync(join(tmpdir(), 'jy-two-a-'));
  B = mkdtempSync(join(tmpdir(), 'jy-two-b-'));
  assert.notEqual(stateTag(`${A}/jails/x`), stateTag(`${B}/jails/x`), 'two folders, two tags');
  const made = await Promise.all([
    cli(A, 'skel', 'create', 'host', '--from', '/'),
    cli(B, 'skel', 'create', 'host', '--from', '/'),
  ]);
  for (const r of made) assert.equal(r.code, 0, r.stderr);
  // the same names on both sides: a jail is its state folder's, whatever it is called
  const created = await Promise.all([
    cli(A, 'create', 'w1', 'skeleton=host', 'persist', 'ip4.addr=198.51.100.144/24', 'exec.prestart=sleep 0.5'),
    cli(B, 'create', 'w1', 'skeleton=host', 'persist', 'ip4.addr=198.51.100.145/24', 'exec.prestart=sleep 0.5'),
    cli(A, 'create', 'w2', 'skeleton=host', 'persist', 'ip4.addr=198.51.100.146/24'),
    cli(B, 'create', 'w2', 'skeleton=host', 'persist', 'ip4.addr=198.51.100.147/24'),
    // both want .148
    cli(A, 'create', 'same', 'skeleton=host', 'persist', 'ip4.addr=198.51.100.148/24', 'exec.prestart=sleep 0.3'),
    cli(B, 'create', 'same', 'skeleton=host', 'persist', 'ip4.addr=198.51.100.148/24', 'exec.prestart=sleep 0.3'),
  ]);
  for (const r of created) assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await Promise.all([jyA('remove', 'w1', 'w2', 'same'), jyB('remove', 'w1', 'w2', 'same')]);
  assertNoLeaks(baseline, A);
  assertNoLeaks(baseline, B);
  rmSync(A, { recursive: true, force: true });
  rmSync(B, { recursive: true, force: true });
});

test('both folders start, reconcile and stop at the same time; neither touches the other', {
  timeout: 120_000,
}, async () => {
  const started = await Promise.all([cli(A, 'start', '-p', '2', 'w1', 'w2'), cli(B, 'start', '-p', '2', 'w1', 'w2')]);
  for (const r of started) assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(netnsOf(A).length, 2);
  assert.deepEqual(netnsOf(B).length, 2);

  // reconcile on each side while the other stops and starts a jail of its own
  const busy = await Promise.all([
    cli(A, 'reconcile', '--json'),
    cli(B, 'stop', 'w2'),
    cli(B, 'reconcile', '--json'),
    cli(A, 'restart', 'w2'),
  ]);
  for (const r of busy) assert.equal(r.code, 0, r.stderr);
  for (const r of [busy[0]!, busy[2]!]) {
    const report = JSON.parse(r.stdout) as { removed: unknown[]; recovered: string[] };
    assert.deepEqual(report.removed, [], 'reconcile removes nothing of a running jail, its own or the other side');
    assert.deepEqual(report.recovered, []);
  }
  assert.deepEqual(await states(jyA), { w1: 'running', w2: 'running', same: 'stopped' });
  assert.deepEqual(await states(jyB), { w1: 'running', w2: 'stopped', same: 'stopped' });
  assert.equal(netnsOf(A).length, 2, "A's jails keep their network");
  assert.equal(netnsOf(B).length, 1);

  // --all would also take what no folder on the host claims, but nothing of A, which is still
  // there (a dry run: other runs on this host may have objects of their own)
  const all = await cli(B, 'reconcile', '--all', '--dry-run', '--json');
  assert.equal(all.code, 0, all.stderr);
  const tagA = stateTag(`${A}/jails/x`);
  const wouldGo = (JSON.parse(all.stdout) as { removed: { kind: string; id: string | number }[] }).removed;
  const ofA = wouldGo.filter((r) => String(r.id).includes(tagA) || (r.kind === 'pids' && pidInTag(Number(r.id), tagA)));
  assert.deepEqual(ofA, [], "reconcile --all leaves the other folder's jails alone");

  // each side's leak check sees only its own: B's running jails are no leak of A's
  const stopA = await jyA('stop', 'w1', 'w2');
  assert.equal(stopA.code, 0, stopA.stderr);
  assertNoLeaks(baseline, A);
  assert.deepEqual(await states(jyB), { w1: 'running', w2: 'stopped', same: 'stopped' });
  const stopB = await jyB('stop', 'w1');
  assert.equal(stopB.code, 0, stopB.stderr);
  assertNoLeaks(baseline, B);
});

test('one address wanted by both folders: both jails run on one shared stack, which goes with the last', {
  timeout: 120_000,
}, async () => {
  // jail(8)'s jails without vnet share the host's stack, so two jails may hold one address
  // (ports then conflict as on FreeBSD); on Linux the second jail joins the first one's
  // network namespace, whichever state folder made it (docs/linux.md, "Jails sharing an address")
  const [a, b] = await Promise.all([cli(A, 'start', 'same'), cli(B, 'start', 'same')]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const made = [...netnsOf(A), ...netnsOf(B)].filter((n) => !['w1', 'w2'].some((w) => n.endsWith(`-${w}`)));
  const shared = readdirSync('/run/jailyard/shared').filter((n) => made.includes(n));
  assert.equal(shared.length, 1, `one shared netns for both jails: ${JSON.stringify({ made, shared })}`);
  const members = readdirSync(join('/run/jailyard/shared', shared[0]!));
  assert.ok(members.length >= 1, 'the jail that joined is recorded in it');
  // the jail that made it stops first: the other keeps the stack
  assert.equal((await jyA('stop', 'same')).code, 0);
  assert.equal((await states(jyB)).same, 'running');
  assert.ok(existsSync(join('/run/netns', shared[0]!)), 'the stack stays while a jail is in it');
  assert.equal((await jyB('stop', 'same')).code, 0);
  assertNoLeaks(baseline, A);
  assertNoLeaks(baseline, B);
  assert.ok(!existsSync(join('/run/netns', shared[0]!)), 'the stack goes with the last jail');
  assert.ok(!existsSync(join('/run/jailyard/shared', shared[0]!)), 'and so does its record');
});

test("the leak check of a folder that is gone still looks only at that folder's objects", {
  timeout: 60_000,
}, async () => {
  assert.equal((await jyB('start', 'w2')).code, 0);
  const gone = mkdtempSync(join(tmpdir(), 'jy-two-gone-'));
  rmSync(gone, { recursive: true });
  assertNoLeaks(baseline, gone);
  assert.equal((await jyB('stop', 'w2')).code, 0);
});

test('a second folder whose path has the same tag is refused before it makes anything, naming the first', {
  timeout: 60_000,
}, async () => {
  // A claimed its tag when its jails started; find another path with the same 4-hex tag
  const tag = stateTag(`${A}/jails/x`);
  let twin = '';
  for (let i = 0; !twin; i++) {
    const p = join(tmpdir(), `jy-two-twin-${i}`);
    if (stateTag(`${p}/jails/x`) === tag && !existsSync(p)) twin = p;
  }
  mkdirSync(twin);
  const jyT = cliFor(() => twin);
  try {
    assert.equal((await jyT('skel', 'create', 'host', '--from', '/')).code, 0);
    assert.equal((await jyT('create', 't1', 'skeleton=host', 'persist', 'ip4.addr=198.51.100.149/24')).code, 0);
    assert.equal((await jyT('create', 't2', 'skeleton=host', 'persist')).code, 0);
    for (const name of ['t1', 't2']) {
      const r = await jyT('start', name);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`same tag ${tag}.*remove ${A.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    }
    assert.deepEqual(await states(jyT), { t1: 'stopped', t2: 'stopped' });
    assertNoLeaks(baseline, twin);
    assert.equal((await jyT('remove', 't1', 't2')).code, 0);
  } finally {
    rmSync(twin, { recursive: true, force: true });
  }
});
