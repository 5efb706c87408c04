import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createFreeBSDDriver, createFakeRunner } from '../../../src/platform/freebsd/index.ts';
import { createArgs, metaArgs } from '../../../src/platform/freebsd/params.ts';
import { JailyardError } from '../../../src/errors.ts';
import { sandbox } from './fixture.ts';

const NAME = 'jyfb-drv';

describe('FreeBSD driver: parameters, network, exec, meta, leftovers (mocked FreeBSD)', () => {
  test('jail -c gets kernel parameters only; lists joined by commas; booleans bare or no-prefixed (mocked FreeBSD)', () => {
    const args = createArgs(
      {
        name: 'parent.child',
        params: {
          name: 'parent.child',
          'ip4.addr': ['lo1|198.51.100.20', 'em0|198.51.100.21/24 vhid 3 pass x', '198.51.100.22/255.255.255.0'],
          'ip6.addr': '2001:db8::5/64',
          interface: 'lo1',
          ip_hostname: true,
          'mount.fstab': '/etc/fstab.child',
          'mount.procfs': true,
          'exec.clean': true,
          'exec.consolelog': '/var/log/child.log',
          'allow.sysvipc': true,
          persist: true,
          osrelease: '14.2-RELEASE',
          securelevel: 3,
          'zfs.dataset': 'zroot/jails',
          'vnet.interface': 'epair0b',
        },
      },
      '/jails/child',
    );
    assert.deepEqual(args, [
      'name=parent.child',
      'path=/jails/child',
      'host.hostname=parent.child',
      'ip4.addr=198.51.100.20,198.51.100.21,198.51.100.22',
      'ip6.addr=2001:db8::5',
      'allow.sysvipc',
      'osrelease=14.2-RELEASE',
      'securelevel=3',
      'persist',
    ]);
  });

  test('meta/env key operations become jail -m arguments; an empty key is JY_ERR_META_KEY (mocked FreeBSD)', async (t) => {
    assert.deepEqual(
      metaArgs(
        'meta',
        [
          { op: 'set', key: 'a', value: '1' },
          { op: 'replace', value: 'ttt' },
          { op: 'set', key: 'b', value: '=' },
          { op: 'remove', key: 'c' },
        ],
        'j',
      ),
      ['meta.a=1', 'meta=ttt', 'meta.b==', 'meta.c'],
    );
    assert.throws(
      () => metaArgs('env', [{ op: 'set', key: '', value: 'x' }], 'j'),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_META_KEY' && e.place.param === 'env',
    );

    const sb = sandbox(t, NAME);
    const fake = createFakeRunner([
      { argv: ['/usr/sbin/jail', '-m', `name=${NAME}`, 'meta.app=web', 'env.COLOR=red', 'env.OLD'] },
      {
        argv: ['/usr/sbin/jls', '--libxo', 'json', '-j', NAME, 'meta', 'env'],
        result: {
          stdout: JSON.stringify({
            __version: '2',
            'jail-information': { jail: [{ meta: 'app=web', env: 'COLOR=red' }] },
          }).replace('{"meta"', '{"jid":"5","meta"'),
        },
      },
      {
        argv: ['/usr/sbin/jail', '-m', `name=${NAME}`, `meta=${'x'.repeat(5000)}`],
        result: { code: 1, stderr: `jail: ${NAME}: meta: too large\n` },
      },
    ]);
    const driver = createFreeBSDDriver({ runner: fake });
    await driver.applyMeta(sb.ctx, {
      meta: [{ op: 'set', key: 'app', value: 'web' }],
      env: [
        { op: 'set', key: 'COLOR', value: 'red' },
        { op: 'remove', key: 'OLD' },
      ],
    });
    assert.deepEqual(await driver.readMeta(NAME), { meta: 'app=web', env: 'COLOR=red' });
    await assert.rejects(
      driver.applyMeta(sb.ctx, { meta: [{ op: 'replace', value: 'x'.repeat(5000) }] }),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_META_TOO_LARGE' && e.place.jail === NAME,
    );
    fake.verify();
  });

  test('addresses: interface param or iface| prefix; a failure removes the aliases already added (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME, {
      interface: 'lo1',
      'ip4.addr': ['198.51.100.30', 'em0|198.51.100.31/24'],
      'ip6.addr': ['2001:db8::30'],
    });
    const fake = createFakeRunner([
      { argv: ['/sbin/ifconfig', 'lo1', 'inet', '198.51.100.30', 'netmask', '255.255.255.255', 'alias'] },
      { argv: ['/sbin/ifconfig', 'em0', 'inet', '198.51.100.31/24', 'alias'] },
      {
        argv: ['/sbin/ifconfig', 'lo1', 'inet6', '2001:db8::30', 'prefixlen', '128', 'alias'],
        result: { code: 1, stderr: 'ifconfig: ioctl (SIOCAIFADDR): File exists\n' },
      },
      { argv: ['/sbin/ifconfig', 'em0', 'inet', '198.51.100.31/24', '-alias'] },
      { argv: ['/sbin/ifconfig', 'lo1', 'inet', '198.51.100.30', 'netmask', '255.255.255.255', '-alias'] },
    ]);
    const driver = createFreeBSDDriver({ runner: fake });
    await assert.rejects(driver.setupNetwork(sb.ctx), (e: unknown) => {
      assert.ok(e instanceof JailyardError);
      assert.equal(e.code, 'JY_ERR_ADDRESS');
      assert.equal(e.place.param, 'ip6.addr');
      assert.equal(e.place.step, 'addresses');
      assert.match(e.message, /2001:db8::30 to lo1/);
      return true;
    });
    fake.verify();
  });

  test('addresses without any interface are left to the host; teardown tolerates an alias already gone (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME, { 'ip4.addr': '198.51.100.40' });
    const fake = createFakeRunner([
      {
        argv: ['/sbin/ifconfig', 'em0', 'inet6', '2001:db8::40/64', '-alias'],
        result: { code: 1, stderr: "ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address\n" },
      },
    ]);
    const driver = createFreeBSDDriver({ runner: fake });
    assert.deepEqual(await driver.setupNetwork(sb.ctx), { addresses: [] });
    await driver.teardownNetwork(sb.ctx, { addresses: ['em0|2001:db8::40/64'] });
    fake.verify();
  });

  test('runInJail: jexec -l -U user, env(1) adds the jail variables, cwd through a fixed sh script (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME);
    const fake = createFakeRunner([
      {
        argv: [
          '/usr/sbin/jexec',
          '-l',
          '-U',
          'www',
          NAME,
          '/usr/bin/env',
          'JID=3',
          `JNAME=${NAME}`,
          `JPATH=${sb.root}`,
          'MODE=prod',
          '/bin/sh',
          '-c',
          'cd -- "$1" || exit 125; shift; exec "$@"',
          'jailyard-cwd',
          '/srv/app; rm -rf /',
          'node',
          'server.js',
        ],
        result: { stdout: 'ok\n' },
      },
    ]);
    const driver = createFreeBSDDriver({ runner: fake });
    const r = await driver.runInJail(
      sb.ctx,
      { initPid: 0, nsIds: { jid: '7', name: NAME }, cgroups: [] },
      ['node', 'server.js'],
      { user: 'www', cwd: '/srv/app; rm -rf /', env: { MODE: 'prod' }, timeoutMs: 3000 },
    );
    assert.equal(r.stdout, 'ok\n');
    assert.deepEqual(fake.calls[0]!.opts, {
      env: { PATH: '/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin' },
      timeoutMs: 3000,
    });
    fake.verify();
  });

  test('runHost: /bin/sh -c with JID, JNAME, JPATH and the console log passed through (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME);
    const fake = createFakeRunner([{ argv: ['/bin/sh', '-c', 'echo $JNAME > /tmp/x'] }]);
    const driver = createFreeBSDDriver({ runner: fake });
    await driver.runHost(sb.ctx, 'echo $JNAME > /tmp/x', { consoleLog: '/var/log/jail.log', env: { EXTRA: '1' } });
    assert.deepEqual(fake.calls[0]!.opts, {
      env: {
        PATH: '/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin',
        JID: '3',
        JNAME: NAME,
        JPATH: sb.root,
        EXTRA: '1',
      },
      consoleLog: '/var/log/jail.log',
    });
    fake.verify();
  });

  test('modify: jail -m for the hostname, rctl rules replaced for limits (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME);
    const fake = createFakeRunner([
      { argv: ['/usr/sbin/jail', '-m', `name=${NAME}`, 'host.hostname=new.example'] },
      {
        argv: ['/usr/bin/rctl', '-r', `jail:${NAME}`],
        result: { code: 1, stderr: 'rctl: failed to remove rule: No such process\n' },
      },
      { argv: ['/sbin/sysctl', '-n', 'kern.racct.enable'], result: { stdout: '1\n' } },
      { argv: ['/usr/bin/rctl', '-a', `jail:${NAME}:memoryuse:deny=1073741824`] },
      { argv: ['/usr/bin/rctl', '-r', `jail:${NAME}`] },
    ]);
    const driver = createFreeBSDDriver({ runner: fake });
    const facts = { initPid: 0, nsIds: { jid: '7', name: NAME }, cgroups: [] as string[] };
    await driver.modify(sb.ctx, facts, { hostname: 'new.example', limits: { memoryBytes: 1024 ** 3 } });
    await driver.modify(sb.ctx, facts, { limits: {} });
    fake.verify();
  });

  test('modify: new meta/env values of a running jail go to the kernel with jail -m (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME);
    const fake = createFakeRunner([
      { argv: ['/usr/sbin/jail', '-m', `name=${NAME}`, 'meta=app=www\nversion=v2', 'env=greeting=hi there'] },
      { argv: ['/usr/sbin/jail', '-m', `name=${NAME}`, 'env='] },
    ]);
    const driver = createFreeBSDDriver({ runner: fake });
    const facts = { initPid: 0, nsIds: { jid: '7', name: NAME }, cgroups: [] as string[] };
    await driver.modify(sb.ctx, facts, { meta: 'app=www\nversion=v2', env: 'greeting=hi there' });
    await driver.modify(sb.ctx, facts, { env: '' });
    fake.verify();
  });

  test('mountsBelow: what mount -p lists at or below a folder, so it is never deleted through a mount (mocked FreeBSD)', () => {
    const fake = createFakeRunner([
      {
        argv: ['/sbin/mount', '-p'],
        sync: true,
        result: {
          stdout:
            '/dev/ada0p2\t/\tufs\trw\t1\t1\n/usr/jails/base\t/var/db/jailyard/jails/www/root\tnullfs\tro\t0\t0\n/var/db/jailyard/jails/www/rw/var\t/var/db/jailyard/jails/www/root/var\tnullfs\trw\t0\t0\n/x\t/var/db/jailyard/jails/www2/root\tnullfs\tro\t0\t0\n',
        },
      },
    ]);
    const driver = createFreeBSDDriver({ runner: fake });
    assert.deepEqual(driver.mountsBelow('/var/db/jailyard/jails/www'), [
      '/var/db/jailyard/jails/www/root',
      '/var/db/jailyard/jails/www/root/var',
    ]);
    fake.verify();
  });

  test('preflight: FreeBSD and root, else JY_ERR_PLATFORM / JY_ERR_NOT_ROOT (mocked FreeBSD)', async () => {
    const ok = createFakeRunner([{ argv: ['/usr/bin/uname', '-s'], result: { stdout: 'FreeBSD\n' } }]);
    await createFreeBSDDriver({ runner: ok, getuid: () => 0 }).preflight();
    ok.verify();
    const linux = createFakeRunner([{ argv: ['/usr/bin/uname', '-s'], result: { stdout: 'Linux\n' } }]);
    await assert.rejects(
      createFreeBSDDriver({ runner: linux, getuid: () => 0 }).preflight(),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_PLATFORM' && /Linux/.test(e.message),
    );
    const user = createFakeRunner([{ argv: ['/usr/bin/uname', '-s'], result: { stdout: 'FreeBSD\n' } }]);
    await assert.rejects(
      createFreeBSDDriver({ runner: user, getuid: () => 1001 }).preflight(),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_NOT_ROOT',
    );
  });

  test('scanLeftovers: own mounts from mount -p (newest first), own jails from jls JSON, own rctl subjects (mocked FreeBSD)', async () => {
    const mountP = [
      '/dev/ada0p2\t\t/\t\t\tufs\trw\t\t1 1',
      '/skel/14.2\t/var/db/jailyard/jails/web/root/basejail\tnullfs\tro\t0 0',
      'devfs\t/var/db/jailyard/jails/web/root/dev\tdevfs\trw\t0 0',
      '/skel/14.2\t/jails/admins-own/basejail\tnullfs\tro\t0 0',
    ].join('\n');
    const jls = JSON.stringify({
      __version: '2',
      'jail-information': {
        jail: [
          { jid: '4', name: 'web' },
          { jid: '5', name: 'admins-own' },
        ],
      },
    });
    const fake = createFakeRunner([
      { argv: ['/sbin/mount', '-p'], result: { stdout: mountP } },
      { argv: ['/usr/sbin/jls', '--libxo', 'json', 'jid', 'name'], result: { stdout: jls } },
      {
        argv: ['/usr/bin/rctl'],
        result: { stdout: 'jail:web:memoryuse:deny=1024\njail:web:maxproc:deny=9\njail:admins-own:maxproc:deny=9\n' },
      },
      { argv: ['/sbin/umount', '/var/db/jailyard/jails/web/root/dev'] },
      { argv: ['/usr/sbin/jail', '-R', '4'] },
      { argv: ['/usr/bin/rctl', '-r', 'jail:web'] },
    ]);
    const driver = createFreeBSDDriver({ runner: fake, stateRoot: '/var/db/jailyard/', isOwnJail: (n) => n === 'web' });
    const found = await driver.scanLeftovers();
    assert.deepEqual(found, {
      mounts: ['/var/db/jailyard/jails/web/root/dev', '/var/db/jailyard/jails/web/root/basejail'],
      netns: [],
      links: [],
      cgroups: ['jail:web'],
      pids: [4],
    });
    await driver.removeLeftover('mounts', found.mounts[0]!);
    await driver.removeLeftover('pids', 4);
    await driver.removeLeftover('cgroups', 'jail:web');
    await assert.rejects(
      driver.removeLeftover('netns', 'x'),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_USAGE',
    );
    fake.verify();
  });

  test('the strict fake fails verify() on an unexpected command even if the driver swallowed it (mocked FreeBSD)', async () => {
    const fake = createFakeRunner([{ argv: ['/usr/bin/uname', '-s'], result: { stdout: 'FreeBSD\n' } }]);
    await assert.rejects(fake.run(['/usr/bin/uname', '-a']));
    assert.throws(() => fake.verify(), /unexpected run \["\/usr\/bin\/uname","-a"\]/);
  });
});
