import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WatchHub, type HubEvent } from '../../src/api/hub.ts';
import { eventFor } from '../../src/api/routes/watch.ts';
import { parseSelector } from '../../src/meta/selector.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { tempState } from './helpers.ts';

const noop = { event: () => {}, reset: () => {} };

test('a hub started later replays events from the store with the right selector types', (t) => {
  const state = tempState();
  const store = openStore(state.dir);
  t.after(() => {
    store.close();
    state.cleanup();
  });
  store.createJail({ name: 'a', params: { name: 'a' } });
  const since = store.currentRevision();
  store.modifyJail('a', { meta: [{ op: 'set', key: 'tier', value: 'web' }] });
  store.modifyJail('a', { meta: [{ op: 'set', key: 'v', value: '1' }] });
  store.modifyJail('a', { meta: [{ op: 'set', key: 'tier', value: 'db' }] });
  store.createJail({ name: 'b', params: { name: 'b' }, meta: [{ op: 'set', key: 'tier', value: 'web' }] });
  // the daemon starts now: those events are older than its memory
  const hub = new WatchHub(store);
  hub.start();
  const sub = hub.subscribe(since, noop);
  const sel = parseSelector('tier=web');
  assert.deepEqual(
    sub.backlog.map((e) => [eventFor(e, sel), e.name]),
    [
      ['ADDED', 'a'],
      ['MODIFIED', 'a'],
      ['DELETED', 'a'],
      ['ADDED', 'b'],
    ],
  );
  assert.ok(sub.backlog.every((e) => e.prevKnown));
  // live events after subscribing carry the previous state too
  const live: HubEvent[] = [];
  hub.subscribe(undefined, { event: (e) => live.push(e), reset: () => {} });
  store.modifyJail('b', { meta: [{ op: 'set', key: 'tier', value: 'cache' }] });
  hub.poll();
  assert.deepEqual(
    live.map((e) => [eventFor(e, sel), e.name]),
    [['DELETED', 'b']],
  );
  hub.stop();
});

test('unknown earlier state (history compacted): MODIFIED if it matches now, else DELETED', () => {
  const sel = parseSelector('tier=web');
  const jail = (tier: string) => ({
    name: 'a',
    jid: 0,
    state: 'stopped' as const,
    params: {},
    meta: `tier=${tier}`,
    env: '',
    revision: 1,
    runtime: null,
    ready: false,
    lastError: null,
    createdAt: '',
    updatedAt: '',
  });
  const e = (tier: string, type: HubEvent['type'] = 'MODIFIED'): HubEvent => ({
    revision: 9,
    type,
    name: 'a',
    jail: jail(tier),
    prev: undefined,
    prevKnown: false,
  });
  assert.equal(eventFor(e('web'), sel), 'MODIFIED');
  assert.equal(eventFor(e('db'), sel), 'DELETED');
  assert.equal(eventFor(e('web', 'ADDED'), sel), 'ADDED');
  assert.equal(eventFor(e('db', 'ADDED'), sel), undefined);
  assert.equal(eventFor(e('db'), undefined), 'MODIFIED');
});
