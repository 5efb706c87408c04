// readLayout inside a batch scope (layoutScope): one look at a skeleton for every jail of a
// batch, a fresh look once the last scope is closed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { layoutScope, readLayout } from '../../src/skeleton/layout.ts';
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

test('inside a scope: one frozen layout per root and lists, until the last scope closes', () => {
  const outer = layoutScope();
  const inner = layoutScope();
  const a = readLayout(root, ['usr/bin']);
  assert.ok(Object.isFrozen(a));
  symlinkSync('usr/bin', join(root, 'bin'));
  assert.equal(readLayout(root, ['usr/bin']), a, 'the same look for the same root and lists');
  assert.equal(a.bin, undefined);
  // other lists are another look
  assert.deepEqual(readLayout(root, ['etc/hosts']).bin, { type: 'symlink', target: 'usr/bin' });
  inner();
  inner(); // closing twice closes once
  assert.equal(readLayout(root, ['usr/bin']), a, 'still inside the outer scope');
  outer();
  const b = readLayout(root, ['usr/bin']);
  assert.notEqual(b, a);
  assert.deepEqual(b.bin, { type: 'symlink', target: 'usr/bin' });
  assert.ok(!Object.isFrozen(b));
});
