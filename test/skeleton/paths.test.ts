import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { resolveInRoot, ensureDirsInRoot } from '../../src/skeleton/paths.ts';
import { JailyardError } from '../../src/errors.ts';
import { tempDir, makeTree } from './fixtures.ts';

const t = tempDir('paths');
after(t.cleanup);
const root = join(t.dir, 'jail');
makeTree(root, {
  'etc/hosts': 'x',
  abs: '->/etc',
  rel: '->etc/hosts',
  up: '->../../../../etc',
  loop1: '->loop2',
  loop2: '->loop1',
  'file/': '',
  'usr/bin/': '',
});

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof JailyardError);
    return e.code;
  }
  return 'no error';
}

describe('resolveInRoot', () => {
  test('absolute link targets are taken relative to the jail root', () => {
    assert.equal(resolveInRoot(root, 'abs/hosts'), join(root, 'etc/hosts'));
    assert.equal(resolveInRoot(root, '/rel'), join(root, 'etc/hosts'));
  });
  test('followLast=false keeps the final symlink itself', () => {
    assert.equal(resolveInRoot(root, 'abs', { followLast: false }), join(root, 'abs'));
  });
  test('missing tail components are kept literally', () => {
    assert.equal(resolveInRoot(root, 'abs/new/file'), join(root, 'etc/new/file'));
  });
  test('".." and links climbing above the root are refused', () => {
    assert.equal(
      code(() => resolveInRoot(root, '../outside')),
      'JY_ERR_PATH',
    );
    assert.equal(
      code(() => resolveInRoot(root, 'up/passwd')),
      'JY_ERR_PATH',
    );
    assert.equal(resolveInRoot(root, 'usr/../etc/hosts'), join(root, 'etc/hosts'));
  });
  test('symlink loops are refused', () => {
    assert.equal(
      code(() => resolveInRoot(root, 'loop1/x')),
      'JY_ERR_PATH',
    );
  });
  test('error names the jail when given', () => {
    try {
      resolveInRoot(root, '../x', { jail: 'web' });
      assert.fail();
    } catch (e) {
      assert.equal((e as JailyardError).place.jail, 'web');
    }
  });
});

describe('ensureDirsInRoot', () => {
  test('creates missing dirs, refuses to go through a symlink', () => {
    assert.equal(ensureDirsInRoot(root, 'var/log'), join(root, 'var/log'));
    assert.equal(
      code(() => ensureDirsInRoot(root, 'abs/newdir')),
      'JY_ERR_PATH',
    );
  });
});
