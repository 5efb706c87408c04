// beneath.ts: making and removing entries in a tree its owner changes meanwhile (a nested
// jail's root, its running parent's folder). A symlink anywhere on the way, or swapped in
// for a directory after a first look, never leads a write or a removal out of the tree.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openInRoot, treeBeneath } from '../../../src/platform/linux/beneath.ts';

describe('treeBeneath', () => {
  let dir: string;
  let root: string;
  let outside: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'jy-beneath-'));
    root = join(dir, 'root');
    outside = join(dir, 'host');
    mkdirSync(root);
    mkdirSync(outside);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const tree = () => treeBeneath(root, (p) => p);

  test('makes directories, files and links below the root, and says what it made', () => {
    const t = tree();
    assert.deepEqual(t.mkdirp(join(root, 'a/b')), [join(root, 'a'), join(root, 'a/b')]);
    assert.deepEqual(t.mkdirp(join(root, 'a/b')), []);
    assert.equal(t.touch(join(root, 'a/b/f')), true);
    assert.equal(t.touch(join(root, 'a/b/f')), false);
    assert.equal(t.exists(join(root, 'a/b/f')), true);
    assert.equal(t.symlink('/x', join(root, 'a/l')), true);
    assert.equal(t.symlink('/x', join(root, 'a/l')), false, 'the same link again is kept');
    assert.throws(() => t.symlink('/y', join(root, 'a/l')), /EEXIST/);
    t.remove(join(root, 'a/l'), true);
    t.remove(join(root, 'a/b/f'), true);
    t.remove(join(root, 'a/b'), true);
    assert.deepEqual(readdirSync(join(root, 'a')), []);
  });

  test('a symlink on the way to the host is never followed: no write, no removal there', () => {
    const t = tree();
    mkdirSync(join(root, 'j'));
    symlinkSync(outside, join(root, 'j/dev'));
    writeFileSync(join(outside, 'tini'), '');
    assert.throws(() => t.mkdirp(join(root, 'j/dev/pts')), /not a directory/);
    assert.throws(() => t.touch(join(root, 'j/dev/null')), /not a directory/);
    assert.throws(() => t.symlink('x', join(root, 'j/dev/fd')), /not a directory/);
    assert.equal(t.exists(join(root, 'j/dev/tini')), false);
    t.remove(join(root, 'j/dev/tini'), true);
    assert.deepEqual(readdirSync(outside), ['tini'], 'the host folder is as it was');
    // the link itself (the last part) is removed as a link, never followed
    t.remove(join(root, 'j/dev'), true);
    assert.equal(existsSync(join(root, 'j/dev')), false);
    assert.deepEqual(readdirSync(outside), ['tini']);
  });

  test('a directory swapped for a symlink after a first look is caught at the write', () => {
    const t = tree();
    t.mkdirp(join(root, 's/.jailyard'));
    // what a racing parent does between jailyard's look and its write
    renameSync(join(root, 's/.jailyard'), join(root, 's/away'));
    symlinkSync(outside, join(root, 's/.jailyard'));
    assert.equal(t.exists(join(root, 's/.jailyard')), true, 'the link is there');
    assert.throws(() => t.touch(join(root, 's/.jailyard/hold')), /not a directory/);
    assert.equal(existsSync(join(outside, 'hold')), false);
    assert.ok(lstatSync(join(root, 's/.jailyard')).isSymbolicLink());
    assert.equal(readlinkSync(join(root, 's/.jailyard')), outside);
  });

  test("openInRoot resolves the jail's links inside its root, never on the host (exec -U's /etc/passwd)", () => {
    const jail = join(dir, 'jail');
    mkdirSync(join(jail, 'etc'), { recursive: true });
    writeFileSync(join(jail, 'etc/passwd'), 'www:x:80:80::/var/www:/bin/sh\n');
    writeFileSync(join(outside, 'passwd'), 'secret:x:0:0::/root:/bin/sh\n');
    const read = () => {
      const fd = openInRoot(jail, 'etc/passwd', constants.O_RDONLY);
      try {
        return readFileSync(fd, 'utf8');
      } finally {
        closeSync(fd);
      }
    };
    assert.match(read(), /^www:/);
    // the jail swaps its /etc for an absolute link to the host's folder: inside the jail that
    // path is not there
    renameSync(join(jail, 'etc'), join(jail, 'etc.away'));
    symlinkSync(outside, join(jail, 'etc'));
    assert.throws(read, /ENOENT/);
    // ... and when the jail has that path, it is the jail's file that is read
    mkdirSync(join(jail, outside), { recursive: true });
    writeFileSync(join(jail, outside, 'passwd'), 'inside:x:1:1::/:/bin/sh\n');
    assert.match(read(), /^inside:/);
    rmSync(join(jail, 'etc'));
    renameSync(join(jail, 'etc.away'), join(jail, 'etc'));
    // a link at the end, absolute, and one with .. above the root: both stay inside
    rmSync(join(jail, 'etc/passwd'));
    symlinkSync('/etc/passwd.alt', join(jail, 'etc/passwd'));
    writeFileSync(join(jail, 'etc/passwd.alt'), 'alt:x:2:2::/:/bin/sh\n');
    assert.match(read(), /^alt:/);
    rmSync(join(jail, 'etc/passwd'));
    symlinkSync('../../../../../../../../etc/passwd.alt', join(jail, 'etc/passwd'));
    assert.match(read(), /^alt:/);
    // a loop is an error, not a hang
    rmSync(join(jail, 'etc/passwd'));
    symlinkSync('passwd', join(jail, 'etc/passwd'));
    assert.throws(read, /ELOOP|too many links/);
    assert.equal(readFileSync(join(outside, 'passwd'), 'utf8'), 'secret:x:0:0::/root:/bin/sh\n');
  });

  test('paths outside the root (the state folder) are used as they are', () => {
    const t = tree();
    const made = t.mkdirp(join(dir, 'state/x'));
    assert.deepEqual(made, [join(dir, 'state'), join(dir, 'state/x')]);
    assert.equal(t.touch(join(dir, 'state/x/f')), true);
  });
});
