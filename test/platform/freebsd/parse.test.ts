import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseJlsJson, parseMountP, parseRctl } from '../../../src/platform/freebsd/parse.ts';
import { JailyardError } from '../../../src/errors.ts';

describe('FreeBSD tool output parsers (mocked FreeBSD)', () => {
  test('jls --libxo json, default columns (mocked FreeBSD)', () => {
    const out = JSON.stringify({
      __version: '2',
      'jail-information': {
        jail: [
          { jid: 1, ipv4: '198.51.100.10', hostname: 'web.example', path: '/jails/web' },
          { jid: 2, ipv4: '', hostname: 'db', path: '/jails/db' },
        ],
      },
    });
    const jails = parseJlsJson(out);
    assert.equal(jails.length, 2);
    assert.deepEqual(jails[0], {
      jid: 1,
      path: '/jails/web',
      hostname: 'web.example',
      ip4: ['198.51.100.10'],
      ip6: [],
      params: { jid: '1', ipv4: '198.51.100.10', hostname: 'web.example', path: '/jails/web' },
    });
    assert.deepEqual(jails[1]!.ip4, []);
  });

  test('jls --libxo json with parameters: string jid, address lists, meta with newlines (mocked FreeBSD)', () => {
    const out = `{"__version": "2", "jail-information": {"jail": [
      {"jid":"7","name":"jyfb-web","host.hostname":"web.example","ip4.addr":["198.51.100.10","198.51.100.11"],
       "ip6.addr":[{"ipv6_addr":["2001:db8::1"]}],"meta":"app=web\\nversion=v1","env":""}
    ]}}`;
    const [j] = parseJlsJson(out);
    assert.ok(j);
    assert.equal(j.jid, 7);
    assert.equal(j.name, 'jyfb-web');
    assert.equal(j.hostname, 'web.example');
    assert.deepEqual(j.ip4, ['198.51.100.10', '198.51.100.11']);
    assert.deepEqual(j.ip6, ['2001:db8::1']);
    assert.equal(j.params.meta, 'app=web\nversion=v1');
    assert.equal(j.params.env, '');
  });

  test('jls JSON with no jails, and broken JSON (mocked FreeBSD)', () => {
    assert.deepEqual(parseJlsJson('{"__version": "2", "jail-information": {"jail": []}}\n'), []);
    assert.throws(
      () => parseJlsJson('{"__version": "2", "jail-inf'),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_PLATFORM',
    );
  });

  test('mount -p: tab-padded fstab lines, escaped blanks (mocked FreeBSD)', () => {
    const out = [
      '/dev/ada0p2\t\t/\t\t\tufs\trw\t\t1 1',
      'devfs\t\t\t/dev\t\t\tdevfs\trw,multilabel\t0 0',
      'zroot/var/db/jailyard\t/var/db/jailyard\tzfs\trw,nfsv4acls\t0 0',
      '/usr/local/jailyard/skel/14.2/bin /var/db/jailyard/jails/web/root/bin nullfs ro 0 0',
      '/home/me/my\\040data\t/var/db/jailyard/jails/web/root/data\tnullfs\trw\t\t0 0',
      '',
    ].join('\n');
    const entries = parseMountP(out);
    assert.equal(entries.length, 5);
    assert.deepEqual(entries[1], { source: 'devfs', target: '/dev', fstype: 'devfs', options: ['rw', 'multilabel'] });
    assert.deepEqual(entries[3], {
      source: '/usr/local/jailyard/skel/14.2/bin',
      target: '/var/db/jailyard/jails/web/root/bin',
      fstype: 'nullfs',
      options: ['ro'],
    });
    assert.equal(entries[4]!.source, '/home/me/my data');
  });

  test('mount -p: a line that is not six fields is an error, not a guess (mocked FreeBSD)', () => {
    assert.throws(
      () => parseMountP('/a b\t/c\tnullfs\tro\t0 0\n'),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_PLATFORM' && /line 1/.test(e.message),
    );
  });

  test('rctl rule listing (mocked FreeBSD)', () => {
    const rules = parseRctl(
      'jail:jyfb-web:memoryuse:deny=268435456\njail:jyfb-web:maxproc:deny=50\nuser:www:openfiles:log=1000/user\n',
    );
    assert.equal(rules.length, 3);
    assert.deepEqual(rules[0], {
      rule: 'jail:jyfb-web:memoryuse:deny=268435456',
      subjectType: 'jail',
      subject: 'jyfb-web',
      resource: 'memoryuse',
      action: 'deny',
      amount: '268435456',
    });
    assert.equal(rules[2]!.amount, '1000/user');
  });
});
