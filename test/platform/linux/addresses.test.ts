// Parsing and range arithmetic of jail addresses (pure, no root needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jailAddresses, inNetwork, networksOverlap } from '../../../src/platform/linux/addresses.ts';

test('ip4.addr/ip6.addr forms: plain, with prefix, FreeBSD iface|addr', () => {
  const got = jailAddresses('j', { 'ip4.addr': ['198.51.100.9', 'em0|198.51.100.10/25'], 'ip6.addr': '2001:db8::5' });
  assert.deepEqual(
    got.map((a) => a.cidr),
    ['198.51.100.9/24', '198.51.100.10/25', '2001:db8::5/64'],
  );
});

test('a bad address names jail and parameter', () => {
  assert.throws(() => jailAddresses('web', { 'ip4.addr': '198.51.100.300' }), {
    code: 'JY_ERR_ADDRESS',
    place: { jail: 'web', param: 'ip4.addr' },
  });
});

test('range arithmetic', () => {
  assert.ok(inNetwork('198.51.100.7', '198.51.100.0/24'));
  assert.ok(!inNetwork('192.0.2.7', '198.51.100.0/24'));
  assert.ok(inNetwork('fd00::9', 'fd00::2/64'));
  assert.ok(networksOverlap('198.51.0.0/16', '198.51.100.0/24'));
  assert.ok(!networksOverlap('192.0.2.2/24', '198.51.100.0/24'));
});
