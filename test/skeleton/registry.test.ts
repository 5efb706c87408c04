import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  createSkeleton,
  listSkeletons,
  showSkeleton,
  resolveSkeleton,
  removeSkeleton,
  verifySkeleton,
  parseSkeletonRef,
  usedVersion,
} from '../../src/skeleton/registry.ts';
import { parseManifest } from '../../src/skeleton/manifest.ts';
import { JailyardError } from '../../src/errors.ts';
import { loadDriver } from '../../src/platform/index.ts';
import { tempDir, makeSkeleton } from './fixtures.ts';
import { err } from '../helpers/thrown.ts';

const t = tempDir('registry');
after(t.cleanup);
const src = join(t.dir, 'src');
makeSkeleton(src);
const state = join(t.dir, 'state');
// the Linux driver: it runs debootstrap and unmounts what a failed run leaves in its tree
const host = await loadDriver({ stateDir: state });

async function rejection(p: Promise<unknown>): Promise<JailyardError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof JailyardError, String(e));
    return e;
  }
  assert.fail('did not reject');
}

describe('skeleton registry', () => {
  test('--copy makes owned, versioned trees with a manifest; NAME@N and NAME (latest)', async () => {
    const v1 = await createSkeleton(state, 'deb', { type: 'copy', path: src });
    assert.equal(v1.version, 1);
    assert.equal(v1.kind, 'owned');
    assert.equal(v1.root, join(state, 'skeletons/deb/1/root'));
    assert.equal(readFileSync(join(v1.root, 'etc/hosts'), 'utf8'), '127.0.0.1 localhost\n');
    const manifest = parseManifest(readFileSync(v1.manifest, 'utf8'));
    const passwd = manifest.find((e) => e.path === 'etc/passwd')!;
    assert.equal(passwd.type, 'file');
    assert.equal(passwd.digest.length, 64);
    assert.equal(manifest.find((e) => e.path === 'bin')!.digest, 'usr/bin');
    writeFileSync(join(src, 'etc/motd'), 'v2\n');
    const v2 = await createSkeleton(state, 'deb', { type: 'copy', path: src });
    assert.equal(v2.version, 2);
    assert.equal(resolveSkeleton(state, 'deb').version, 2);
    assert.equal(resolveSkeleton(state, 'deb@1').version, 1);
    assert.deepEqual(showSkeleton(state, 'deb').versions, [1, 2]);
    assert.ok(!existsSync(join(v1.root, 'etc/motd')));
  });

  test('--from references a tree in place; only the writable subset is snapshotted', async () => {
    const v = await createSkeleton(state, 'host', { type: 'from', path: src });
    assert.equal(v.kind, 'reference');
    assert.equal(v.root, src);
    assert.equal(v.seedRoot, join(state, 'skeletons/host/1/seed'));
    assert.ok(existsSync(join(v.seedRoot, 'etc/passwd')));
    assert.ok(!existsSync(join(v.seedRoot, 'usr/bin')));
    assert.ok(!existsSync(join(v.seedRoot, 'root/.bash_history')));
    const again = await createSkeleton(state, 'host', { type: 'from', path: src });
    assert.equal(again.version, 2);
  });

  test('verify detects a change to an "immutable" tree', async () => {
    assert.equal(verifySkeleton(state, 'deb@1').ok, true);
    writeFileSync(join(resolveSkeleton(state, 'deb@1').root, 'etc/hosts'), 'tampered\n');
    const r = verifySkeleton(state, 'deb@1');
    assert.equal(r.ok, false);
    assert.deepEqual(r.changed, ['etc/hosts']);
  });

  test('list, not found, bad names', () => {
    assert.deepEqual(
      listSkeletons(state).map((s) => [s.name, s.versions.map((v) => v.version)]),
      [
        ['deb', [1, 2]],
        ['host', [1, 2]],
      ],
    );
    assert.equal(err(() => resolveSkeleton(state, 'nope')).code, 'JY_ERR_SKELETON_NOT_FOUND');
    assert.equal(err(() => resolveSkeleton(state, 'deb@9')).code, 'JY_ERR_SKELETON_NOT_FOUND');
    assert.equal(err(() => parseSkeletonRef('../x')).code, 'JY_ERR_USAGE');
    assert.equal(err(() => parseSkeletonRef('deb@0')).code, 'JY_ERR_USAGE');
  });

  test('a failed create leaves nothing behind', async () => {
    await assert.rejects(
      createSkeleton(state, 'bad', { type: 'copy', path: join(t.dir, 'missing') }),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_PATH',
    );
    await assert.rejects(
      createSkeleton(state, 'deb', { type: 'debootstrap', suite: 'bookworm' }, { debootstrap: '/bin/false', host }),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_SKELETON_CREATE',
    );
    // debootstrap needs the driver
    await assert.rejects(
      createSkeleton(state, 'deb', { type: 'debootstrap', suite: 'bookworm' }, { debootstrap: '/bin/false' }),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_PLATFORM',
    );
    assert.ok(!existsSync(join(state, 'skeletons/bad')));
    assert.deepEqual(readdirSync(join(state, 'skeletons/deb')).sort(), ['1', '2', 'skeleton.json']);
    assert.deepEqual(showSkeleton(state, 'deb').versions, [1, 2]);
  });

  test('a failed debootstrap that left a mount in its tree: the driver unmounts it, nothing is left', async () => {
    const fake = join(t.dir, 'fake-debootstrap');
    // debootstrap's arguments: --variant=V SUITE TARGET [MIRROR]; it mounts proc in TARGET
    writeFileSync(fake, '#!/bin/sh\nmkdir -p "$3/proc" && mount -t tmpfs jy-registry-test "$3/proc" && exit 1\n', {
      mode: 0o755,
    });
    await assert.rejects(
      createSkeleton(state, 'leaky', { type: 'debootstrap', suite: 'bookworm' }, { debootstrap: fake, host }),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_SKELETON_CREATE',
    );
    assert.deepEqual(host.mountsBelow(state), []);
    assert.ok(!existsSync(join(state, 'skeletons/leaky')));
  });

  test('remove refuses while jails use it, naming them; versions are never reused', async () => {
    const users: Record<string, string> = { web: 'deb@1', db: 'deb', other: 'host' };
    const usersOf = (name: string, version: number): string[] =>
      Object.entries(users)
        .filter(([, p]) => usedVersion(p, name, resolveSkeleton(state, name).version) === version)
        .map(([j]) => j);
    const e = await rejection(removeSkeleton(state, 'deb', { usersOf, host }));
    assert.equal(e.code, 'JY_ERR_SKELETON_IN_USE');
    assert.ok(e.message.includes('db, web'), e.message);
    assert.equal((await rejection(removeSkeleton(state, 'deb@1', { usersOf, host }))).message.includes('web'), true);
    delete users.db;
    assert.deepEqual(await removeSkeleton(state, 'deb@2', { usersOf, host }), [2]);
    const v3 = await createSkeleton(state, 'deb', { type: 'copy', path: src });
    assert.equal(v3.version, 3);
    delete users.web;
    await removeSkeleton(state, 'deb', { usersOf, host });
    assert.ok(!existsSync(join(state, 'skeletons/deb')));
  });
});
