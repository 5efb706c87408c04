import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createFreeBSDDriver, createFakeRunner } from '../../../src/platform/freebsd/index.ts';
import type { MountPlan } from '../../../src/skeleton/plan.ts';
import { JailyardError } from '../../../src/errors.ts';
import { fakeClock, sandbox } from './fixture.ts';

const NAME = 'jyfb-web';

describe('FreeBSD driver: full start and stop (mocked FreeBSD)', () => {
  test('exact argv sequence for start and stop with nullfs ro+rw, devfs, an alias, limits, meta/env (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME, {
      'host.hostname': 'web.example',
      'ip4.addr': ['em0|198.51.100.10/24'],
      'allow.raw_sockets': true,
      'allow.mount': false,
      'exec.start': ['/bin/sh /etc/rc'],
      'exec.stop': ['/bin/sh /etc/rc.shutdown jail'],
      'mount.devfs': true,
      depend: ['db'],
      skeleton: 'base-14.2',
      'skeleton.strategy': 'nullfs',
      'limits.memory': '256M',
      'stop.timeout': 5,
      persist: false,
      meta: 'app=web\nversion=v1',
      env: 'COLOR=blue',
      'children.max': 2,
      devfs_ruleset: 5,
    });
    const { root, ctx } = sb;
    const skel = join(sb.dir, 'skel');
    const data = join(sb.dir, 'data');
    mkdirSync(join(skel, 'usr/bin'), { recursive: true });
    mkdirSync(data);
    const plan: MountPlan = {
      root,
      mkdirs: [join(root, 'usr/bin'), join(root, 'data'), join(root, 'dev')],
      symlinks: [],
      mounts: [
        {
          kind: 'bind',
          source: join(skel, 'usr/bin'),
          target: join(root, 'usr/bin'),
          readonly: true,
          origin: 'skeleton-ro',
        },
        { kind: 'bind', source: data, target: join(root, 'data'), readonly: false, origin: 'mount' },
        { kind: 'devfs', target: join(root, 'dev'), origin: 'mount.devfs' },
      ],
    };
    const clock = fakeClock();
    const fake = createFakeRunner();
    const driver = createFreeBSDDriver({ runner: fake, ...clock });

    // --- start, in the runtime's order: addresses, mounts, create, exec.start
    fake.expect(
      { argv: ['/sbin/ifconfig', 'em0', 'inet', '198.51.100.10/24', 'alias'] },
      { argv: ['/sbin/mount_nullfs', '-o', 'ro', join(skel, 'usr/bin'), join(root, 'usr/bin')] },
      { argv: ['/sbin/mount_nullfs', data, join(root, 'data')] },
      { argv: ['/sbin/mount', '-t', 'devfs', '-oruleset=5', '.', join(root, 'dev')] },
      { argv: ['/sbin/sysctl', '-n', 'kern.racct.enable'], result: { stdout: '1\n' } },
      { argv: ['/usr/bin/rctl', '-a', `jail:${NAME}:memoryuse:deny=268435456`] },
      {
        argv: [
          '/usr/sbin/jail',
          '-i',
          '-c',
          `name=${NAME}`,
          `path=${root}`,
          'host.hostname=web.example',
          'ip4.addr=198.51.100.10',
          'allow.raw_sockets',
          'allow.nomount',
          'meta=app=web\nversion=v1',
          'env=COLOR=blue',
          'children.max=2',
          'devfs_ruleset=5',
          'persist',
        ],
        result: { stdout: '7\n' },
      },
      {
        argv: [
          '/usr/sbin/jexec',
          '-l',
          NAME,
          '/usr/bin/env',
          'JID=3',
          `JNAME=${NAME}`,
          `JPATH=${root}`,
          '/bin/sh',
          '-c',
          '/bin/sh /etc/rc',
        ],
      },
    );
    const net = await driver.setupNetwork(ctx);
    assert.deepEqual(net, { addresses: ['em0|198.51.100.10/24'] });
    const mounts = await driver.mount(ctx, plan);
    assert.deepEqual(mounts.mounted, [join(root, 'usr/bin'), join(root, 'data'), join(root, 'dev')]);
    assert.deepEqual(mounts.created, [join(root, 'usr'), join(root, 'usr/bin'), join(root, 'data'), join(root, 'dev')]);
    const facts = await driver.create(ctx, net, { memoryBytes: 256 * 1024 * 1024 });
    assert.deepEqual(facts, { initPid: 0, nsIds: { jid: '7', name: NAME }, cgroups: [`jail:${NAME}`] });
    const started = await driver.runInJail(ctx, facts, ['/bin/sh', '-c', '/bin/sh /etc/rc']);
    assert.equal(started.code, 0);
    fake.verify();

    // --- stop, in jail -r's order: exec.stop (runtime), remove, unmount, addresses
    fake.expect(
      { argv: ['/usr/sbin/jls', '-j', '7', 'name'], sync: true, result: { stdout: `${NAME}\n` } },
      { argv: ['/usr/sbin/jls', '-j', '7', 'name'], sync: true, result: { stdout: `${NAME}\n` } },
      { argv: ['/bin/pkill', '-TERM', '-j', '7'] },
      { argv: ['/bin/pgrep', '-j', '7'], result: { stdout: '4242\n' } },
      { argv: ['/bin/pgrep', '-j', '7'], result: { code: 1 } },
      { argv: ['/usr/sbin/jail', '-R', NAME] },
      { argv: ['/usr/bin/rctl', '-r', `jail:${NAME}`] },
      {
        argv: ['/sbin/mount', '-p'],
        result: {
          stdout: `${[
            '/dev/ada0p2\t\t/\t\tufs\trw\t\t1 1',
            'devfs\t\t\t/dev\t\tdevfs\trw\t\t0 0',
            `${join(skel, 'usr/bin')}\t${join(root, 'usr/bin')}\tnullfs\tro\t\t0 0`,
            `${data}\t${join(root, 'data')}\tnullfs\trw\t\t0 0`,
            `devfs\t\t\t${join(root, 'dev')}\tdevfs\trw\t\t0 0`,
          ].join('\n')}\n`,
        },
      },
      { argv: ['/sbin/umount', join(root, 'dev')] },
      { argv: ['/sbin/umount', join(root, 'data')] },
      { argv: ['/sbin/umount', join(root, 'usr/bin')] },
      { argv: ['/sbin/ifconfig', 'em0', 'inet', '198.51.100.10/24', '-alias'] },
    );
    assert.equal(driver.isAlive(facts), true);
    await driver.destroy(ctx, facts, 5000);
    await driver.unmount(ctx, mounts);
    await driver.teardownNetwork(ctx, net);
    fake.verify();
    assert.deepEqual(clock.slept, [100], 'one poll interval until the jail emptied');
    // what the plan created is gone again; the jail's own root stays
    assert.equal(existsSync(join(root, 'usr')), false);
    assert.equal(existsSync(join(root, 'dev')), false);
    assert.equal(existsSync(root), true);
  });

  test('destroy escalates to SIGKILL when processes outlive stop.timeout (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME);
    const clock = fakeClock();
    const fake = createFakeRunner([
      { argv: ['/usr/sbin/jls', '-j', '9', 'name'], sync: true, result: { stdout: `${NAME}\n` } },
      { argv: ['/bin/pkill', '-TERM', '-j', '9'] },
      { argv: ['/bin/pgrep', '-j', '9'], result: { stdout: '11\n' } },
      { argv: ['/bin/pgrep', '-j', '9'], result: { stdout: '11\n' } },
      { argv: ['/bin/pgrep', '-j', '9'], result: { stdout: '11\n' } },
      { argv: ['/bin/pkill', '-KILL', '-j', '9'] },
      { argv: ['/usr/sbin/jail', '-R', NAME] },
      {
        argv: ['/usr/bin/rctl', '-r', `jail:${NAME}`],
        result: { code: 1, stderr: 'rctl: RACCT/RCTL support not present in kernel; see rctl(8) for details\n' },
      },
    ]);
    const driver = createFreeBSDDriver({ runner: fake, pollMs: 100, ...clock });
    await driver.destroy(sb.ctx, { initPid: 0, nsIds: { jid: '9', name: NAME }, cgroups: [] }, 200);
    fake.verify();
    assert.deepEqual(clock.slept, [100, 100]);
  });

  test('destroy of a jail already gone only removes its rctl rules, idempotently (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME);
    const fake = createFakeRunner([
      {
        argv: ['/usr/sbin/jls', '-j', '9', 'name'],
        sync: true,
        result: { code: 1, stderr: 'jls: jail "9" not found\n' },
      },
      {
        argv: ['/usr/bin/rctl', '-r', `jail:${NAME}`],
        result: { code: 1, stderr: 'rctl: failed to remove rule: No such process\n' },
      },
    ]);
    const driver = createFreeBSDDriver({ runner: fake });
    await driver.destroy(sb.ctx, { initPid: 0, nsIds: { jid: '9', name: NAME }, cgroups: [`jail:${NAME}`] }, 1000);
    fake.verify();
  });

  test('isAlive is false when the jid now belongs to another jail (mocked FreeBSD)', () => {
    const fake = createFakeRunner([
      { argv: ['/usr/sbin/jls', '-j', '7', 'name'], sync: true, result: { stdout: 'someone-else\n' } },
    ]);
    const driver = createFreeBSDDriver({ runner: fake });
    assert.equal(driver.isAlive({ initPid: 0, nsIds: { jid: '7', name: NAME }, cgroups: [] }), false);
    assert.equal(driver.isAlive({ initPid: 0, cgroups: [] }), false, 'no jid: nothing to ask');
    fake.verify();
  });

  test('a failing jail -c removes the limits it added and reports jail(8) output (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME);
    const fake = createFakeRunner([
      { argv: ['/sbin/sysctl', '-n', 'kern.racct.enable'], result: { stdout: '1\n' } },
      { argv: ['/usr/bin/rctl', '-a', `jail:${NAME}:maxproc:deny=50`] },
      { argv: ['/usr/bin/rctl', '-a', `jail:${NAME}:pcpu:deny=150`] },
      {
        argv: ['/usr/sbin/jail', '-i', '-c', `name=${NAME}`, `path=${sb.root}`, `host.hostname=${NAME}`, 'persist'],
        result: { code: 1, stderr: `jail: ${NAME}: jail_set: File exists\n` },
      },
      { argv: ['/usr/bin/rctl', '-r', `jail:${NAME}`] },
    ]);
    const driver = createFreeBSDDriver({ runner: fake });
    await assert.rejects(driver.create(sb.ctx, { addresses: [] }, { maxProcs: 50, cpuPercent: 150 }), (e: unknown) => {
      assert.ok(e instanceof JailyardError);
      assert.equal(e.code, 'JY_ERR_STEP_FAILED');
      assert.equal(e.place.jail, NAME);
      assert.equal(e.place.step, 'create');
      assert.match(e.place.output ?? '', /File exists/);
      return true;
    });
    fake.verify();
  });

  test('limits without RACCT fail with JY_ERR_PLATFORM naming kern.racct.enable (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME);
    const fake = createFakeRunner([{ argv: ['/sbin/sysctl', '-n', 'kern.racct.enable'], result: { stdout: '0\n' } }]);
    const driver = createFreeBSDDriver({ runner: fake });
    await assert.rejects(driver.create(sb.ctx, { addresses: [] }, { memoryBytes: 1024 }), (e: unknown) => {
      assert.ok(e instanceof JailyardError);
      assert.equal(e.code, 'JY_ERR_PLATFORM');
      assert.equal(e.place.param, 'limits');
      assert.match(e.message, /kern\.racct\.enable/);
      return true;
    });
    fake.verify();
  });
});
