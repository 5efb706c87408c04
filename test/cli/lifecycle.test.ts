// The lifecycle through the CLI with real jails: a thin jail on the host's root as
// skeleton, jail(8)'s hook order on start and the reverse on stop, undo of a failed start,
// jexec-like exec, and nothing left behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binFor, cliFor, hostCgroupsOf } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;

const jy = cliFor(() => state);

/** Runs the real binary (a separate process), for verbs whose output is the jail's own. */
const jyBin = binFor(() => state);

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-cli-life-'));
  const r = await jy('skel', 'create', 'host', '--from', '/');
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  // whatever a failed assertion left: stop and remove by the same code paths, then check
  await jy('remove', '-l', 'test=lifecycle');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

function hookWords(log: string): string[] {
  const hooks = [
    'exec.prepare',
    'exec.prestart',
    'exec.created',
    'exec.poststart',
    'exec.prestop',
    'exec.poststop',
    'exec.release',
  ];
  return hooks.map((h) => `${h}=echo ${h} $JNAME $JID >> ${log}`);
}

test("start runs jail(8)'s order, stop the reverse; the jail is isolated and nothing is left", async () => {
  const log = join(state, 'hooks.log');
  let r = await jy(
    'create',
    'life1',
    'skeleton=host',
    'persist',
    'host.hostname=life1.test',
    'ip4.addr=198.51.100.31/24',
    'meta.test=lifecycle',
    'env.greeting=hello',
    'limits.procs=200',
    'limits.cgroup_parent=jy-life-parent',
    ...hookWords(log),
    'exec.start=echo exec.start $JNAME > /tmp/started; echo started-in-jail',
    'exec.stop=echo exec.stop >> /tmp/started',
  );
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'life1');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /life1: started/);

  const lines = readFileSync(log, 'utf8').trim().split('\n');
  assert.deepEqual(
    lines.map((l) => l.split(' ')[0]),
    ['exec.prepare', 'exec.prestart', 'exec.created', 'exec.poststart'],
  );
  const jid = lines[0]!.split(' ')[2];
  assert.ok(Number(jid) > 0, 'JID is set for hooks');
  assert.equal(lines[0]!.split(' ')[1], 'life1', 'JNAME is set for hooks');

  // exec.start ran inside the jail: its /tmp is the jail's own writable part
  assert.equal(readFileSync(join(state, 'jails/life1/root/tmp/started'), 'utf8'), 'exec.start life1\n');

  // inside: the hostname, pid 1, our env and only our own processes
  assert.equal(jyBin('exec', 'life1', 'hostname').trim(), 'life1.test');
  assert.equal(jyBin('exec', 'life1', 'cat', '/run/jailyard/env').trim(), 'greeting=hello');
  // limits: the jail's cgroup sits below its limits.cgroup_parent, with pids.max set
  assert.match(hostCgroupsOf(state, 'life1'), /:pids:.*\/jy-life-parent\/jy-[0-9a-f]{4}-\d+/);
  // inside, a cgroup namespace rooted there: no host path
  assert.match(jyBin('exec', 'life1', 'cat', '/proc/self/cgroup'), /^\d+:pids:\/$/m);
  const comm1 = jyBin('exec', 'life1', 'cat', '/proc/1/comm').trim();
  assert.match(comm1, /tini/);
  const addrs = jyBin('exec', 'life1', 'ip', '-o', '-4', 'addr');
  assert.match(addrs, /198\.51\.100\.31\/24/);
  assert.doesNotMatch(addrs, /192\.0\.2\./, 'the host uplink is not visible');
  // a jailed root cannot write the skeleton nor remount it
  assert.throws(() => jyBin('exec', 'life1', 'touch', '/usr/bin/jy-should-not-exist'), /Read-only file system/);
  assert.throws(
    () => jyBin('exec', 'life1', 'mount', '-o', 'remount,rw', '/usr/bin'),
    /permission denied|Operation not permitted|must be superuser/i,
  );
  assert.equal(existsSync('/usr/bin/jy-should-not-exist'), false);

  // ls: jls forms
  r = await jy('ls', '-j', 'life1', 'name', 'host.hostname', 'meta.test', 'env.greeting', 'meta.missing');
  assert.equal(r.stdout, 'life1 life1.test lifecycle hello \n');
  r = await jy('ls', '--json', '-l', 'test=lifecycle', 'name', 'ip4.addr');
  assert.deepEqual(JSON.parse(r.stdout), {
    __version: '2',
    'jail-information': { jail: [{ name: 'life1', 'ip4.addr': ['198.51.100.31'] }] },
  });

  r = await jy('stop', 'life1');
  assert.equal(r.code, 0, r.stderr);
  const all = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' ')[0]);
  assert.deepEqual(all.slice(4), ['exec.prestop', 'exec.poststop', 'exec.release']);
  assert.equal(readFileSync(join(state, 'jails/life1/root/tmp/started'), 'utf8'), 'exec.start life1\nexec.stop\n');

  r = await jy('ls', '-a', '-j', 'life1', 'state', 'jid');
  assert.equal(r.stdout, 'stopped 0\n');
  r = await jy('remove', 'life1');
  assert.equal(r.code, 0, r.stderr);
  assertNoLeaks(baseline, state);
});

test('a failing exec.prestart undoes the finished steps, newest first, and changes nothing else', async () => {
  const log = join(state, 'fail.log');
  let r = await jy(
    'create',
    'life2',
    'skeleton=host',
    'persist',
    'ip4.addr=198.51.100.32/24',
    'meta.test=lifecycle',
    ...hookWords(log).filter((w) => !w.startsWith('exec.prestart=')),
    'exec.prestart=echo failing >&2; exit 3',
  );
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'life2');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /jail "life2", step exec\.prestart: exec\.prestart command failed \(exited 3\)/);
  assert.match(r.stderr, /failing/, "the failed command's output is shown");
  r = await jy('ls', '-a', '-j', 'life2', 'state', 'jid');
  assert.equal(r.stdout, 'stopped 0\n');
  // exec.prepare finished, so its undo (exec.release) ran; nothing after prestart did
  const lines = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' ')[0]);
  assert.deepEqual(lines, ['exec.prepare', 'exec.release']);
  assertNoLeaks(baseline, state);
  r = await jy('remove', 'life2');
  assert.equal(r.code, 0, r.stderr);
});

test('bad input names the place and creates nothing', async () => {
  let r = await jy('create', 'life3', 'skeleton=host', 'persit');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /jail "life3", parameter "persit": unknown parameter "persit"; did you mean "persist"/);
  r = await jy('create', 'life3', 'skeleton=host', 'limits.memory=lots');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /limits\.memory/);
  // path=/ alone is a jail without a path (the implicit host-root skeleton); with a skeleton
  // its mounts would go onto the host's own /
  r = await jy('create', 'life3', 'path=/', 'skeleton=host', 'persist');
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /jail "life3", parameter "path": path = \/ with a skeleton would mount over the host's own tree/,
  );
  r = await jy('ls', '-a', '-j', 'life3');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /life3/);
  assert.equal(existsSync(join(state, 'jails/life3')), false);
});

test('remove --if-revision: a stale revision changes nothing (the jail keeps running); the current one removes it', async () => {
  let r = await jy('create', 'life3', 'skeleton=host', 'persist', 'meta.test=lifecycle');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'life3');
  assert.equal(r.code, 0, r.stderr);
  const revision = () => Number(JSON.parse(r.stdout)['jail-information'].jail[0].revision);
  r = await jy('ls', '-j', 'life3', '--json', 'revision');
  const rev = revision();
  assert.ok(Number.isInteger(rev), r.stdout);
  // someone else writes first
  r = await jy('set', 'life3', 'meta.owner=other');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('remove', 'life3', '--if-revision', String(rev));
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /JY_ERR_REVISION_CONFLICT|revision conflict/);
  r = await jy('ls', '-j', 'life3', '--json', 'revision');
  assert.equal(r.code, 0, 'still there, still running');
  r = await jy('remove', 'life3', '--if-revision', String(revision()));
  assert.equal(r.code, 0, r.stderr);
  r = await jy('ls', '-a', '-j', 'life3');
  assert.notEqual(r.code, 0, 'removed');
});
