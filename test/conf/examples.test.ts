import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadConf } from '../../src/conf/evaluate.ts';

const example = (f: string) => fileURLToPath(new URL(`../../examples/${f}`, import.meta.url));
const jails = (f: string) => Object.fromEntries(loadConf(example(f)).map((s) => [s.name, s.params]));

describe('examples resolve to what a FreeBSD user expects', () => {
  test('jail.conf(5) EXAMPLES', () => {
    const j = jails('jail.conf.5.conf');
    assert.deepEqual(Object.keys(j), ['foo', 'bar']);
    assert.deepEqual(j.foo, {
      name: 'foo',
      'exec.start': ['/bin/sh /etc/rc'],
      'exec.stop': ['/bin/sh /etc/rc.shutdown jail'],
      'exec.clean': true,
      'mount.devfs': true,
      path: '/var/jail/foo',
      'host.hostname': 'foo.com',
      'ip4.addr': ['10.1.1.1', '10.1.1.2', '10.1.1.3'],
    });
    assert.deepEqual(j.bar, {
      name: 'bar',
      'exec.start': [''],
      'exec.stop': [''],
      'exec.clean': true,
      'mount.devfs': false,
      path: '/',
      persist: true,
    });
  });
  test('Handbook: classic, thin (fstab), VNET (variables, +=), Linux (mount +=)', () => {
    const j = jails('handbook.conf');
    assert.deepEqual(Object.keys(j), ['classic', 'thinjail', 'vnetjail', 'ubuntu']);
    assert.equal(j.classic?.path, '/usr/local/jails/containers/classic');
    assert.equal(j.classic?.['exec.consolelog'], '/var/log/jail_console_classic.log');
    assert.deepEqual(j.thinjail?.['mount.fstab'], ['/usr/local/jails/thinjail.fstab']);
    assert.equal(j.vnetjail?.vnet, 'new');
    assert.deepEqual(j.vnetjail?.['vnet.interface'], ['epair154b']);
    assert.deepEqual(j.vnetjail?.['exec.prestart'], [
      '/sbin/ifconfig epair154 create up',
      '/sbin/ifconfig epair154a up descr jail:vnetjail',
      '/sbin/ifconfig bridge0 addm epair154a up',
    ]);
    assert.deepEqual(j.vnetjail?.['exec.start'], [
      '/bin/sh /etc/rc',
      '/sbin/ifconfig epair154b 192.168.1.154/24 up',
      '/sbin/route add default 192.168.1.1',
    ]);
    assert.deepEqual(j.vnetjail?.['exec.poststop'], [
      '/sbin/ifconfig bridge0 deletem epair154a',
      '/sbin/ifconfig epair154a destroy',
    ]);
    assert.ok(!('id' in (j.vnetjail ?? {})), 'variables are not parameters');
    assert.equal(j.ubuntu?.enforce_statfs, 1);
    assert.equal(
      (j.ubuntu!.mount as string[])[0],
      'devfs     /usr/local/jails/containers/ubuntu/compat/ubuntu/dev     devfs     rw  0 0',
    );
    assert.equal((j.ubuntu!.mount as string[]).length, 5);
  });
  test('jailyard parameters with a partial wildcard', () => {
    const j = jails('jailyard.conf');
    assert.equal(j.web1?.['limits.memory'], '256M');
    assert.equal(j.web2?.meta, 'app=www\ntier=front');
    assert.equal(j.db?.['limits.memory'], undefined);
    assert.deepEqual(j.db?.depend, ['web1', 'web2']);
    assert.equal(j.db?.skeleton, 'debian@2');
    assert.equal(j.db?.path, '/var/jails/db');
  });
});
