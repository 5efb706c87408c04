// Issue #11 item 13 (the exec part): a program entered into the jail learns nothing of the
// host: JPATH is "/" there (jail(8)'s variable, the jail's root as the jail sees it), the
// environment is the clean one, the working directory the jail's, and no host path, cgroup
// or host pid shows in anything the jail can read of the entered process. Host hooks keep
// the real path, as jail(8) gives it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binArgs, binFor, cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);
/** The CLI binary, run from a host folder of the operator's, with host variables set. */
const jyBin = binFor(
  () => state,
  () => ({ cwd: state, env: { ...process.env, JY_HOST_SECRET: 'host-only', TERM: 'xterm' } }),
);

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-execenv-'));
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
});

after(async () => {
  await jy('remove', '-l', 'test=execenv');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('inside the jail JPATH is /, the environment is the clean one, nothing names the host', {
  timeout: 120_000,
}, async () => {
  const hostSeen = join(state, 'prestart-env');
  let r = await jy(
    'create',
    'env1',
    'skeleton=host',
    'persist',
    'meta.test=execenv',
    `exec.prestart=env > ${hostSeen}`,
    'exec.start=env > /var/tmp/start-env',
  );
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'env1');
  assert.equal(r.code, 0, r.stderr);
  const jailPath = join(state, 'jails/env1/root');

  // host hooks: jail(8)'s JPATH, the host path
  assert.match(readFileSync(hostSeen, 'utf8'), new RegExp(`^JPATH=${jailPath}$`, 'm'));

  for (const env of [jyBin('exec', 'env1', 'env'), jyBin('exec', 'env1', 'cat', '/var/tmp/start-env')]) {
    const vars = Object.fromEntries(
      env
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    assert.equal(vars.JPATH, '/');
    assert.equal(vars.JNAME, 'env1');
    assert.match(vars.JID ?? '', /^\d+$/);
    // only these: nothing of the caller's environment (sh adds PWD)
    const allowed = ['PATH', 'HOME', 'TERM', 'USER', 'LOGNAME', 'SHELL', 'JID', 'JNAME', 'JPATH', 'PWD'];
    assert.deepEqual(
      Object.keys(vars).filter((k) => !allowed.includes(k)),
      [],
      env,
    );
    assert.doesNotMatch(env, new RegExp(state.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'a host path reached the jail');
  }
  // the working directory is the jail's, not the operator's host folder
  assert.equal(jyBin('exec', 'env1', 'pwd').trim(), '/');
  // the entered process and its parent: no host path, cgroup or host pid in what the jail sees
  const seen = jyBin(
    'exec',
    'env1',
    'sh',
    '-c',
    'cat /proc/self/cmdline | tr "\\0" " "; echo; cat /proc/$$/environ | tr "\\0" "\\n"; readlink /proc/self/cwd /proc/self/root; echo ppid=$PPID',
  );
  assert.doesNotMatch(seen, /jails\/env1|jy-enter|cgroup|jy-/, seen);
  assert.match(seen, /ppid=0/, "the parent (jy-enter) is outside the jail's pid namespace");

  r = await jy('remove', 'env1');
  assert.equal(r.code, 0, r.stderr);
});

test("the jy-enter child blanks its argument area before the jail's program runs", { timeout: 60_000 }, async () => {
  // a watcher inside the jail reads every process's cmdline while execs come and go: the
  // jy-enter child is in the jail's pid namespace from the fork to the exec of the program
  let r = await jy('create', 'env2', 'skeleton=host', 'persist', 'meta.test=execenv');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'env2');
  assert.equal(r.code, 0, r.stderr);
  const watcher = [
    'import os, time',
    'seen = set()',
    'end = time.time() + 60',
    'while time.time() < end and not os.path.exists("/tmp/stop-watch"):',
    '    for p in os.listdir("/proc"):',
    '        if p.isdigit():',
    '            try: seen.add(open("/proc/%s/cmdline" % p, "rb").read())',
    '            except OSError: pass',
    'print("\\n".join(sorted(s.replace(b"\\0", b" ").decode("utf8", "replace") for s in seen)))',
  ].join('\n');
  const w = spawn(process.execPath, binArgs(state, 'exec', 'env2', 'python3', '-c', watcher), {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  w.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const done = new Promise((res) => w.on('exit', res));
  await new Promise((res) => setTimeout(res, 1500));
  for (let i = 0; i < 6; i++) jyBin('exec', 'env2', 'true');
  jyBin('exec', 'env2', 'touch', '/tmp/stop-watch');
  await done;
  assert.match(out, /python3/, 'the watcher saw the processes');
  assert.doesNotMatch(out, /--target|--cgroup|--keep-caps|jails\/env2|\/sys\/fs\/cgroup/, out);
  r = await jy('remove', 'env2');
  assert.equal(r.code, 0, r.stderr);
});
