// readLayout inside a batch (withLayouts): one look at a skeleton for every jail of a batch,
// a fresh look once it ends and for anything else the process does meanwhile.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { readLayout, withLayouts } from '../../src/skeleton/layout.ts';
import { tempDir, makeTree } from './fixtures.ts';

const t = tempDir('layout-scope');
after(t.cleanup);
const root = join(t.dir, 'skel');
makeTree(root, { 'usr/bin/': '', 'etc/hosts': 'x' });

test('outside a scope every call looks again', () => {
  const a = readLayout(root, ['usr/bin']);
  mkdirSync(join(root, 'opt'));
  const b = readLayout(root, ['usr/bin']);
  assert.notEqual(a, b);
  assert.equal(a.opt, undefined);
  assert.deepEqual(b.opt, { type: 'dir' });
  rmSync(join(root, 'opt'), { recursive: true });
});

test('inside a batch: one frozen layout per root and lists, a fresh look once it ends', async () => {
  let a: ReturnType<typeof readLayout> | undefined;
  await withLayouts(async () => {
    a = readLayout(root, ['usr/bin']);
    assert.ok(Object.isFrozen(a));
    symlinkSync('usr/bin', join(root, 'bin'));
    await Promise.resolve();
    assert.equal(readLayout(root, ['usr/bin']), a, 'the same look for the same root and lists');
    assert.equal(a.bin, undefined);
    // other lists are another look
    assert.deepEqual(readLayout(root, ['etc/hosts']).bin, { type: 'symlink', target: 'usr/bin' });
    // a batch inside the batch shares its looks
    await withLayouts(async () => assert.equal(readLayout(root, ['usr/bin']), a));
  });
  const b = readLayout(root, ['usr/bin']);
  assert.notEqual(b, a);
  assert.deepEqual(b.bin, { type: 'symlink', target: 'usr/bin' });
  assert.ok(!Object.isFrozen(b));
  rmSync(join(root, 'bin'));
});

test("while a batch runs, the process's other work (a daemon's other request) looks again", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let first!: () => void;
  const looked = new Promise<void>((r) => {
    first = r;
  });
  const batch = withLayouts(async () => {
    const a = readLayout(root, ['usr/bin']);
    first();
    await gate;
    return a;
  });
  await looked;
  mkdirSync(join(root, 'srv'));
  // not inside the batch: the skeleton as it is now
  assert.deepEqual(readLayout(root, ['usr/bin']).srv, { type: 'dir' });
  release();
  assert.equal((await batch).srv, undefined);
  rmSync(join(root, 'srv'), { recursive: true });
});

test('what a batch left running (a timer set in it) looks again once the batch ended', async () => {
  let later!: Promise<ReturnType<typeof readLayout>>;
  const first = await withLayouts(async () => {
    const a = readLayout(root, ['usr/bin']);
    later = new Promise((resolve) => setTimeout(() => resolve(readLayout(root, ['usr/bin'])), 20));
    return a;
  });
  mkdirSync(join(root, 'var'));
  const b = await later;
  assert.notEqual(b, first);
  assert.deepEqual(b.var, { type: 'dir' });
  rmSync(join(root, 'var'), { recursive: true });
});
