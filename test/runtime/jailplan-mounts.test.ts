// The mount steps a jail's own `mount` and `mount.fstab` parameters give (runtime/jailplan.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkNestedParams, paramMounts } from '../../src/runtime/jailplan.ts';
import type { JailRecord } from '../../src/store/types.ts';
import type { Params } from '../../src/conf/spec.ts';

const record = (name: string, params: Params) => ({ name, params }) as unknown as JailRecord;

test('an empty mount.fstab entry names no file, as config.c skips it: `mount.fstab = "";` turns off a global one', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jy-fstab-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.deepEqual(paramMounts(record('j', { 'mount.fstab': [''] }), '/jails/j'), []);
  const fstab = join(dir, 'fstab');
  writeFileSync(fstab, '/srv/data /jails/j/data nullfs ro 0 0\n');
  const steps = paramMounts(record('j', { 'mount.fstab': ['', fstab] }), '/jails/j');
  assert.equal(steps.length, 1, 'the named file is still read');
  assert.throws(
    () => paramMounts(record('j', { 'mount.fstab': [join(dir, 'missing')] }), '/jails/j'),
    /cannot read fstab/,
  );
  // nor is an empty one a nested jail's mount
  assert.doesNotThrow(() => checkNestedParams(record('p.c', { 'mount.fstab': [''] })));
  assert.throws(() => checkNestedParams(record('p.c', { 'mount.fstab': [fstab] })), /not supported for a nested jail/);
});

test("markJailTrees: a mount line's source in a jail's tree is marked with the innermost tree; skeleton binds and other sources are not", async () => {
  const { markJailTrees } = await import('../../src/runtime/jailplan.ts');
  const bind = (source: string, origin: string) =>
    ({ kind: 'bind', source, target: `/jails/j/mnt${source}`, readonly: false, origin }) as const;
  const plan = {
    root: '/jails/j',
    mkdirs: [],
    symlinks: [],
    mounts: [
      bind('/state/jails/a/root/srv/share', 'mount'),
      bind('/state/jails/a/upper/x', 'mount.fstab'),
      bind('/state/jails/a/root/usr', 'skeleton-ro'),
      bind('/srv/data', 'mount'),
      bind('/jails/b/../b/srv', 'mount'),
    ],
  };
  const trees = ['/state/jails/a', '/state/jails/a/root', '/jails/b'];
  assert.deepEqual(
    markJailTrees(plan, trees).mounts.map((m) => (m.kind === 'bind' ? (m.within ?? '-') : '')),
    ['/state/jails/a/root', '/state/jails/a', '-', '-', '/jails/b'],
  );
});
