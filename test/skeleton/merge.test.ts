import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
  mkdirSync,
  rmSync,
  chmodSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  planUpgrade,
  applyUpgrade,
  upgradeWritable,
  snapshotTree,
  snapshotPaths,
  type TreeEntry,
} from '../../src/skeleton/merge.ts';
import { JailyardError } from '../../src/errors.ts';
import { tempDir, makeTree } from './fixtures.ts';

const t = tempDir('merge');
after(t.cleanup);

const f = (text: string, mode = 0o644): TreeEntry => ({
  type: 'file',
  mode,
  uid: 0,
  gid: 0,
  size: text.length,
  hash: `h:${text}`,
  text,
});

describe('planUpgrade (pure)', () => {
  test('each case of the table', () => {
    const actions = planUpgrade({
      old: {
        'etc/a': f('1\n'),
        'etc/b': f('1\n'),
        'etc/c': f('x\ny\nz\n'),
        'etc/d': f('1\n'),
        'etc/gone': f('1\n'),
        'etc/same': f('s\n'),
      },
      new: {
        'etc/a': f('2\n'),
        'etc/b': f('1\n'),
        'etc/c': f('x\ny\nZ\n'),
        'etc/d': f('NEW\n'),
        'etc/added': f('+\n'),
        'etc/same': f('s2\n'),
      },
      jail: {
        'etc/a': f('1\n'),
        'etc/b': f('jail\n'),
        'etc/c': f('X\ny\nz\n'),
        'etc/d': f('JAIL\n'),
        'etc/gone': f('1\n'),
        'etc/same': f('s2\n'),
      },
    });
    assert.deepEqual(actions, [
      { kind: 'take', path: 'etc/a', reason: 'unchanged-by-jail' },
      { kind: 'take', path: 'etc/added', reason: 'added-upstream' },
      { kind: 'merge', path: 'etc/c', text: 'X\ny\nZ\n', mode: 0o644, uid: 0, gid: 0 },
      {
        kind: 'conflict',
        path: 'etc/d',
        reason: '1 conflicting chunk(s)',
        newPath: 'etc/d.jailyard-new',
        conflicts: 1,
      },
      { kind: 'delete', path: 'etc/gone' },
    ]);
  });
  test('a parent the jail replaced by a symlink blocks writes below it', () => {
    const actions = planUpgrade({
      old: { etc: { type: 'dir', mode: 0o755, uid: 0, gid: 0 } },
      new: { etc: { type: 'dir', mode: 0o755, uid: 0, gid: 0 }, 'etc/x': f('x') },
      jail: { etc: { type: 'symlink', target: '/host' } },
    });
    assert.equal(actions.length, 1);
    assert.equal(actions[0]!.kind, 'conflict');
  });
});

describe('upgradeWritable on real trees', () => {
  const old = join(t.dir, 'v1');
  const neu = join(t.dir, 'v2');
  makeTree(old, {
    'etc/hosts': '127.0.0.1 localhost\n',
    'etc/motd': 'v1\n',
    'etc/conf': 'a=1\nb=2\nc=3\n',
    'etc/old-only': 'bye\n',
    'etc/ssl/': '',
  });
  makeTree(neu, {
    'etc/hosts': '127.0.0.1 localhost\n',
    'etc/motd': 'v2\n',
    'etc/conf': 'a=1\nb=2\nc=30\n',
    'etc/new-only': 'hi\n',
    'etc/ssl/certs/ca.pem': 'CA\n',
    'etc/link': '->motd',
  });

  test('takes, merges, adds, deletes; keeps the jail edit; conflicts leave .jailyard-new', () => {
    const jail = join(t.dir, 'jail');
    makeTree(jail, {
      'etc/hosts': '127.0.0.1 localhost\n10.0.0.1 db\n',
      'etc/motd': 'v1\n',
      'etc/conf': 'a=JAIL\nb=2\nc=3\n',
      'etc/old-only': 'bye\n',
      'etc/ssl/': '',
    });
    const r = upgradeWritable({ jail: 'web', jailRoot: jail, oldSeed: old, newSeed: neu, dirs: ['etc'] });
    assert.equal(readFileSync(join(jail, 'etc/hosts'), 'utf8'), '127.0.0.1 localhost\n10.0.0.1 db\n');
    assert.equal(readFileSync(join(jail, 'etc/motd'), 'utf8'), 'v2\n');
    assert.equal(readFileSync(join(jail, 'etc/conf'), 'utf8'), 'a=JAIL\nb=2\nc=30\n');
    assert.equal(readFileSync(join(jail, 'etc/new-only'), 'utf8'), 'hi\n');
    assert.equal(readFileSync(join(jail, 'etc/ssl/certs/ca.pem'), 'utf8'), 'CA\n');
    assert.ok(lstatSync(join(jail, 'etc/link')).isSymbolicLink());
    assert.ok(!existsSync(join(jail, 'etc/old-only')));
    assert.deepEqual(r.conflicts, []);
    assert.ok(!readdirSync(jail).some((n) => n.startsWith('.jailyard-upgrade')));

    // second jail: conflicting edit
    const jail2 = join(t.dir, 'jail2');
    makeTree(jail2, { 'etc/conf': 'a=1\nb=2\nc=JAIL\n', 'etc/motd': 'v1\n' });
    const r2 = upgradeWritable({ jail: 'w2', jailRoot: jail2, oldSeed: old, newSeed: neu, dirs: ['etc'] });
    assert.deepEqual(
      r2.conflicts.map((c) => [c.path, c.newPath]),
      [['etc/conf', 'etc/conf.jailyard-new']],
    );
    assert.equal(readFileSync(join(jail2, 'etc/conf'), 'utf8'), 'a=1\nb=2\nc=JAIL\n');
    assert.equal(readFileSync(join(jail2, 'etc/conf.jailyard-new'), 'utf8'), 'a=1\nb=2\nc=30\n');
  });

  test('a malicious symlink in the jail pointing at a host file: host file untouched', () => {
    const hostFile = join(t.dir, 'host-secret');
    writeFileSync(hostFile, 'HOST\n');
    const hostDir = join(t.dir, 'host-dir');
    mkdirSync(hostDir);
    const jail = join(t.dir, 'jail-evil');
    mkdirSync(join(jail, 'etc'), { recursive: true });
    symlinkSync(hostFile, join(jail, 'etc/motd')); // was v1 -> v2 upstream
    symlinkSync(hostDir, join(jail, 'etc/ssl')); // new files would go below
    const r = upgradeWritable({ jail: 'evil', jailRoot: jail, oldSeed: old, newSeed: neu, dirs: ['etc'] });
    assert.equal(readFileSync(hostFile, 'utf8'), 'HOST\n');
    assert.deepEqual(readdirSync(hostDir), []);
    assert.ok(r.conflicts.some((c) => c.path === 'etc/ssl/certs/ca.pem'));
    // the jail's symlink is kept (the jail changed that path); new content next to it
    assert.ok(lstatSync(join(jail, 'etc/motd')).isSymbolicLink());
    assert.equal(readFileSync(join(jail, 'etc/motd.jailyard-new'), 'utf8'), 'v2\n');
  });

  test('all or nothing: a failure midway puts every replaced file back', () => {
    const jail = join(t.dir, 'jail-fail');
    makeTree(jail, { 'etc/motd': 'v1\n', 'etc/hosts': '127.0.0.1 localhost\n', 'etc/conf': 'a=1\nb=2\nc=3\n' });
    const oldSnap = snapshotTree(old, ['etc']);
    const newSnap = snapshotTree(neu, ['etc']);
    const jailSnap = snapshotPaths(jail, [...Object.keys(oldSnap), ...Object.keys(newSnap)]);
    const actions = planUpgrade({ old: oldSnap, new: newSnap, jail: jailSnap });
    // a directory where the last action wants to write makes the commit fail late
    const last = actions.filter((a) => a.kind === 'take').at(-1)!;
    mkdirSync(join(jail, last.path), { recursive: true });
    assert.throws(
      () => applyUpgrade(jail, neu, actions, { jail: 'f' }),
      (e: unknown) => e instanceof JailyardError && e.place.jail === 'f',
    );
    assert.equal(readFileSync(join(jail, 'etc/motd'), 'utf8'), 'v1\n');
    assert.equal(readFileSync(join(jail, 'etc/conf'), 'utf8'), 'a=1\nb=2\nc=3\n');
    assert.ok(!existsSync(join(jail, 'etc/new-only')) || last.path === 'etc/new-only');
    assert.ok(!readdirSync(jail).some((n) => n.startsWith('.jailyard-upgrade')));
    rmSync(join(jail, last.path), { recursive: true });
  });

  test('mode change upstream on a file the jail kept is taken', () => {
    const o = join(t.dir, 'm1');
    const n = join(t.dir, 'm2');
    const j = join(t.dir, 'mj');
    makeTree(o, { 'etc/x': 'same\n' });
    makeTree(n, { 'etc/x': 'same\n' });
    makeTree(j, { 'etc/x': 'same\n' });
    chmodSync(join(n, 'etc/x'), 0o600);
    upgradeWritable({ jail: 'm', jailRoot: j, oldSeed: o, newSeed: n, dirs: ['etc'] });
    assert.equal(lstatSync(join(j, 'etc/x')).mode & 0o777, 0o600);
  });
});
