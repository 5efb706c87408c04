import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
  mkdirSync,
} from 'node:fs';
import { join } from 'node:path';
import { seedWritable, copyTree, copyListed } from '../../src/skeleton/writable.ts';
import { loadDefaults } from '../../src/defaults.ts';
import { JailyardError } from '../../src/errors.ts';
import { tempDir, makeSkeleton } from './fixtures.ts';

const t = tempDir('writable');
after(t.cleanup);
const skel = join(t.dir, 'skel');
makeSkeleton(skel);
const rules = loadDefaults().skeleton.seed!.linux;
const writable = loadDefaults().skeleton.writable.linux;

describe('seedWritable with the default linux rules', () => {
  const jail = join(t.dir, 'jail1');
  mkdirSync(jail);
  const res = seedWritable(skel, jail, writable, { rules });

  test('etc copied with modes and symlinks as symlinks; host keys and machine-id skipped', () => {
    assert.equal(readFileSync(join(jail, 'etc/passwd'), 'utf8'), 'root:x:0:0:root:/root:/bin/sh\n');
    assert.equal(lstatSync(join(jail, 'etc/shadow')).mode & 0o777, 0o640);
    assert.equal(readlinkSync(join(jail, 'etc/localtime')), '/usr/share/zoneinfo/UTC');
    assert.ok(!existsSync(join(jail, 'etc/ssh/ssh_host_ed25519_key')));
    assert.ok(existsSync(join(jail, 'etc/ssh/sshd_config')));
  });
  test('var and usr/local as structure only: dirs and symlinks, no files; var/tmp and usr/local/* empty', () => {
    assert.ok(lstatSync(join(jail, 'var/log')).isDirectory());
    assert.ok(!existsSync(join(jail, 'var/log/syslog')));
    assert.ok(!existsSync(join(jail, 'var/lib/dpkg/status')));
    assert.equal(readlinkSync(join(jail, 'var/run')), '/run');
    assert.ok(lstatSync(join(jail, 'var/tmp')).isDirectory());
    assert.ok(!existsSync(join(jail, 'var/tmp/host-build')));
    // usr/local/* and var/cache/*: the first level only
    assert.ok(lstatSync(join(jail, 'usr/local/share')).isDirectory());
    assert.ok(!existsSync(join(jail, 'usr/local/share/doc')));
  });
  test('root, home, tmp: the empty dir only (no host secrets), modes kept', () => {
    assert.ok(!existsSync(join(jail, 'root/.bash_history')));
    assert.ok(!existsSync(join(jail, 'home/alice')));
    assert.equal(lstatSync(join(jail, 'tmp')).mode & 0o7777, 0o1777);
  });
  test('small: only etc file bytes counted', () => {
    assert.ok(res.bytes < 200, `bytes ${res.bytes}`);
    assert.ok(res.entries > 10);
  });
  test('re-seeding leaves existing entries alone', () => {
    writeFileSync(join(jail, 'etc/hosts'), 'jail edit\n');
    const again = seedWritable(skel, jail, writable, { rules });
    assert.equal(again.entries, 0);
    assert.equal(readFileSync(join(jail, 'etc/hosts'), 'utf8'), 'jail edit\n');
  });
});

describe('seedWritable never follows a jail-planted symlink out of the jail', () => {
  test('a symlink at etc (dir) or etc/passwd (file) pointing at a host file is not written through', () => {
    const host = join(t.dir, 'host-etc');
    mkdirSync(host);
    writeFileSync(join(host, 'passwd'), 'HOST ORIGINAL\n');
    const jail = join(t.dir, 'jail-evil');
    mkdirSync(jail);
    symlinkSync(host, join(jail, 'etc'));
    const res = seedWritable(skel, jail, ['etc'], { rules: { copy: ['etc'] } });
    assert.deepEqual(res.existing, ['etc']);
    assert.equal(readFileSync(join(host, 'passwd'), 'utf8'), 'HOST ORIGINAL\n');

    const jail2 = join(t.dir, 'jail-evil2');
    mkdirSync(join(jail2, 'etc'), { recursive: true });
    symlinkSync(join(host, 'passwd'), join(jail2, 'etc/passwd'));
    seedWritable(skel, jail2, ['etc'], { rules: { copy: ['etc'] } });
    assert.equal(readFileSync(join(host, 'passwd'), 'utf8'), 'HOST ORIGINAL\n');
    assert.ok(lstatSync(join(jail2, 'etc/passwd')).isSymbolicLink());
  });
  test('a symlinked parent of a nested writable dir is refused with JY_ERR_PATH', () => {
    const host = join(t.dir, 'host-usr');
    mkdirSync(host);
    const jail = join(t.dir, 'jail-evil3');
    mkdirSync(jail);
    symlinkSync(host, join(jail, 'usr'));
    try {
      seedWritable(skel, jail, ['usr/local'], { rules: { copy: ['usr/local'] }, jail: 'evil' });
      assert.fail('did not throw');
    } catch (e) {
      assert.ok(e instanceof JailyardError);
      assert.equal(e.code, 'JY_ERR_PATH');
      assert.equal(e.place.jail, 'evil');
    }
    assert.ok(!existsSync(join(host, 'local')));
  });
  test('bad list entries are refused', () => {
    assert.throws(
      () => seedWritable(skel, join(t.dir, 'x'), ['../etc']),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_PATH',
    );
  });
});

describe('copyTree (full strategy)', () => {
  test('independent copy; symlinks kept as links; destination must be empty', () => {
    const dest = join(t.dir, 'full');
    const res = copyTree(skel, dest);
    assert.equal(readlinkSync(join(dest, 'bin')), 'usr/bin');
    assert.equal(readFileSync(join(dest, 'usr/local/share/doc/big.txt'), 'utf8').length, 5000);
    assert.equal(readFileSync(join(dest, 'var/log/syslog'), 'utf8'), 'lots of logs\n');
    assert.ok(res.bytes > 5000);
    assert.throws(
      () => copyTree(skel, dest),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_PATH',
    );
  });
});

describe('copyListed (a full jail of a live tree, skel create --copy of the host root)', () => {
  test('copies only the listed entries, symlinks as symlinks, missing entries left out', () => {
    const src = join(t.dir, 'listed-src');
    makeSkeleton(src, { 'work/secret': 'host only\n', 'home/alice/.profile': 'x\n' });
    const dest = join(t.dir, 'listed-dest');
    copyListed(src, dest, ['usr/bin', 'usr/lib32', 'bin']);
    assert.deepEqual(readdirSync(dest).sort(), ['bin', 'usr']);
    assert.deepEqual(readdirSync(join(dest, 'usr')), ['bin']);
    assert.equal(readlinkSync(join(dest, 'bin')), 'usr/bin');
    assert.equal(readFileSync(join(dest, 'usr/bin/sh'), 'utf8'), '#!fake sh\n');
    assert.throws(
      () => copyListed(src, dest, ['usr/bin']),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_PATH',
    );
  });
});
