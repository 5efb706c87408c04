// Nested jails (FreeBSD's hierarchical jails) through the CLI with real namespaces: a child
// lives inside its running parent (nested pid namespace, the parent's network, its own
// hostname and env), children.max is enforced, stopping or removing a parent takes its
// children first, and nothing is left behind. The pure rules are tested without root.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JailyardError } from '../../src/errors.ts';
import { jailRoot } from '../../src/layout.ts';
import { pidAlive, waitFor } from '../../src/platform/linux/proc.ts';
import { checkNestedParams, checkNestedStart, parentName } from '../../src/runtime/jailplan.ts';
import type { JailRecord } from '../../src/store/types.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { binFor, cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

function record(name: string, params: JailRecord['params'], state: JailRecord['state'] = 'stopped'): JailRecord {
  return {
    name,
    params,
    state,
    jid: 0,
    meta: '',
    env: '',
    revision: 1,
    runtime: null,
    ready: false,
    lastError: null,
    createdAt: '',
    updatedAt: '',
  };
}

function throwsCode(fn: () => unknown, code: string, place: Record<string, string>): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof JailyardError, String(e));
    assert.equal(e.code, code);
    for (const [k, v] of Object.entries(place)) assert.equal((e.place as Record<string, unknown>)[k], v, k);
    return true;
  });
}

describe('nested jail rules (pure)', () => {
  test('a child path is read inside the parent root', () => {
    assert.equal(parentName('a.b.c'), 'a.b');
    assert.equal(parentName('a'), undefined);
    assert.equal(
      jailRoot('/s', { name: 'p.c', params: { path: '/srv/c' } }, '/s/jails/p/root'),
      '/s/jails/p/root/srv/c',
    );
    assert.equal(
      jailRoot('/s', { name: 'p.c', params: { path: '../../etc' } }, '/r'),
      '/r/etc',
      'no .. above the parent root',
    );
    assert.equal(jailRoot('/s', { name: 'p.c', params: { skeleton: 'host' } }, '/r'), '/s/jails/p.c/root');
  });

  test("children.max of every ancestor, a running parent and the parent's addresses", () => {
    const child = record('p.c', { 'ip4.addr': ['198.51.100.9/24'] });
    const parent = (state: JailRecord['state'], max?: number) =>
      record(
        'p',
        { ...(max !== undefined ? { 'children.max': max } : {}), 'ip4.addr': ['198.51.100.9/24', '198.51.100.10/24'] },
        state,
      );
    throwsCode(
      () => checkNestedStart(child, [{ record: parent('stopped', 1), runningDescendants: 0 }]),
      'JY_ERR_DEPEND',
      { jail: 'p.c' },
    );
    throwsCode(
      () => checkNestedStart(child, [{ record: parent('running'), runningDescendants: 0 }]),
      'JY_ERR_PARAM_VALUE',
      { jail: 'p', param: 'children.max' },
    );
    throwsCode(
      () => checkNestedStart(child, [{ record: parent('running', 1), runningDescendants: 1 }]),
      'JY_ERR_PARAM_VALUE',
      { jail: 'p', param: 'children.max' },
    );
    checkNestedStart(child, [{ record: parent('running', 1), runningDescendants: 0 }]);
    const grand = record('g', { 'children.max': 1 }, 'running');
    throwsCode(
      () =>
        checkNestedStart(record('g.p.c', {}), [
          { record: parent('running', 5), runningDescendants: 0 },
          { record: grand, runningDescendants: 1 },
        ]),
      'JY_ERR_PARAM_VALUE',
      { jail: 'g' },
    );
    const stranger = record('p.c', { 'ip4.addr': ['em0|198.51.100.11/24'] });
    throwsCode(
      () => checkNestedStart(stranger, [{ record: parent('running', 1), runningDescendants: 0 }]),
      'JY_ERR_ADDRESS',
      { jail: 'p.c', param: 'ip4.addr' },
    );
  });

  test('what a nested jail cannot use is refused with the parameter named', () => {
    throwsCode(() => checkNestedParams({ name: 'p.c', params: { mount: ['/a /b nullfs ro'] } }), 'JY_ERR_PARAM_VALUE', {
      jail: 'p.c',
      param: 'mount',
    });
    throwsCode(
      () => checkNestedParams({ name: 'p.c', params: { skeleton: 'host', path: '/x' } }),
      'JY_ERR_PARAM_VALUE',
      { param: 'path' },
    );
    checkNestedParams({ name: 'top', params: { mount: ['/a /b nullfs ro'] } });
  });
});

describe('nested jails with real namespaces (root)', () => {
  let state: string;
  let baseline: SystemSnapshot;

  const jy = cliFor(() => state);
  /** `jailyard exec` as a separate process: its output is the jail's own. */
  const jyBin = binFor(() => state);
  const inJail = (jail: string, ...argv: string[]) => jyBin('exec', jail, ...argv);
  const runtimeOf = async (jail: string) => {
    const r = await jy('ls', '--json', '-a', '-j', jail, 'name', 'state', 'jid');
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout)['jail-information'].jail[0] as { name: string; state: string; jid: number };
  };
  /** The host pid of a jail's pid 1, as the runtime recorded it. */
  const initPidOf = (jail: string): number => {
    const store = openStore(state);
    try {
      return store.requireJail(jail).runtime!.create!.initPid;
    } finally {
      store.close();
    }
  };

  before(async () => {
    baseline = snapshot();
    state = mkdtempSync(join(tmpdir(), 'jy-nested-'));
    const r = await jy('skel', 'create', 'host', '--from', '/');
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await jy('remove', '-l', 'test=nested');
    assertNoLeaks(baseline, state);
    rmSync(state, { recursive: true, force: true });
  });

  test('a child runs inside its parent: nested pids, own hostname and env, shared network; children.max; stop and remove cascade', async () => {
    const log = join(state, 'stop-order.log');
    let r = await jy(
      'create',
      'nest1',
      'skeleton=host',
      'persist',
      'children.max=1',
      'host.hostname=nest1.test',
      'ip4.addr=198.51.100.61/24',
      'meta.test=nested',
      'meta.role=parent',
      'env.role=parent',
      `exec.poststop=echo $JNAME >> ${log}`,
    );
    assert.equal(r.code, 0, r.stderr);
    r = await jy(
      'create',
      'nest1.c1',
      'skeleton=host',
      'persist',
      'host.hostname=c1.test',
      'ip4.addr=198.51.100.61/24',
      'meta.test=nested',
      'env.role=child',
      `exec.poststop=echo $JNAME >> ${log}`,
    );
    assert.equal(r.code, 0, r.stderr);
    r = await jy('create', 'nest1.c2', 'skeleton=host', 'persist', 'meta.test=nested');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('create', 'nobody.c1', 'skeleton=host');
    assert.equal(r.code, 1, 'a child needs an existing parent');
    assert.match(r.stderr, /nobody/);

    // starting the child brings its parent up first, like a `depend` entry
    r = await jy('start', 'nest1.c1');
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await runtimeOf('nest1')).state, 'running');
    assert.equal((await runtimeOf('nest1.c1')).state, 'running');

    // the child: tini as pid 1, its own hostname and env, only its own processes
    assert.equal(inJail('nest1.c1', 'cat', '/proc/1/comm').trim(), 'tini');
    assert.equal(inJail('nest1.c1', 'hostname').trim(), 'c1.test');
    assert.equal(inJail('nest1', 'hostname').trim(), 'nest1.test');
    assert.equal(inJail('nest1.c1', 'cat', '/run/jailyard/env').trim(), 'role=child', 'env is not inherited');
    assert.equal(inJail('nest1', 'cat', '/run/jailyard/env').trim(), 'role=parent');
    // no path of the state folder in its mountinfo: its root (in its state folder) is an
    // overlay of itself and its guest folder a tmpfs of its own, both with mount root "/"
    const childMounts = inJail('nest1.c1', 'cat', '/proc/self/mountinfo').split('\n');
    const guestLine = childMounts.find((l) => l.split(' ')[4] === '/run/jailyard') ?? '';
    assert.equal(guestLine.split(' ')[3], '/', `the child's guest folder: ${guestLine}`);
    assert.match(guestLine, / - tmpfs jailyard-guest /);
    assert.deepEqual(
      childMounts.filter((l) => l.includes(state)),
      [],
      'no state path in the child',
    );
    const childComms = inJail('nest1.c1', '/bin/sh', '-c', 'cat /proc/[0-9]*/comm').trim().split('\n');
    assert.ok(
      childComms.every((c) => ['tini', 'hold', 'sh', 'cat'].includes(c)),
      `child sees only its own: ${childComms.join(',')}`,
    );
    assert.equal(childComms.filter((c) => c === 'tini').length, 1);

    // the parent sees the child's processes: the child's pid 1 has a pid in the parent's namespace
    const childInit = initPidOf('nest1.c1');
    const parentInit = initPidOf('nest1');
    const nspid = readFileSync(`/proc/${childInit}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('NSpid:'))!
      .split(/\s+/)
      .slice(1)
      .filter(Boolean);
    assert.equal(nspid.length, 3, `host, parent and child pid: ${nspid.join(' ')}`);
    assert.equal(nspid[2], '1');
    assert.equal(inJail('nest1', 'cat', `/proc/${nspid[1]}/comm`).trim(), 'tini', "the parent sees the child's pid 1");
    // the child shares its parent's network namespace and addresses
    assert.equal(readlinkSync(`/proc/${childInit}/ns/net`), readlinkSync(`/proc/${parentInit}/ns/net`));
    assert.match(inJail('nest1.c1', 'ip', '-o', '-4', 'addr'), /198\.51\.100\.61\/24/);
    // the child's cgroups are below the parent's
    const parentGroup = readFileSync(`/proc/${parentInit}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => /:pids:|^0::/.test(l))!
      .split(':')[2]!;
    const childGroup = readFileSync(`/proc/${childInit}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => /:pids:|^0::/.test(l))!
      .split(':')[2]!;
    assert.ok(childGroup.startsWith(`${parentGroup}/`), `${childGroup} is below ${parentGroup}`);

    // meta is not inherited either
    r = await jy('ls', '-j', 'nest1.c1', 'meta.role');
    assert.equal(r.stdout, '\n');

    // children.max=1: a second child is refused, naming the parent and the parameter
    r = await jy('start', '--json', 'nest1.c2');
    assert.equal(r.code, 1);
    const outcome = JSON.stringify(JSON.parse(r.stdout));
    assert.match(outcome, /JY_ERR_PARAM_VALUE/);
    assert.match(outcome, /jail \\"nest1\\", parameter \\"children\.max\\"/);
    assert.equal((await runtimeOf('nest1.c2')).state, 'stopped');

    // stopping the parent stops the child first
    r = await jy('stop', 'nest1');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['nest1.c1', 'nest1']);
    assert.equal((await runtimeOf('nest1.c1')).state, 'stopped');
    assertNoLeaks(baseline, state);

    // removing the parent removes its children
    r = await jy('remove', 'nest1');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('ls', '-a', '-j', 'nest1.c1');
    assert.equal(r.code, 1);
    r = await jy('ls', '-a', '-j', 'nest1.c2');
    assert.equal(r.code, 1);
    assertNoLeaks(baseline, state);
  });

  test('a parent whose pid 1 dies takes its child with it; reconcile cleans up both', async () => {
    let r = await jy('create', 'nest3', 'skeleton=host', 'persist', 'children.max=1', 'meta.test=nested');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('create', 'nest3.kid', 'skeleton=host', 'persist', 'meta.test=nested');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('start', 'nest3.kid');
    assert.equal(r.code, 0, r.stderr);
    const kid = initPidOf('nest3.kid');
    process.kill(initPidOf('nest3'), 'SIGKILL');
    // (a zombie not yet reaped counts as ended: pidAlive; a loaded machine gets 10 s)
    assert.ok(await waitFor(() => !pidAlive(kid), 10_000, 20), 'the kernel ended the child with its parent');
    r = await jy('reconcile');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal((await runtimeOf('nest3')).state, 'stopped');
    assert.equal((await runtimeOf('nest3.kid')).state, 'stopped');
    r = await jy('remove', 'nest3');
    assert.equal(r.code, 0, r.stderr);
    assertNoLeaks(baseline, state);
  });

  test("a child with a path lives inside its parent's root; a missing path fails cleanly", async () => {
    let r = await jy('create', 'nest2', 'skeleton=host', 'persist', 'children.max=2', 'meta.test=nested');
    assert.equal(r.code, 0, r.stderr);
    r = await jy(
      'create',
      'nest2.same',
      'path=/',
      'persist',
      'host.hostname=same.test',
      'meta.test=nested',
      'env.role=same',
    );
    assert.equal(r.code, 0, r.stderr);
    r = await jy('create', 'nest2.gone', 'path=/no/such/dir', 'persist', 'meta.test=nested');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('start', 'nest2', 'nest2.same');
    assert.equal(r.code, 0, r.stderr);
    // what the child writes under its root is the parent's file (path "/" = the parent's root)
    inJail('nest2.same', '/bin/sh', '-c', 'echo from-child > /tmp/nested-marker');
    assert.equal(inJail('nest2', 'cat', '/tmp/nested-marker'), 'from-child\n');
    assert.equal(inJail('nest2.same', 'hostname').trim(), 'same.test');
    assert.equal(inJail('nest2.same', 'cat', '/run/jailyard/env').trim(), 'role=same');
    // the parent's own view is unchanged by the child's mounts (they live in the child's namespace)
    assert.equal(inJail('nest2', 'cat', '/run/jailyard/env').trim(), '');

    r = await jy('start', '--json', 'nest2.gone');
    assert.equal(r.code, 1);
    assert.match(r.stdout, /JY_ERR_PATH/);
    assert.equal((await runtimeOf('nest2.gone')).state, 'stopped');

    r = await jy('remove', 'nest2');
    assert.equal(r.code, 0, r.stderr);
    assertNoLeaks(baseline, state);
  });
});
