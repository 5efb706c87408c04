// transition(..., guard): a check that reads other jails runs inside the write transaction
// that makes the change, so it cannot race another writer; throwing cancels the change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/sqlite.ts';
import { JailyardError } from '../../src/errors.ts';

test('a throwing guard cancels the transition: state, jid and revision stay', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jy-store-guard-'));
  const store = openStore(join(dir, 'state'));
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  store.createJail({ name: 'a', params: {} });
  const before = store.requireJail('a');
  const global = store.currentRevision();
  assert.throws(
    () =>
      store.transition('a', 'stopped', 'starting', undefined, () => {
        throw new JailyardError('JY_ERR_PARAM_VALUE', 'no', { jail: 'a' });
      }),
    { code: 'JY_ERR_PARAM_VALUE' },
  );
  assert.deepEqual(store.requireJail('a'), before);
  assert.equal(store.currentRevision(), global);
});

test('children.max: the second sibling to turn starting sees the first and is refused', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jy-store-guard-'));
  const store = openStore(join(dir, 'state'));
  // the lifecycle's guard: refuse when a sibling is anything but stopped
  const onlyChild = (name: string) => () => {
    const busy = store.listJails().filter((j) => j.name.startsWith('p.') && j.name !== name && j.state !== 'stopped');
    if (busy.length)
      throw new JailyardError('JY_ERR_PARAM_VALUE', 'children.max=1', { jail: 'p', param: 'children.max' });
  };
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const n of ['p', 'p.a', 'p.b']) store.createJail({ name: n, params: {} });
  store.transition('p.a', 'stopped', 'starting', undefined, onlyChild('p.a'));
  assert.throws(() => store.transition('p.b', 'stopped', 'starting', undefined, onlyChild('p.b')), {
    code: 'JY_ERR_PARAM_VALUE',
  });
  assert.equal(store.requireJail('p.b').state, 'stopped');
});
