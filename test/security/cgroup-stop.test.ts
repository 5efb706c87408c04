// Issue #11 item 10: a jail whose root made groups below its own (a cgroup namespace of its
// own + a mount of the hierarchy + mkdir, or anything else that puts groups or processes
// there) is still stopped, and reconcile still removes such a group after a crash.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createLinuxDriver } from '../../src/platform/linux/index.ts';
import { parentDirs } from '../../src/platform/linux/cgroups.ts';
import { stateTag } from '../../src/platform/linux/paths.ts';
import { waitFor } from '../../src/platform/linux/proc.ts';
import type { CreateFacts, MountFacts, NetworkFacts } from '../../src/platform/driver.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { makeTestJail, type TestJail } from '../platform/linux/fixture.ts';

/** The `sleep` a jail's shell put in the background, in cgroup GROUP: the shell has printed
 * its pid and returned, but the child may not have exec'd sleep yet (its comm is still sh):
 * looked for up to 2 s. */
async function sleeperIn(group: string): Promise<number | undefined> {
  const comm = (p: number) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  let found: number | undefined;
  await waitFor(
    () => {
      found = readFileSync(`${group}/cgroup.procs`, 'utf8')
        .trim()
        .split('\n')
        .map(Number)
        .find((p) => comm(p) === 'sleep');
      return found !== undefined;
    },
    2000,
    25,
  );
  return found;
}

const PREFIX = 'jysecgrp';
const CGPARENT = `jailyard-${PREFIX}`;
const driver = createLinuxDriver({ cgroupParent: CGPARENT });

const pidsGroup = (facts: CreateFacts) => facts.cgroups.find((d) => d.includes('/pids/')) ?? facts.cgroups[0]!;
/** The fixture's jail with its state folder inside the fixture's own temp folder, so the
 * leak check can look at exactly this test's objects (marker: that folder). */
function ownJail(): { jail: TestJail; marker: string } {
  const jail = makeTestJail(PREFIX);
  const marker = dirname(jail.ctx.path);
  jail.ctx.stateDir = `${marker}/jails/${jail.ctx.name}`;
  return { jail, marker };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('security: a jail with groups of its own below its cgroup', () => {
  let base: SystemSnapshot;
  let jail: TestJail;
  let net: NetworkFacts | undefined;
  let mounts: MountFacts | undefined;
  let facts: CreateFacts | undefined;
  let marker: string;

  before(async () => {
    base = snapshot();
    ({ jail, marker } = ownJail());
    net = await driver.setupNetwork(jail.ctx);
    mounts = await driver.mount(jail.ctx, jail.plan);
    facts = await driver.create(jail.ctx, net, { maxProcs: 64 });
  });

  after(async () => {
    if (facts) await driver.destroy(jail.ctx, facts, 500).catch(() => {});
    if (mounts) await driver.unmount(jail.ctx, mounts);
    if (net) await driver.teardownNetwork(jail.ctx, net);
    assertNoLeaks(base, marker);
    jail.cleanup();
  });

  test('stop removes child groups (made from inside and from the host) and ends their processes', {
    timeout: 60_000,
  }, async () => {
    // the attack of the issue, from inside: a cgroup namespace of its own, the pids
    // hierarchy mounted, a child group made and a process moved in. A seccomp filter that
    // denies unshare(CLONE_NEWUSER) (or a dropped capability) stops it earlier: tolerated,
    // the host-side part below makes the same state either way.
    const inside = await driver.runInJail(jail.ctx, facts!, [
      '/bin/sh',
      '-c',
      [
        'mkdir -p /tmp/cg',
        'unshare -UrmC --propagation private sh -c "mount -t cgroup -o pids none /tmp/cg && mkdir /tmp/cg/evil && ' +
          'echo \\$\\$ > /tmp/cg/evil/cgroup.procs && echo moved" </dev/null 2>&1 || true',
      ].join('; '),
    ]);
    const insideWorked = inside.stdout.includes('moved');
    if (insideWorked) assert.ok(existsSync(`${pidsGroup(facts!)}/evil`), 'the jail made pids:/…/evil');
    else assert.match(inside.stdout, /Operation not permitted|Permission denied|not permitted/i, inside.stdout);

    // the same state made from the host: nested child groups in every hierarchy of the
    // jail, a jail process moved into the deepest one of the pids hierarchy
    for (const d of facts!.cgroups) mkdirSync(`${d}/child/grandchild`, { recursive: true });
    // and a deep chain, and many siblings
    mkdirSync(`${pidsGroup(facts!)}/${Array(64).fill('d').join('/')}`, { recursive: true });
    for (let i = 0; i < 200; i++) mkdirSync(`${pidsGroup(facts!)}/s${i}`);
    const sleeper = await driver.runInJail(jail.ctx, facts!, ['/bin/sh', '-c', 'sleep 1000 >/dev/null 2>&1 & echo $!']);
    assert.equal(sleeper.code, 0, sleeper.stderr);
    const sleepPid = await sleeperIn(pidsGroup(facts!));
    assert.ok(sleepPid, `a sleep in the jail's group: ${readFileSync(`${pidsGroup(facts!)}/cgroup.procs`, 'utf8')}`);
    writeFileSync(`${pidsGroup(facts!)}/child/grandchild/cgroup.procs`, String(sleepPid));

    const t0 = Date.now();
    await driver.destroy(jail.ctx, facts!, 500);
    const ms = Date.now() - t0;
    for (const d of facts!.cgroups) assert.ok(!existsSync(d), `${d} removed`);
    assert.ok(!alive(sleepPid!), 'the process in the child group is gone');
    assert.ok(ms < 5000, `bounded: ${ms} ms`);
    facts = undefined;
    console.log(`# destroy with child groups: ${ms} ms; made from inside the jail: ${insideWorked}`);
  });
});

test('security: reconcile removes a leftover jail group with child groups and processes in them', {
  timeout: 30_000,
}, async () => {
  const base = snapshot();
  const state = mkdtempSync(join(tmpdir(), 'jy-secgrp-'));
  const layout = parentDirs({ parent: CGPARENT, base: 'self' });
  const parent = layout.version === 1 ? layout.dirs.pids : layout.dir;
  const group = `${parent}/jy-${stateTag(`${state}/jails/x`)}-99999`;
  mkdirSync(`${group}/a/b/c`, { recursive: true });
  // a process in the deepest child group, as a crashed run's jail would leave it
  const child = spawn('sleep', ['1000'], { stdio: 'ignore', detached: true });
  await new Promise((r) => child.once('spawn', r));
  writeFileSync(`${group}/a/b/c/cgroup.procs`, String(child.pid));
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const found = await driver.scanLeftovers();
    assert.ok(found.cgroups.includes(group), `found: ${found.cgroups.join(' ')}`);
    await driver.removeLeftover('cgroups', group);
    assert.ok(!existsSync(group), 'the group and its children are gone');
    await exited;
    assert.equal(child.exitCode ?? child.signalCode, 'SIGKILL');
  } finally {
    try {
      process.kill(child.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }
  assertNoLeaks(base, state);
  rmSync(state, { recursive: true, force: true });
});

test('security: `jailyard stop` (and reconcile of a half-done stop) of a jail with child groups succeeds and leaves nothing', {
  timeout: 120_000,
}, async (t) => {
  const { cliFor } = await import('../helpers/cli.ts');
  const { openStore } = await import('../../src/store/sqlite.ts');
  const base = snapshot();
  const state = mkdtempSync(join(tmpdir(), 'jy-secgrp-'));
  const jy = cliFor(() => state);
  t.after(async () => {
    await jy('reconcile');
    await jy('remove', 'cg1');
    await jy('remove', 'cg2');
    rmSync(state, { recursive: true, force: true });
  });
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
  let r = await jy('create', 'cg1', 'skeleton=host', 'persist', 'ip4.addr=198.51.100.216/24');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'cg1');
  assert.equal(r.code, 0, r.stderr);
  const store = openStore(state);
  const groups = store.requireJail('cg1').runtime!.create!.cgroups;
  store.close();
  for (const d of groups) mkdirSync(`${d}/evil/deeper`, { recursive: true });
  r = await jy('exec', 'cg1', '/bin/sh', '-c', 'sleep 1000 >/dev/null 2>&1 & echo $! > /tmp/sleeper');
  assert.equal(r.code, 0, r.stderr);
  const pids = groups.find((d) => d.includes('/pids/')) ?? groups[0]!;
  const sleepPid = await sleeperIn(pids);
  assert.ok(sleepPid);
  writeFileSync(`${pids}/evil/deeper/cgroup.procs`, String(sleepPid));
  r = await jy('stop', 'cg1');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('ls', '-a', '-j', 'cg1', 'state');
  assert.equal(r.stdout, 'stopped\n');
  for (const d of groups) assert.ok(!existsSync(d), `${d} removed`);
  r = await jy('remove', 'cg1');
  assert.equal(r.code, 0, r.stderr);

  // a stop that died half-way (the jail left 'stopping'): reconcile finishes it
  r = await jy('create', 'cg2', 'skeleton=host', 'persist', 'ip4.addr=198.51.100.217/24');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'cg2');
  assert.equal(r.code, 0, r.stderr);
  const store2 = openStore(state);
  const groups2 = store2.requireJail('cg2').runtime!.create!.cgroups;
  for (const d of groups2) mkdirSync(`${d}/evil`, { recursive: true });
  store2.transition('cg2', 'running', 'stopping');
  store2.close();
  r = await jy('reconcile', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).recovered, ['cg2']);
  r = await jy('ls', '-a', '-j', 'cg2', 'state');
  assert.equal(r.stdout, 'stopped\n');
  r = await jy('remove', 'cg2');
  assert.equal(r.code, 0, r.stderr);
  assertNoLeaks(base, state);
});
