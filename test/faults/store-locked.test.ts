// The store file locked by another process (a write transaction held open, with a change in
// it) or on a read-only mount: commands wait a bounded time and fail naming the file and what
// to do; nothing is half-applied; when the holder goes (even killed mid-transaction), the
// normal commands work and the store is intact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import Database from 'better-sqlite3';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { cliFor, hookWaitingFor } from '../helpers/cli.ts';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/jailyard.js');
let state: string;
let baseline: SystemSnapshot;
const cli = cliFor(() => state);
const BUSY_MS = 400;

async function jy(...args: string[]): Promise<{ code: number; out: string; ms: number }> {
  const t0 = Date.now();
  const r = await cli(...args);
  return { code: r.code, out: r.stdout + r.stderr, ms: Date.now() - t0 };
}

/** Another process holding the write lock with an uncommitted change in it. */
async function lockHolder(db: string): Promise<ChildProcess> {
  const code = `
    const db = new (require('better-sqlite3'))(process.argv[1]);
    db.exec('BEGIN IMMEDIATE');
    db.exec("UPDATE jails SET meta = 'half=applied'");
    process.stdout.write('locked\\n');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', code, db], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  assert.equal(chunk.toString().trim(), 'locked');
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = once(child, 'exit');
  process.kill(child.pid!, 'SIGKILL');
  await gone;
}

/**
 * `jailyard VERB k1` in a process of its own (its pid is the jail's recorded owner), with a
 * 300 ms store wait: once its output matches `at` (a hook that waits for `go`), another
 * process locks the store and then writes `go`; the lock holder is killed once the CLI
 * exited. Its exit code and output.
 */
async function lockedDuring(verb: string, at: RegExp, go: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [BIN, '--state', state, verb, 'k1'], {
    env: { ...process.env, JAILYARD_STORE_BUSY_MS: '300' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  let holder: Promise<ChildProcess> | undefined;
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
    if (!holder && at.test(out))
      holder = lockHolder(join(state, 'jailyard.db')).then((c) => {
        writeFileSync(go, '');
        return c;
      });
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.ok(holder, out);
  await kill(await holder);
  return { code, out };
}

function integrity(dir: string): string {
  const db = new Database(join(dir, 'jailyard.db'), { readonly: true });
  try {
    return String(db.pragma('integrity_check', { simple: true }));
  } finally {
    db.close();
  }
}

before(async () => {
  process.env.JAILYARD_STORE_BUSY_MS = String(BUSY_MS);
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-faults-lock-'));
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
  const r = await jy('create', 'k1', 'skeleton=host', 'persist', 'meta.tier=gold', 'exec.start=sleep 1000 &');
  assert.equal(r.code, 0, r.out);
});

after(async () => {
  delete process.env.JAILYARD_STORE_BUSY_MS;
  spawnSync('umount', [state]);
  // one at a time: a batch naming a jail that is gone removes none
  for (const name of ['k1', 'k2']) await jy('remove', name);
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('write lock held by another process: bounded wait, clear error, nothing half-applied', {
  timeout: 60_000,
}, async () => {
  const holder = await lockHolder(join(state, 'jailyard.db'));
  try {
    const locked =
      /step store: the store .*jailyard\.db is locked by another process \(waited 400 ms\); nothing was changed/;
    for (const args of [
      ['create', 'k2', 'skeleton=host'],
      ['set', 'k1', 'meta.tier=silver'],
      ['start', 'k1'],
    ]) {
      const r = await jy(...args);
      assert.notEqual(r.code, 0, `${args.join(' ')} fails while the store is locked`);
      assert.match(r.out, locked, args.join(' '));
      assert.ok(r.ms >= BUSY_MS && r.ms < BUSY_MS + 3000, `${args.join(' ')} waited ${r.ms} ms (bounded)`);
    }
    // readers are not blocked by a writer (WAL): the last committed state
    const ls = await cli('ls', '-a', '--json', 'name', 'state');
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /"k1"/);
    assert.doesNotMatch(ls.stdout, /k2/);
  } finally {
    // killed in the middle of its transaction: its change must vanish
    await kill(holder);
  }
  assert.equal(integrity(state), 'ok');
  const d = await jy('ls', '-a', '--json', 'name', 'meta');
  assert.doesNotMatch(d.out, /half=applied/);
  assert.match(d.out, /tier=gold/);
  assertNoLeaks(baseline, state);
  // recovery: the normal commands
  for (const args of [
    ['create', 'k2', 'skeleton=host'],
    ['set', 'k1', 'meta.tier=silver'],
    ['start', 'k1'],
    ['stop', 'k1'],
  ]) {
    const r = await jy(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.out}`);
  }
  assertNoLeaks(baseline, state);
});

test('store on a read-only mount: clear error naming the file, nothing changed; writable again, all works', {
  timeout: 60_000,
}, async () => {
  assert.equal(spawnSync('mount', ['--bind', state, state]).status, 0);
  try {
    assert.equal(spawnSync('mount', ['-o', 'remount,bind,ro', state]).status, 0);
    for (const args of [
      ['set', 'k1', 'meta.tier=bronze'],
      ['start', 'k1'],
      ['remove', 'k2'],
    ]) {
      const r = await jy(...args);
      assert.notEqual(r.code, 0, `${args.join(' ')} fails on a read-only store`);
      assert.match(
        r.out,
        /the store .*jailyard\.db cannot be written .*make .*jailyard\.db and its folder writable/,
        r.out,
      );
    }
  } finally {
    assert.equal(spawnSync('umount', [state]).status, 0);
  }
  assert.equal(integrity(state), 'ok');
  const d = await jy('ls', '-a', '--json', 'name', 'meta');
  assert.match(d.out, /tier=silver/);
  assert.match(d.out, /"k2"/);
  for (const args of [
    ['set', 'k1', 'meta.tier=bronze'],
    ['remove', 'k2'],
  ]) {
    const r = await jy(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.out}`);
  }
});

test('store locked between two steps of a start: the start fails naming reconcile, which recovers everything', {
  timeout: 60_000,
}, async () => {
  // the hook waits (up to 30 s) for the test's word that the store is locked: a fixed sleep
  // lost the race to the lock holder's own Node start on a loaded machine
  const go = join(state, 'locked');
  const set = await jy('set', 'k1', `exec.prestart=${hookWaitingFor(go, 30)}`);
  assert.equal(set.code, 0, set.out);
  // the CLI in a process of its own (its pid is the jail's recorded owner); exec.prestart
  // runs (mounts and addresses are made and recorded): lock the store before the step can
  // be recorded
  const { code, out } = await lockedDuring('start', /k1: exec\.prestart/, go);
  assert.notEqual(code, 0);
  assert.match(out, /is locked by another process \(waited 300 ms\)/, out);
  assert.match(out, /run jailyard reconcile/, out);
  // the owner is gone: reconcile finishes what the start left
  const rec = await jy('reconcile');
  assert.equal(rec.code, 0, rec.out);
  const ls = await cli('ls', '-a', '--json', 'name', 'state');
  assert.match(ls.stdout, /"name":\s*"k1",\s*"state":\s*"stopped"/);
  assertNoLeaks(baseline, state);
  for (const args of [
    ['start', 'k1'],
    ['stop', 'k1'],
  ]) {
    const r = await jy(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.out}`);
  }
  assertNoLeaks(baseline, state);
});

test('store locked between two steps of a stop: the stop fails naming reconcile, which finishes it', {
  timeout: 60_000,
}, async () => {
  const go = join(state, 'locked-stop');
  const set = await jy('set', 'k1', 'exec.prestart=', `exec.prestop=${hookWaitingFor(go, 30)}`);
  assert.equal(set.code, 0, set.out);
  const start = await jy('start', 'k1');
  assert.equal(start.code, 0, start.out);
  // exec.prestop runs (the stop is recorded as begun): lock the store before its next step
  const { code, out } = await lockedDuring('stop', /k1: exec\.prestop/, go);
  assert.notEqual(code, 0, out);
  assert.match(out, /is locked by another process \(waited 300 ms\)/, out);
  assert.match(out, /run jailyard reconcile/, out);
  const mid = await cli('ls', '-a', '--json', 'name', 'state');
  assert.match(mid.stdout, /"name":\s*"k1",\s*"state":\s*"stopping"/, 'left stopping, for reconcile');
  // the owner is gone: reconcile finishes the stop from the last recorded step (a hook whose
  // end could not be recorded runs again: the go file is still there)
  const rec = await jy('reconcile');
  assert.equal(rec.code, 0, rec.out);
  rmSync(go, { force: true });
  const ls = await cli('ls', '-a', '--json', 'name', 'state');
  assert.match(ls.stdout, /"name":\s*"k1",\s*"state":\s*"stopped"/);
  assertNoLeaks(baseline, state);
  const again = await jy('set', 'k1', 'exec.prestop=');
  assert.equal(again.code, 0, again.out);
  for (const args of [
    ['start', 'k1'],
    ['stop', 'k1'],
  ]) {
    const r = await jy(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.out}`);
  }
  assertNoLeaks(baseline, state);
});
