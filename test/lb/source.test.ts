// The sources carry the jail's readiness to the controller: from a store record (polling
// source) and from the daemon's watch stream (a readiness change is a MODIFIED event).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apiSource, lbJailOf, type SourceEvent } from '../../src/lb/source.ts';
import { startTestDaemon, tempState } from '../api/helpers.ts';

test('lbJailOf takes ready from the record (missing = false)', () => {
  const base = { name: 'a', state: 'running' as const, meta: 'app=www', env: '', params: {} };
  assert.equal(lbJailOf({ ...base, ready: true }).ready, true);
  assert.equal(lbJailOf({ ...base, ready: false }).ready, false);
  assert.equal(lbJailOf(base).ready, false);
});

test('apiSource: SYNC carries readiness, and a readiness change arrives as MODIFIED', async (t) => {
  const state = tempState('jy-lb-source-');
  const d = await startTestDaemon(state.dir);
  const abort = new AbortController();
  t.after(async () => {
    abort.abort();
    await d.close();
    state.cleanup();
  });
  for (const name of ['s1', 's2']) {
    d.store.createJail({ name, params: {}, meta: [{ op: 'set', key: 'app', value: 'www' }] });
    await d.service.start([name]);
  }
  d.store.setReady('s1', true);
  const seen: SourceEvent[] = [];
  const it = apiSource(d.url).events('app=www', abort.signal)[Symbol.asyncIterator]();
  const next = async (): Promise<SourceEvent> => {
    const r = await it.next();
    assert.ok(!r.done);
    seen.push(r.value);
    return r.value;
  };
  const sync = await next();
  assert.equal(sync.type, 'SYNC');
  assert.deepEqual(sync.type === 'SYNC' && sync.jails.map((j) => [j.name, j.ready]), [
    ['s1', true],
    ['s2', false],
  ]);
  d.store.setReady('s2', true);
  const mod = await next();
  assert.deepEqual(mod.type !== 'SYNC' && [mod.type, mod.jail.name, mod.jail.ready], ['MODIFIED', 's2', true]);
  abort.abort();
  await it.return?.();
});
