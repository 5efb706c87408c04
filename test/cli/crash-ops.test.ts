// Crash injection beyond start and stop (test/cli/crash.test.ts): the CLI killed with SIGKILL
// at the points create, remove, restart, upgrade and rollout declare (CRASH_POINTS in
// src/runtime/crashpoint.ts), and at the lifecycle points they run, then `jailyard reconcile`.
// Afterwards: no mount, netns, veth, cgroup, process, address claim, intent or orphan folder
// of this state folder is left; every jail is fully there (stopped, it starts and stops) or
// fully gone; an upgrade is on the old or the new version, never a mix; a rollout carries on
// with --resume or goes back with --abort. CI runs a fixed sample; JAILYARD_SOAK=1 all points.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { cliFor } from '../helpers/cli.ts';
import { CRASH_POINTS } from '../../src/runtime/crashpoint.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { assertNothingHalfDone, Coverage, crashing, sample, SOAK } from '../helpers/crash.ts';

let state: string;
let baseline: SystemSnapshot;
const cli = cliFor(() => state);
const coverage = new Coverage('crash-ops');

async function jy(...args: string[]): Promise<{ code: number; out: string; stdout: string }> {
  const r = await cli(...args);
  return { code: r.code, out: r.stdout + r.stderr, stdout: r.stdout };
}

/** The CLI (in this process) must succeed. */
async function ok(...args: string[]): Promise<void> {
  const r = await jy(...args);
  assert.equal(r.code, 0, `jailyard ${args.join(' ')}: ${r.out}`);
}

async function jails(): Promise<{ name: string; state: string; skeleton?: string }[]> {
  const r = await cli('ls', '-a', '--json', 'name', 'state', 'skeleton');
  const doc = JSON.parse(r.stdout) as {
    'jail-information'?: { jail?: { name: string; state: string; skeleton?: string }[] };
  };
  return doc['jail-information']?.jail ?? [];
}

async function stateOf(name: string): Promise<string> {
  return (await jails()).find((j) => j.name === name)?.state ?? '(none)';
}

const lifecycle = [...CRASH_POINTS.stop, ...CRASH_POINTS.start];

/** The CLI killed at `point`: it must have died there, not finished or failed. */
function crash(args: string[], point: string): void {
  const r = crashing(state, args, point);
  assert.equal(r.signal, 'SIGKILL', `${point}: the CLI was killed there (${r.out})`);
}

/** reconcile, then: nothing leaked, nothing half done, no jail stuck starting/stopping. */
async function recover(point: string): Promise<void> {
  const rec = await jy('reconcile');
  assert.equal(rec.code, 0, `${point}: reconcile failed: ${rec.out}`);
  const all = await jails();
  for (const j of all) assert.ok(j.state === 'stopped' || j.state === 'running', `${point}: ${j.name} is ${j.state}`);
  // running jails (a rollout's) hold mounts and addresses: checked once they are removed
  if (all.every((j) => j.state === 'stopped')) await assertClean(point);
}

async function assertClean(point: string): Promise<void> {
  assertNoLeaks(baseline, state);
  assertNothingHalfDone(
    state,
    (await jails()).map((j) => j.name),
    point,
  );
}

/** A jail that is there works: it starts and stops. */
async function startsAndStops(name: string, point: string): Promise<void> {
  const start = await jy('start', name);
  assert.equal(start.code, 0, `${point}: ${name} starts again: ${start.out}`);
  const stop = await jy('stop', name);
  assert.equal(stop.code, 0, `${point}: ${name} stops again: ${stop.out}`);
}

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-crashops-'));
  await ok('skel', 'create', 'host', '--from', '/');
});

after(async () => {
  for (const j of await jails()) await jy('remove', j.name);
  await jy('reconcile');
  coverage.print();
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('create killed at each of its points: reconcile undoes it, the name can be created again', {
  timeout: 600_000,
}, async () => {
  coverage.declare('create', CRASH_POINTS.create);
  const args = ['create', 'oc1', 'skeleton=host', 'persist', 'ip4.addr=198.51.100.153/24'];
  for (const point of CRASH_POINTS.create) {
    crash(args, point);
    if (point !== 'jail.create:intent') {
      // the record exists, the jail is not complete: start says what to run
      const early = await jy('start', 'oc1');
      assert.notEqual(early.code, 0, `${point}: a half-created jail does not start`);
      assert.match(early.out, /reconcile/, point);
    }
    await recover(point);
    assert.equal(await stateOf('oc1'), '(none)', `${point}: the interrupted create is undone`);
    assert.equal((await jy(...args)).code, 0, `${point}: created again`);
    await startsAndStops('oc1', point);
    await ok('remove', 'oc1');
    coverage.covered('create', point);
  }
});

test('remove killed at its points (and its stop): the jail is stopped or gone, never half', {
  timeout: 900_000,
}, async () => {
  const own = CRASH_POINTS.remove;
  coverage.declare('remove', [...CRASH_POINTS.stop, ...own]);
  const points = [...sample(CRASH_POINTS.stop, 14), ...own];
  const create = ['create', 'or1', 'skeleton=host', 'persist', 'ip4.addr=198.51.100.154/24'];
  await ok(...create);
  for (const point of points) {
    if ((await stateOf('or1')) === '(none)') await ok(...create);
    await ok('start', 'or1');
    crash(['remove', 'or1'], point);
    await recover(point);
    const after = await stateOf('or1');
    const gone = point === 'jail.remove:forgotten' || point === 'jail.remove:done';
    assert.equal(after, gone ? '(none)' : 'stopped', `${point}: the jail after reconcile`);
    if (!gone && (SOAK || point === 'jail.remove:stopped')) await startsAndStops('or1', point);
    coverage.covered('remove', point);
  }
  if ((await stateOf('or1')) !== '(none)') await ok('remove', 'or1');
});

test('restart killed at a point of its stop or start: reconcile leaves it stopped and working', {
  timeout: 900_000,
}, async () => {
  coverage.declare('restart', lifecycle);
  await ok('create', 'os1', 'skeleton=host', 'persist', 'ip4.addr=198.51.100.155/24');
  for (const point of sample(lifecycle, 30)) {
    await ok('start', 'os1');
    crash(['restart', 'os1'], point);
    await recover(point);
    assert.equal(await stateOf('os1'), 'stopped', `${point}: stopped after reconcile`);
    await startsAndStops('os1', point);
    coverage.covered('restart', point);
  }
  await ok('remove', 'os1');
});

// --- upgrade ---------------------------------------------------------------------------

function tree(dir: string, files: Record<string, string>): string {
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  return dir;
}

const V1 = { 'etc/app.conf': 'ONE\ntwo\nthree\nfour\nfive\n', 'etc/motd': 'our own motd\n' };
const V2 = {
  'etc/app.conf': 'ONE\ntwo\nthree\nfour\nFIVE\n',
  'etc/motd': 'our own motd\n',
  'etc/motd.jailyard-new': 'welcome v2\n',
  'etc/new.conf': 'new\n',
  'etc/newdir/x.conf': 'x\n',
};
const FILES = [...Object.keys(V2), 'etc/newdir'];

/** Skeleton NAME in two versions of a tiny tree: version 2 changes a line of etc/app.conf
 * and etc/motd and adds etc/new.conf and etc/newdir/x.conf. */
async function twoVersions(name: string): Promise<void> {
  const src = join(state, `src-${name}`);
  tree(join(src, '1'), { 'etc/app.conf': 'one\ntwo\nthree\nfour\nfive\n', 'etc/motd': 'welcome v1\n' });
  tree(join(src, '2'), {
    'etc/app.conf': 'one\ntwo\nthree\nfour\nFIVE\n',
    'etc/motd': 'welcome v2\n',
    'etc/new.conf': 'new\n',
    'etc/newdir/x.conf': 'x\n',
  });
  // the jail's pid 1 holder (`sleep infinity`): a static busybox, so the tiny tree starts
  for (const v of ['1', '2']) {
    mkdirSync(join(src, v, 'bin'), { recursive: true });
    copyFileSync('/usr/bin/busybox', join(src, v, 'bin/sleep'));
    chmodSync(join(src, v, 'bin/sleep'), 0o755);
  }
  await ok('skel', 'create', name, '--copy', join(src, '1'));
  await ok('skel', 'create', name, '--copy', join(src, '2'));
}

/** The jail's files are exactly version 1's or exactly version 2's (never a mix). */
function versionOfTree(name: string, point: string): 1 | 2 {
  const root = join(state, 'jails', name, 'root');
  const read = (rel: string) => (existsSync(join(root, rel)) ? readFileSync(join(root, rel), 'utf8') : undefined);
  const is = (files: Record<string, string>) =>
    Object.entries(files).every(([rel, text]) => read(rel) === text) &&
    FILES.every((rel) => rel in files || rel === 'etc/newdir' || !existsSync(join(root, rel))) &&
    ('etc/newdir/x.conf' in files || !existsSync(join(root, 'etc/newdir')));
  const stages = [...readdirSync(root), ...readdirSync(join(root, 'etc'))].filter((n) =>
    n.startsWith('.jailyard-upgrade-'),
  );
  assert.deepEqual(stages, [], `${point}: no upgrade stage folder left`);
  if (is(V1)) return 1;
  if (is(V2)) return 2;
  assert.fail(
    `${point}: the jail's files are a mix of versions: ${JSON.stringify({
      app: read('etc/app.conf'),
      motd: read('etc/motd'),
      new: read('etc/new.conf'),
      newMotd: read('etc/motd.jailyard-new'),
    })}`,
  );
}

test('upgrade killed at each of its points: the jail is on the old or the new version, never a mix', {
  timeout: 1_200_000,
}, async () => {
  await twoVersions('base');
  const fresh = async (running: boolean): Promise<void> => {
    if ((await stateOf('ou1')) !== '(none)') await ok('remove', 'ou1');
    const r = await jy('create', 'ou1', 'skeleton=base@1', 'skeleton.cow=', 'persist');
    assert.equal(r.code, 0, r.out);
    tree(join(state, 'jails/ou1/root'), V1);
    if (running) await ok('start', 'ou1');
  };
  // the upgrade's own points; its changes to the tree are reached once per change (NAME@N):
  // this fixture makes one stage folder, one directory (etc/newdir) and five renames (app.conf
  // merged: the old one aside, the merge in; motd.jailyard-new, new.conf, newdir/x.conf)
  const times: Record<string, number> = { 'upgrade:stage': 1, 'upgrade:mkdir': 1, 'upgrade:rename': 5 };
  // (upgrade:views: only a tree mounted for the merge, the next test)
  const own = CRASH_POINTS.upgrade
    .filter((p) => p !== 'upgrade:views')
    .flatMap((p) => (times[p] ? Array.from({ length: times[p] }, (_, i) => `${p}@${i + 1}`) : [p]));
  coverage.declare('upgrade', own);
  coverage.declare('upgrade --restart', lifecycle);
  const runs: { point: string; restart: boolean }[] = [
    ...sample(own, 4).map((point) => ({ point, restart: false })),
    ...(SOAK ? lifecycle : ['exec.stop:begin', 'create:done']).map((point) => ({ point, restart: true })),
  ];
  for (const { point, restart } of runs) {
    await fresh(restart);
    const r = crashing(state, ['upgrade', 'ou1', '--to', 'base@2', ...(restart ? ['--restart'] : [])], point);
    assert.equal(r.signal, 'SIGKILL', `${point}: the CLI was killed there (${r.out})`);
    await recover(point);
    const jail = (await jails()).find((j) => j.name === 'ou1');
    assert.ok(jail && jail.state === 'stopped', `${point}: the jail is there and stopped`);
    const version = versionOfTree('ou1', point);
    assert.equal(jail.skeleton, `base@${version}`, `${point}: the skeleton parameter names the tree's version`);
    const recorded =
      ['upgrade:recorded', 'upgrade:done'].includes(point) || (restart && CRASH_POINTS.start.includes(point));
    assert.equal(version, recorded ? 2 : 1, `${point}: version after reconcile`);
    if (SOAK || point === 'upgrade:rename@2') await startsAndStops('ou1', point);
    if (version === 1) {
      const again = await jy('upgrade', 'ou1', '--to', 'base@2');
      assert.equal(again.code, 0, `${point}: the upgrade works afterwards: ${again.out}`);
      assert.equal(versionOfTree('ou1', point), 2);
    }
    coverage.covered(restart ? 'upgrade --restart' : 'upgrade', point);
  }
  await ok('remove', 'ou1');
});

/** The files of a running jail as it sees them (its mounts included): exactly version 1's or
 * version 2's, and no upgrade stage folder in its / or /etc. */
function versionSeenBy(name: string, point: string): 1 | 2 {
  const store = openStore(state);
  let pid: number | undefined;
  try {
    pid = store.getJail(name)?.runtime?.create?.initPid;
  } finally {
    store.close();
  }
  assert.ok(pid, `${point}: ${name} runs`);
  const root = `/proc/${pid}/root`;
  const read = (rel: string) => (existsSync(join(root, rel)) ? readFileSync(join(root, rel), 'utf8') : undefined);
  const stages = [...readdirSync(root), ...readdirSync(join(root, 'etc'))].filter((n) =>
    n.startsWith('.jailyard-upgrade-'),
  );
  assert.deepEqual(stages, [], `${point}: no upgrade stage folder left in the jail's view`);
  const is = (files: Record<string, string>) =>
    Object.entries(files).every(([rel, text]) => read(rel) === text) &&
    FILES.every((rel) => rel in files || rel === 'etc/newdir' || !existsSync(join(root, rel)));
  if (is(V1)) return 1;
  if (is(V2)) return 2;
  assert.fail(
    `${point}: the jail sees a mix of versions: ${JSON.stringify({
      app: read('etc/app.conf'),
      motd: read('etc/motd'),
      new: read('etc/new.conf'),
      newMotd: read('etc/motd.jailyard-new'),
    })}`,
  );
}

test('upgrade of a jail with copy-on-write dirs killed at its points: reconcile mounts its views again and undoes or finishes it', {
  timeout: 600_000,
}, async () => {
  // the same two versions as above, as a second skeleton; etc is copy-on-write (the
  // default skeleton.cow), so the merge runs in a mounted overlay of the jail's upper dir
  await twoVersions('cbase');
  const fresh = async (): Promise<void> => {
    if ((await stateOf('ou2')) !== '(none)') await ok('remove', 'ou2');
    await ok('create', 'ou2', 'skeleton=cbase@1', 'skeleton.cow=etc', 'persist');
    // the jail's own edits, written as the jail sees its /etc (into the overlay's upper dir)
    await ok('start', 'ou2');
    const store = openStore(state);
    const pid = store.getJail('ou2')?.runtime?.create?.initPid;
    store.close();
    tree(`/proc/${pid}/root`, V1);
    await ok('stop', 'ou2');
  };
  // views listed; the stage folder (inside the mounted etc); the first and a later rename
  // (app.conf moved aside, then the merge in); the pin; the new parameter recorded
  const points = [
    'upgrade:views',
    'upgrade:stage@1',
    'upgrade:rename@1',
    'upgrade:rename@2',
    'upgrade:pinned',
    'upgrade:recorded',
  ];
  const own = points;
  coverage.declare('upgrade (copy-on-write)', own);
  for (const point of own) {
    await fresh();
    crash(['upgrade', 'ou2', '--to', 'cbase@2'], point);
    await recover(point);
    const jail = (await jails()).find((j) => j.name === 'ou2');
    assert.ok(jail && jail.state === 'stopped', `${point}: the jail is there and stopped`);
    await ok('start', 'ou2');
    const version = versionSeenBy('ou2', point);
    await ok('stop', 'ou2');
    assert.equal(jail.skeleton, `cbase@${version}`, `${point}: the skeleton parameter names the tree's version`);
    assert.equal(version, point === 'upgrade:recorded' ? 2 : 1, `${point}: version after reconcile`);
    if (version === 1) {
      await ok('upgrade', 'ou2', '--to', 'cbase@2');
      await ok('start', 'ou2');
      assert.equal(versionSeenBy('ou2', point), 2, `${point}: the upgrade works afterwards`);
      await ok('stop', 'ou2');
    }
    await assertClean(point);
    coverage.covered('upgrade (copy-on-write)', point);
  }
  await ok('remove', 'ou2');
});

// --- rollout ---------------------------------------------------------------------------

const PORT = 8080;
const serve = (v: string) =>
  `mkdir -p /etc/jyweb && echo ${v} > /etc/jyweb/index.html && /usr/bin/python3 -m http.server ${PORT} -d /etc/jyweb >/dev/null 2>&1 &`;

test('rollout killed at its points (and those of the jails it creates, starts and removes): --resume finishes it, --abort goes back', {
  timeout: 1_800_000,
}, async () => {
  const template = join(state, 'ow.conf');
  writeFileSync(
    template,
    `ow { skeleton = host; persist; ip4.addr = 198.51.100.2/24; exec.start = "${serve('v2')}"; }\n`,
  );
  const rollout = [
    'rollout',
    '-l',
    'app=ow',
    '--from',
    'version=v1',
    '--to',
    'version=v2',
    '--replicas',
    '1',
    '--template',
    template,
    '--port',
    String(PORT),
    '--health-timeout',
    '30',
    '--address-range',
    '157-158',
  ];
  const jailsOf = async (v: string) =>
    (await cli('ls', '-a', '--json', '-l', `app=ow,version=${v}`, 'name', 'state')).stdout;
  const names = (json: string): { name: string; state: string }[] =>
    (JSON.parse(json) as { 'jail-information'?: { jail?: { name: string; state: string }[] } })['jail-information']
      ?.jail ?? [];
  /** One v1 jail serving, no v2, no saved rollout. */
  const fresh = async (): Promise<void> => {
    for (const j of [...names(await jailsOf('v1')), ...names(await jailsOf('v2'))]) await ok('remove', j.name);
    rmSync(join(state, 'rollouts'), { recursive: true, force: true });
    const r = await jy(
      'create',
      'ow-v1-1',
      'skeleton=host',
      'persist',
      'ip4.addr=198.51.100.156/24',
      'meta.app=ow',
      'meta.version=v1',
      `meta.port=${PORT}`,
      `exec.start=${serve('v1')}`,
    );
    assert.equal(r.code, 0, r.out);
    await ok('start', 'ow-v1-1');
  };
  const own = CRASH_POINTS.rollout.flatMap((p) =>
    p === 'rollout:saved' ? [1, 2, 3, 4, 5, 6, 7, 8].map((n) => `${p}@${n}`) : [p],
  );
  // the jails it runs: the new one's create and start, the old one's stop and remove
  const nested = [...CRASH_POINTS.create, ...CRASH_POINTS.start, ...CRASH_POINTS.stop, ...CRASH_POINTS.remove];
  coverage.declare('rollout', [...own, ...nested]);
  coverage.declare('rollout --abort', CRASH_POINTS.abort);
  const runs = SOAK ? [...own, ...nested] : ['rollout:healthy', 'exec.stop:done'];
  for (const point of runs) {
    await fresh();
    const r = crashing(state, rollout, point);
    if (r.signal !== 'SIGKILL' && (/@\d+$/.test(point) || point === 'rollout:drain')) {
      // not reached: fewer saves than N, or no load balancer to drain from
      assert.equal(r.code, 0, `${point}: ${r.out}`);
      continue;
    }
    assert.equal(r.signal, 'SIGKILL', `${point}: the CLI was killed there (${r.out})`);
    await recover(point);
    const resumed = await jy(...rollout.slice(0, 3), '--resume');
    assert.equal(resumed.code, 0, `${point}: --resume finishes the rollout: ${resumed.out}`);
    assert.deepEqual(names(await jailsOf('v1')), [], `${point}: no v1 left`);
    const v2 = names(await jailsOf('v2'));
    assert.equal(v2.length, 1, `${point}: one v2 jail`);
    assert.equal(v2[0]?.state, 'running', `${point}: the v2 jail runs`);
    await ok('remove', v2[0]!.name);
    await assertClean(point);
    coverage.covered('rollout', point);
  }
  // a rollout killed half-way, then --abort killed at each of its points
  for (const point of SOAK ? CRASH_POINTS.abort : ['abort:remove']) {
    await fresh();
    assert.equal(crashing(state, rollout, 'rollout:healthy').signal, 'SIGKILL');
    await recover(point);
    const r = crashing(state, [...rollout.slice(0, 3), '--abort'], point);
    if (r.signal !== 'SIGKILL' && ['abort:undrain', 'abort:start', 'abort:drain'].includes(point)) {
      // not reached: nothing drained or stopped, no load balancer
      assert.equal(r.code, 0, `${point}: ${r.out}`);
      continue;
    }
    assert.equal(r.signal, 'SIGKILL', `${point}: the CLI was killed there (${r.out})`);
    await recover(point);
    const again = await jy(...rollout.slice(0, 3), '--abort');
    assert.equal(again.code, 0, `${point}: --abort finishes: ${again.out}`);
    assert.deepEqual(names(await jailsOf('v2')), [], `${point}: no v2 left`);
    assert.deepEqual(
      names(await jailsOf('v1')).map((j) => j.state),
      ['running'],
      `${point}: the v1 jail serves`,
    );
    await ok('remove', 'ow-v1-1');
    await assertClean(point);
    coverage.covered('rollout --abort', point);
  }
  for (const j of [...names(await jailsOf('v1')), ...names(await jailsOf('v2'))]) await jy('remove', j.name);
});
