// The addresses step on FreeBSD (mocked tools): aliases added in order; when one fails the
// ones added before are removed again, and when that fails too the error says both, with
// the first failure kept as its cause.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JailyardError } from '../../../src/errors.ts';
import type { JailContext } from '../../../src/platform/driver.ts';
import { createFakeRunner, createFreeBSDDriver } from '../../../src/platform/freebsd/index.ts';
import { TOOLS } from '../../../src/platform/freebsd/tools.ts';

const NAME = 'fbnet';
const ctx: JailContext = {
  spec: { name: NAME, params: { name: NAME, 'ip4.addr': ['em0|198.51.100.117/24', 'em0|198.51.100.118/24'] } },
  name: NAME,
  jid: 3,
  path: '/nonexistent/fbnet',
  stateDir: '/nonexistent/fbnet-state',
};
const add = (addr: string) => [TOOLS.ifconfig, 'em0', 'inet', `${addr}/24`, 'alias'];
const del = (addr: string) => [TOOLS.ifconfig, 'em0', 'inet', `${addr}/24`, '-alias'];

test('a failed alias add removes the ones added before (mocked FreeBSD)', async () => {
  const fake = createFakeRunner([
    { argv: add('198.51.100.117') },
    { argv: add('198.51.100.118'), result: { code: 1, stderr: 'ifconfig: SIOCAIFADDR: File exists\n' } },
    { argv: del('198.51.100.117') },
  ]);
  await assert.rejects(createFreeBSDDriver({ runner: fake }).setupNetwork(ctx), (e: unknown) => {
    assert.ok(e instanceof JailyardError);
    assert.equal(e.code, 'JY_ERR_ADDRESS');
    assert.equal(e.message, 'adding 198.51.100.118 to em0 failed: ifconfig: SIOCAIFADDR: File exists');
    assert.deepEqual(
      { jail: e.place.jail, param: e.place.param, step: e.place.step },
      { jail: NAME, param: 'ip4.addr', step: 'addresses' },
    );
    assert.equal(e.cause, undefined);
    return true;
  });
  fake.verify();
});

test('when removing them fails too, the error says both and keeps the first as its cause (mocked FreeBSD)', async () => {
  const fake = createFakeRunner([
    { argv: add('198.51.100.117') },
    { argv: add('198.51.100.118'), result: { code: 1, stderr: 'ifconfig: SIOCAIFADDR: File exists\n' } },
    { argv: del('198.51.100.117'), result: { code: 1, stderr: 'ifconfig: SIOCDIFADDR: Permission denied\n' } },
  ]);
  await assert.rejects(createFreeBSDDriver({ runner: fake }).setupNetwork(ctx), (e: unknown) => {
    assert.ok(e instanceof JailyardError);
    assert.equal(e.code, 'JY_ERR_ADDRESS');
    assert.equal(
      e.message,
      'adding 198.51.100.118 to em0 failed: ifconfig: SIOCAIFADDR: File exists; removing the addresses added ' +
        'before failed too: removing addresses failed: em0|198.51.100.117/24: ifconfig: SIOCDIFADDR: Permission denied',
    );
    assert.equal(e.place.param, 'ip4.addr');
    assert.ok(e.cause instanceof JailyardError);
    assert.equal(e.cause.message, 'adding 198.51.100.118 to em0 failed: ifconfig: SIOCAIFADDR: File exists');
    return true;
  });
  fake.verify();
});
