// Crash recovery: a jailyard process killed in the middle of a start leaves the jail
// "starting" with its addresses and mounts made; `jailyard reconcile` undoes exactly those,
// in reverse order, from what the store recorded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binArgs, cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;

const jy = cliFor(() => state);

const mountsBelow = (dir: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(`${dir}/`));

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-cli-reconcile-'));
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
});

after(async () => {
  await jy('reconcile');
  await jy('remove', '-l', 'test=reconcile');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('reconcile finishes a start whose process was killed mid-way (kill -9)', { timeout: 120_000 }, async () => {
  let r = await jy(
    'create',
    'crash1',
    'skeleton=host',
    'persist',
    'ip4.addr=198.51.100.41/24',
    'meta.test=reconcile',
    `exec.prestart=touch ${state}/in-prestart; sleep 60`,
  );
  assert.equal(r.code, 0, r.stderr);

  // a separate jailyard process starts the jail; it is killed while exec.prestart runs,
  // after the addresses and mounts steps were made and recorded
  const child = spawn(process.execPath, binArgs(state, 'start', 'crash1'), { detached: true, stdio: 'ignore' });
  const jailDir = join(state, 'jails/crash1');
  try {
    await until('the prestart hook', () => {
      try {
        readFileSync(join(state, 'in-prestart'));
        return true;
      } catch {
        return false;
      }
    });
  } finally {
    process.kill(-child.pid!, 'SIGKILL'); // the CLI, its hook shell and the sleep
  }
  await new Promise((res) => child.once('exit', res));

  assert.ok(mountsBelow(jailDir).length > 0, 'the killed start left mounts');
  r = await jy('ls', '-a', '-j', 'crash1', 'state');
  assert.equal(r.stdout, 'starting\n');

  r = await jy('stop', 'crash1');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /jail "crash1": the jail is starting .*run jailyard reconcile/);

  r = await jy('reconcile', '--dry-run', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).recovered, ['crash1']);
  assert.ok(mountsBelow(jailDir).length > 0, '--dry-run changes nothing');

  r = await jy('reconcile', '--json');
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.deepEqual(report.recovered, ['crash1']);
  assert.deepEqual(report.failed, []);
  assert.deepEqual(mountsBelow(jailDir), [], 'every mount was undone');
  r = await jy('ls', '-a', '-j', 'crash1', 'state', 'jid');
  assert.equal(r.stdout, 'stopped 0\n');

  // and the jail starts normally again afterwards
  r = await jy('set', 'crash1', 'exec.prestart=true');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'crash1');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('remove', 'crash1');
  assert.equal(r.code, 0, r.stderr);
  assertNoLeaks(baseline, state);
});

test("reconcile stops a jail whose pid 1 died behind jailyard's back", { timeout: 120_000 }, async () => {
  let r = await jy('create', 'crash2', 'skeleton=host', 'persist', 'meta.test=reconcile');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'crash2');
  assert.equal(r.code, 0, r.stderr);
  const { openStore } = await import('../../src/store/sqlite.ts');
  const store = openStore(state);
  const pid = store.requireJail('crash2').runtime!.create!.initPid;
  store.close();
  process.kill(pid, 'SIGKILL');
  await until('pid 1 to die', () => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  });
  r = await jy('start', 'crash2');
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /jail "crash2": cannot start: it is recorded as running but its processes are gone .*run jailyard reconcile/,
  );
  r = await jy('reconcile', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).recovered, ['crash2']);
  assert.deepEqual(mountsBelow(join(state, 'jails/crash2')), []);
  r = await jy('ls', '-a', '-j', 'crash2', 'state');
  assert.equal(r.stdout, 'stopped\n');
  r = await jy('remove', 'crash2');
  assert.equal(r.code, 0, r.stderr);
  assertNoLeaks(baseline, state);
});
