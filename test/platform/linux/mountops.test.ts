// The pure part of batched mounting: mount(8) option words to mount(2) flags and data, and
// the ops a bind, a read-only bind and a filesystem become.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MS, batchArgv, ops, parseMountOptions } from '../../../src/platform/linux/mountops.ts';

test('option words become flags; the rest is the filesystem data, in order', () => {
  assert.deepEqual(parseMountOptions(['mode=755', 'nosuid', 'size=64k']), {
    flags: MS.NOSUID,
    data: 'mode=755,size=64k',
  });
  assert.deepEqual(parseMountOptions(['ro,nodev,noexec']), { flags: MS.RDONLY | MS.NODEV | MS.NOEXEC, data: '' });
  // later words win, like mount(8): ro then rw is read-write
  assert.deepEqual(parseMountOptions(['ro', 'rw', 'defaults']), { flags: 0, data: '' });
  assert.deepEqual(parseMountOptions(['lowerdir=/a:/b', 'upperdir=/u']), {
    flags: 0,
    data: 'lowerdir=/a:/b,upperdir=/u',
  });
});

test('a read-only bind is a bind plus a read-only remount; only the bind makes a mount', () => {
  const b = ops.bind('/usr', '/j/usr', true);
  assert.equal(b.length, 2);
  assert.deepEqual(b[0]!.op, { op: 'm', source: '/usr', target: '/j/usr', fstype: '', flags: MS.BIND, data: '' });
  assert.deepEqual(b[1]!.op, {
    op: 'm',
    source: '',
    target: '/j/usr',
    fstype: '',
    flags: MS.BIND | MS.REMOUNT | MS.RDONLY,
    data: '',
  });
  assert.equal(b[0]!.creates, '/j/usr');
  assert.equal(b[1]!.creates, undefined);
  // a root bound onto itself hides nothing below it
  assert.equal(ops.bind('/j', '/j', false)[0]!.covers, undefined);
});

test('every value is its own argument (no shell, no splitting)', () => {
  const argv = batchArgv([
    ...ops.fs('tmpfs', 'tmpfs', '/j/a b', ['mode=1777']),
    ...ops.mkdir('/j/a b/c; rm -rf /', 0o700),
    ...ops.umount('/j/x', true),
  ]);
  assert.deepEqual(argv.slice(1), [
    'm',
    'tmpfs',
    '/j/a b',
    'tmpfs',
    '0',
    'mode=1777',
    'd',
    '/j/a b/c; rm -rf /',
    '700',
    'u',
    '/j/x',
    '2',
  ]);
});
