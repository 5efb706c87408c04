// A jail's readiness (its guest signal) in the store: durable, one MODIFIED event per change,
// cleared by every transition to starting or stopped, seen by the cache of another
// connection, and added to databases made before it existed (schema migration 1 -> 2).
import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStore, STORE_FILE, type SqliteStore } from '../../src/store/sqlite.ts';
import { SCHEMA_VERSION } from '../../src/store/schema.ts';
import { JailyardError } from '../../src/errors.ts';
import { SCHEMA_V1 } from './fixtures/old-schemas.ts';

let dir: string;
let store: SqliteStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'jy-store-ready-'));
  store = openStore(join(dir, 'state'));
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function running(name: string): void {
  store.createJail({ name, params: {} });
  store.transition(name, 'stopped', 'starting');
  store.transition(name, 'starting', 'running');
}

describe('store readiness', () => {
  test('a new jail is not ready', () => {
    assert.equal(store.createJail({ name: 'a', params: {} }).ready, false);
    assert.equal(store.requireJail('a').ready, false);
    assert.equal(store.listJails()[0]!.ready, false);
  });

  test('setReady bumps the revision and appends one MODIFIED event with the next global revision', () => {
    running('a');
    const before = store.requireJail('a');
    const global = store.currentRevision();
    const after = store.setReady('a', true);
    assert.equal(after.ready, true);
    assert.equal(after.revision, global + 1);
    assert.ok(after.revision > before.revision);
    assert.equal(store.currentRevision(), global + 1);
    const events = store.eventsSince(global);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.type, 'MODIFIED');
    assert.equal(events[0]!.revision, global + 1);
    assert.equal(events[0]!.jail.ready, true);
    assert.deepEqual(store.requireJail('a'), after);
  });

  test('setting the value it already has is idempotent: no revision, no event', () => {
    running('a');
    store.setReady('a', true);
    const global = store.currentRevision();
    const again = store.setReady('a', true);
    assert.equal(again.ready, true);
    assert.equal(store.currentRevision(), global);
    assert.deepEqual(store.eventsSince(global), []);
    // false on a jail that is not ready: nothing either
    store.createJail({ name: 'b', params: {} });
    const rev = store.currentRevision();
    assert.equal(store.setReady('b', false).ready, false);
    assert.equal(store.currentRevision(), rev);
  });

  test('unready again: one more event', () => {
    running('a');
    store.setReady('a', true);
    const global = store.currentRevision();
    assert.equal(store.setReady('a', false).ready, false);
    assert.deepEqual(
      store.eventsSince(global).map((e) => [e.type, e.jail.ready]),
      [['MODIFIED', false]],
    );
  });

  test('only a running jail can become ready; an unknown jail is not found', () => {
    store.createJail({ name: 'a', params: {} });
    for (const step of [() => {}, () => store.transition('a', 'stopped', 'starting')]) {
      step();
      const state = store.requireJail('a').state;
      assert.throws(
        () => store.setReady('a', true),
        (e: unknown) => {
          assert.ok(e instanceof JailyardError);
          assert.equal(e.code, 'JY_ERR_INVALID_TRANSITION');
          assert.equal(e.place.jail, 'a');
          assert.equal(e.place.param, 'ready');
          assert.match(e.message, new RegExp(`while it is ${state}`));
          return true;
        },
      );
    }
    assert.equal(store.requireJail('a').ready, false);
    assert.throws(
      () => store.setReady('nope', true),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_JAIL_NOT_FOUND' && e.place.jail === 'nope',
    );
  });

  test('stopped clears it in the same transaction (one event); a restart starts unready', () => {
    running('a');
    store.setReady('a', true);
    assert.equal(store.transition('a', 'running', 'stopping').ready, true);
    const global = store.currentRevision();
    const stopped = store.transition('a', 'stopping', 'stopped');
    assert.equal(stopped.ready, false);
    assert.deepEqual(
      store.eventsSince(global).map((e) => [e.type, e.jail.state, e.jail.ready]),
      [['MODIFIED', 'stopped', false]],
    );
    // running -> stopped directly (a jail found dead)
    store.transition('a', 'stopped', 'starting');
    store.transition('a', 'starting', 'running');
    store.setReady('a', true);
    assert.equal(store.transition('a', 'running', 'stopped').ready, false);
    assert.equal(store.requireJail('a').ready, false);
  });

  test('survives reopening the store (another process, a daemon restart)', () => {
    running('a');
    store.setReady('a', true);
    store.close();
    store = openStore(join(dir, 'state'));
    assert.equal(store.requireJail('a').ready, true);
    assert.equal(store.listJails()[0]!.ready, true);
  });

  test('the cache sees readiness written through another connection', () => {
    running('a');
    assert.equal(store.listJails()[0]!.ready, false); // warms the cache
    assert.equal(store.listJails({ selector: '' })[0]!.ready, false);
    const other = openStore(join(dir, 'state'));
    try {
      other.setReady('a', true);
      assert.equal(store.listJails()[0]!.ready, true);
      other.transition('a', 'running', 'stopped');
      assert.equal(store.listJails()[0]!.ready, false);
    } finally {
      other.close();
    }
  });

  test('recordRuntime and modifyJail keep readiness', () => {
    running('a');
    store.setReady('a', true);
    store.recordRuntime('a', { steps: ['x'] });
    assert.equal(store.modifyJail('a', { params: { persist: true } }).ready, true);
    assert.equal(store.requireJail('a').ready, true);
  });
});

describe('schema migration to readiness', () => {
  test('a version-1 database gets ready=0 for its jails; old event snapshots read as not ready', () => {
    store.close();
    const old = join(dir, 'old');
    mkdirSync(old, { recursive: true });
    // the version-1 schema, as the first jailyard wrote it, with one running jail
    const db = new Database(join(old, STORE_FILE));
    db.exec(SCHEMA_V1);
    db.exec(`UPDATE counters SET value = 1 WHERE name IN ('revision', 'event_count')`);
    const snap = {
      name: 'w',
      jid: 1,
      state: 'running',
      params: {},
      meta: '',
      env: '',
      revision: 1,
      runtime: null,
      lastError: null,
      createdAt: 't',
      updatedAt: 't',
    };
    db.prepare(`INSERT INTO jails VALUES ('w', 1, 'running', '{}', '', '', 1, NULL, NULL, 't', 't')`).run();
    db.prepare(`INSERT INTO events VALUES (1, 'ADDED', 'w', ?, 't')`).run(JSON.stringify(snap));
    db.pragma('user_version = 1');
    db.close();

    store = openStore(old);
    const check = new Database(join(old, STORE_FILE), { readonly: true });
    try {
      assert.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION);
      assert.equal(SCHEMA_VERSION, 4);
    } finally {
      check.close();
    }
    assert.equal(store.requireJail('w').ready, false);
    assert.equal(store.eventsSince(0)[0]!.jail.ready, false);
    assert.equal(store.setReady('w', true).revision, 2);
    assert.equal(store.requireJail('w').ready, true);
  });

  test('the column only takes 0 or 1', () => {
    store.createJail({ name: 'a', params: {} });
    store.close();
    const db = new Database(join(dir, 'state', STORE_FILE));
    try {
      assert.throws(() => db.prepare(`UPDATE jails SET ready = 2 WHERE name = 'a'`).run(), /CHECK constraint failed/);
    } finally {
      db.close();
    }
    store = openStore(join(dir, 'state'));
  });
});
