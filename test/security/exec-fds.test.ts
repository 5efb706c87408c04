// Issue #11 item 3 (the runc CVE-2024-21626 class): a descriptor the operator's shell holds
// open (`exec 200</`) must never reach a program in the jail, where /proc/self/fd/200 would
// be the host's root. Checked on every way a program gets into a jail: `jailyard exec`, and
// the exec.start / command / exec.stop hooks (runInJail), with jy-spawner and without it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { spawnSync, type StdioOptions } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor, runBin, type CliResult } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;
let hostRoot: number;
const jy = cliFor(() => state);
/** jy-spawner on (the default) and off (node's own spawn). */
const SPAWNER_MODES: Record<string, string>[] = [{ JAILYARD_SPAWNER: '1' }, { JAILYARD_SPAWNER: '0' }];

/** The CLI binary, run like `exec 200</; jailyard ...` from a shell: fd 200 is the host's /. */
function jyWithFd200(args: string[], env: Record<string, string> = {}): CliResult {
  const stdio: StdioOptions = ['ignore', 'pipe', 'pipe', ...Array<'ignore'>(197).fill('ignore'), hostRoot];
  return runBin(state, args, { stdio, timeout: 60_000, env: { ...process.env, ...env } });
}

/** The fds a `ls /proc/self/fd` listed: 0-2, and 3 (ls's own directory). */
function assertOnlyStdio(listing: string, where: string): void {
  const fds = listing.split(/\s+/).filter(Boolean).map(Number);
  assert.ok(fds.includes(0) && fds.includes(2), `${where}: no listing: ${listing}`);
  assert.deepEqual(
    fds.filter((fd) => fd > 3),
    [],
    `${where}: descriptors crossed into the jail: ${listing}`,
  );
}

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-execfds-'));
  hostRoot = openSync('/', 'r');
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
});

after(async () => {
  await jy('remove', '-l', 'test=execfds');
  closeSync(hostRoot);
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test("jailyard exec: a descriptor of the caller (fd 200 on the host's /) does not cross", {
  timeout: 120_000,
}, async () => {
  let r = await jy('create', 'fds1', 'skeleton=host', 'persist', 'meta.test=execfds');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'fds1');
  assert.equal(r.code, 0, r.stderr);
  // the harness itself passes fd 200: the program it runs on the host sees it
  const control = spawnSync('ls', ['/proc/self/fd'], {
    stdio: ['ignore', 'pipe', 'pipe', ...Array<'ignore'>(197).fill('ignore'), hostRoot],
    encoding: 'utf8',
  });
  assert.match(control.stdout, /^200$/m, 'the test passes fd 200 on');

  for (const spawnerEnv of SPAWNER_MODES) {
    const ls = jyWithFd200(['exec', 'fds1', 'ls', '/proc/self/fd'], spawnerEnv);
    assert.equal(ls.code, 0, ls.stderr);
    assertOnlyStdio(ls.stdout, 'jailyard exec');
    const cat = jyWithFd200(['exec', 'fds1', 'cat', '/proc/self/fd/200/etc/hostname'], spawnerEnv);
    assert.notEqual(cat.code, 0, `the host's root was reachable: ${cat.stdout}`);
    assert.equal(cat.stdout, '');
    // nor through the process's parent: jy-enter is outside the jail's pid namespace
    const parent = jyWithFd200(['exec', 'fds1', 'sh', '-c', 'ls /proc/*/fd/200 2>/dev/null | wc -l'], spawnerEnv);
    assert.equal(parent.stdout.trim(), '0');
  }
  r = await jy('remove', 'fds1');
  assert.equal(r.code, 0, r.stderr);
});

test('exec.start, command and exec.stop hooks: no descriptor of the caller crosses (with and without jy-spawner)', {
  timeout: 180_000,
}, async () => {
  for (const [n, spawnerEnv] of SPAWNER_MODES.entries()) {
    const name = `fds${n + 2}`;
    let r = await jy(
      'create',
      name,
      'skeleton=host',
      'persist',
      'meta.test=execfds',
      'exec.start=ls /proc/self/fd > /var/tmp/fds-start',
      'command=ls /proc/self/fd > /var/tmp/fds-command',
      'exec.stop=ls /proc/self/fd > /var/tmp/fds-stop',
    );
    assert.equal(r.code, 0, r.stderr);
    let b = jyWithFd200(['start', name], spawnerEnv);
    assert.equal(b.code, 0, b.stderr);
    b = jyWithFd200(['stop', name], spawnerEnv);
    assert.equal(b.code, 0, b.stderr);
    r = await jy('start', name);
    assert.equal(r.code, 0, r.stderr);
    for (const hook of ['start', 'command', 'stop']) {
      const seen = jyWithFd200(['exec', name, 'cat', `/var/tmp/fds-${hook}`]);
      assert.equal(seen.code, 0, `${hook}: ${seen.stderr}`);
      assertOnlyStdio(seen.stdout, `${hook} (${JSON.stringify(spawnerEnv)})`);
    }
    r = await jy('remove', name);
    assert.equal(r.code, 0, r.stderr);
  }
});

test("every thin strategy: only fds 0-2 cross, and -t gives a pty of the jail's own devpts", {
  timeout: 180_000,
}, async () => {
  // `full` (a copy of the whole host root) enters the same way: jy-enter joins pid 1
  for (const strategy of ['nullfs', 'basejail', 'overlay']) {
    const name = `fds-${strategy}`;
    let r = await jy('create', name, 'skeleton=host', `skeleton.strategy=${strategy}`, 'persist', 'meta.test=execfds');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('start', name);
    assert.equal(r.code, 0, r.stderr);
    const ls = jyWithFd200(['exec', name, 'ls', '/proc/self/fd']);
    assert.equal(ls.code, 0, ls.stderr);
    assertOnlyStdio(ls.stdout, strategy);
    // -t without a terminal: the pty is the jail's (its devpts), fds 0-2 are its slave
    const t = jyWithFd200([
      'exec',
      '-t',
      name,
      'sh',
      '-c',
      'tty; readlink /proc/self/fd/0 /proc/self/fd/2; ls /proc/self/fd',
    ]);
    assert.equal(t.code, 0, t.stderr);
    const [tty, fd0, fd2, ...fds] = t.stdout.trim().split(/\r?\n/);
    assert.match(tty ?? '', /^\/dev\/pts\/\d+$/, `${strategy}: ${t.stdout}`);
    assert.equal(fd0, tty);
    assert.equal(fd2, tty);
    assertOnlyStdio(fds.join('\n'), `${strategy} -t`);
    r = await jy('remove', name);
    assert.equal(r.code, 0, r.stderr);
  }
});
