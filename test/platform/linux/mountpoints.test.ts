// The shared layer of a root's mount points (src/platform/linux/mountpoints.ts): which
// names a plan needs, and the layer on disk (named by its content, modes fixed whatever the
// umask, made once, a dead builder's leftovers swept). Pure and a temporary folder; the
// layer under real jails is tested in test/platform/pathless.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MountPlan } from '../../../src/skeleton/plan.ts';
import { layersDir, pointLayer, pointsOf } from '../../../src/platform/linux/mountpoints.ts';

const root = '/s/jails/j/root';
const plan = (p: Partial<MountPlan>): MountPlan => ({ root, mkdirs: [], symlinks: [], mounts: [], ...p });

describe('the mount points a plan needs', () => {
  test('mkdirs, files and mount targets below the root, with their parents; nothing outside it', () => {
    const points = pointsOf(
      plan({
        mkdirs: [root, `${root}/usr/bin`, '/s/jails/j/cow/etc/upper', `${root}/proc`],
        files: [`${root}/.jailyard/tini`],
        mounts: [
          { kind: 'bind', source: '/usr/lib', target: `${root}/usr/lib`, readonly: true, origin: 'skeleton-ro' },
          { kind: 'bind', source: '/etc/hosts', target: `${root}/etc/hosts`, readonly: true, origin: 'mount' },
          { kind: 'tmpfs', target: `${root}/tmp`, options: [], origin: 'mount' },
          { kind: 'proc', target: `${root}/proc/sub`, origin: 'mount.procfs' },
          { kind: 'tmpfs', target: '/elsewhere', options: [], origin: 'mount' },
        ] as MountPlan['mounts'],
      }),
      root,
      (source) => source !== '/etc/hosts',
    );
    assert.deepEqual(points, {
      dirs: ['.jailyard', 'etc', 'proc', 'tmp', 'usr', 'usr/bin', 'usr/lib'],
      files: ['.jailyard/tini', 'etc/hosts'],
    });
  });

  test('a bind whose source cannot be looked at is left to the start', () => {
    const points = pointsOf(
      plan({
        mounts: [
          { kind: 'bind', source: '/gone', target: `${root}/mnt/x`, readonly: false, origin: 'mount' },
        ] as MountPlan['mounts'],
      }),
      root,
      () => undefined,
    );
    assert.deepEqual(points, { dirs: [], files: [] });
  });

  test('a name both a file and a directory makes no layer', () => {
    assert.equal(
      pointsOf(plan({ mkdirs: [`${root}/a/b`], files: [`${root}/a`] }), root, () => true),
      undefined,
    );
  });
});

describe('the layer on disk', () => {
  const points = { dirs: ['.jailyard', 'run', 'run/jailyard', 'usr', 'usr/bin'], files: ['.jailyard/tini'] };

  test('made once per set of names, in the state folder, with fixed modes whatever the umask', (t) => {
    const state = mkdtempSync(join(tmpdir(), 'jy-points-'));
    t.after(() => rmSync(state, { recursive: true, force: true }));
    const dir = layersDir(join(state, 'jails', 'j'));
    assert.equal(dir, join(state, 'mount-points'));
    const old = process.umask(0o077);
    let a: string;
    try {
      a = pointLayer(dir, points);
    } finally {
      process.umask(old);
    }
    assert.equal(pointLayer(dir, points), a, 'the same set: the same layer');
    assert.notEqual(pointLayer(dir, { ...points, dirs: [...points.dirs, 'dev'] }), a);
    assert.deepEqual(readdirSync(dir).length, 2);
    assert.deepEqual(readdirSync(a).sort(), ['.jailyard', 'run', 'usr']);
    assert.equal(statSync(a).mode & 0o7777, 0o755);
    assert.equal(statSync(join(a, 'usr/bin')).mode & 0o7777, 0o755);
    const tini = statSync(join(a, '.jailyard/tini'));
    assert.ok(tini.isFile() && tini.size === 0);
    assert.equal(tini.mode & 0o7777, 0o644);
  });

  test("a builder that died leaves a temporary folder: the next build sweeps it, a live one's stays", (t) => {
    const state = mkdtempSync(join(tmpdir(), 'jy-points-'));
    t.after(() => rmSync(state, { recursive: true, force: true }));
    const dir = join(state, 'mount-points');
    // a pid that has just exited
    const dead = spawnSync('true').pid!;
    mkdirSync(join(dir, `abc.new-${dead}-x1`, 'usr'), { recursive: true });
    writeFileSync(join(dir, `abc.new-${dead}-x1`, 'f'), '');
    mkdirSync(join(dir, `abc.new-${process.pid}-x2`), { recursive: true });
    const layer = pointLayer(dir, points);
    assert.deepEqual(readdirSync(dir).sort(), [`abc.new-${process.pid}-x2`, layer.split('/').pop()!].sort());
  });
});
