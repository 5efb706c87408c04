// The `expose` parameter (published ports): its entries, the errors that name the jail, the
// parameter and the bad entry, and the clash between two jails. Pure: no root, no system.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exposeConflict, exposeRules, parseExposeEntry, type ExposeRule } from '../../src/conf/expose.ts';
import { parseParamAssignment } from '../../src/conf/params.ts';
import { parseConfString } from '../../src/conf/evaluate.ts';
import { JailyardError } from '../../src/errors.ts';

const rule = (e: string) => parseExposeEntry(e) as ExposeRule;

test('entries: protocol (tcp by default), one port or same-length ranges, jail port defaults to the host one', () => {
  assert.deepEqual(rule('tcp:8080:80'), {
    proto: 'tcp',
    hostPort: 8080,
    hostPortEnd: 8080,
    jailPort: 80,
    jailPortEnd: 80,
    entry: 'tcp:8080:80',
  });
  assert.equal(rule('udp:5353:53').proto, 'udp');
  assert.equal(rule('UDP:5353:53').proto, 'udp');
  assert.equal(rule('8080:80').proto, 'tcp');
  assert.deepEqual([rule('tcp:8080').hostPort, rule('tcp:8080').jailPort], [8080, 8080]);
  const r = rule(' 8000-8010:80-90 ');
  assert.deepEqual(
    [r.hostPort, r.hostPortEnd, r.jailPort, r.jailPortEnd, r.entry],
    [8000, 8010, 80, 90, '8000-8010:80-90'],
  );
});

test('bad entries are refused with the entry in the message', () => {
  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['sctp:80:80', /unknown protocol "sctp"/],
    ['tcp:0:80', /host port 0 is not in 1\.\.65535/],
    ['tcp:80:65536', /jail port 65536 is not in 1\.\.65535/],
    ['tcp:90-80:80-90', /runs backwards/],
    ['8000-8010:80', /differ in length/],
    ['1-2000:1-2000', /more than 1024 ports/],
    ['tcp:80:80:80', /is not \[tcp:\|udp:\]HOST\[:JAIL\]/],
    ['tcp:http:80', /"http" is not a port/],
    ['8080/udp', /"8080\/udp" is not a port/],
    ['tcp:', /"" is not a port/],
  ];
  for (const [e, re] of bad) {
    const p = parseExposeEntry(e);
    assert.equal(typeof p, 'string', e);
    assert.match(p as string, re, e);
  }
});

test('a CLI word: comma-separated entries, each checked; the error names jail, parameter and entry', () => {
  const ok = parseParamAssignment('expose=tcp:8080:80,udp:5353:53', 'www');
  assert.deepEqual(ok, { kind: 'param', name: 'expose', value: ['tcp:8080:80,udp:5353:53'] });
  assert.equal(exposeRules('www', { expose: (ok as { value: string[] }).value }).length, 2);
  assert.throws(
    () => parseParamAssignment('expose=tcp:8080:80,udp:99999:53', 'www'),
    (e: unknown) =>
      e instanceof JailyardError &&
      e.code === 'JY_ERR_PARAM_VALUE' &&
      e.place.jail === 'www' &&
      e.place.param === 'expose' &&
      /"udp:99999:53"/.test(e.message),
  );
});

test('jail.conf: a list of entries, checked at evaluation with the file position', () => {
  const conf = 'www { expose = "tcp:8080:80", "udp:5353:53"; expose += "9000-9001:7000-7001"; }\n';
  const specs = parseConfString(conf, 'j.conf');
  const www = specs.find((s) => s.name === 'www')!;
  assert.deepEqual(
    exposeRules('www', www.params).map((r) => r.entry),
    ['tcp:8080:80', 'udp:5353:53', '9000-9001:7000-7001'],
  );
  assert.throws(
    () => parseConfString('db { expose = "tcp:5432:5432", "tcp:x"; }\n', 'j.conf'),
    (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_PARAM_VALUE' && /"tcp:x"/.test(e.message),
  );
});

test('one jail publishing a host port twice is refused; tcp and udp of one port are two', () => {
  assert.equal(exposeRules('a', { expose: ['tcp:53', 'udp:53'] }).length, 2);
  assert.throws(
    () => exposeRules('a', { expose: ['8000-8010:80-90', 'tcp:8005:22'] }),
    (e: unknown) =>
      e instanceof JailyardError &&
      e.place.jail === 'a' &&
      e.place.param === 'expose' &&
      /"tcp:8005:22"/.test(e.message),
  );
});

test('two jails clash when a host port of the same protocol overlaps', () => {
  const mine = exposeRules('b', { expose: ['tcp:8005:80', 'udp:9000'] });
  assert.equal(exposeConflict(mine, [{ name: 'x', rules: exposeRules('x', { expose: 'udp:8005' }) }]), undefined);
  const clash = exposeConflict(mine, [{ name: 'a', rules: exposeRules('a', { expose: '8000-8010:80-90' }) }]);
  assert.equal(clash?.jail, 'a');
  assert.equal(clash?.rule.entry, 'tcp:8005:80');
  assert.equal(clash?.other.entry, '8000-8010:80-90');
});
