// Schema migration 2 -> 3 (fewer pages per write): the global revision moves from a counter
// to the newest event, the jails(revision) index goes, labels are re-keyed (key, value, jail).
// A database written by the previous schema keeps every jail, label, event and revision.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStore, STORE_FILE, type SqliteStore } from '../../src/store/sqlite.ts';
import { SCHEMA_VERSION } from '../../src/store/schema.ts';
import { SCHEMA_V2 } from './fixtures/old-schemas.ts';

let dir: string | undefined;
let store: SqliteStore | undefined;
afterEach(() => {
  store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function record(name: string, revision: number, meta: string, runtime: unknown = null) {
  return {
    name,
    jid: 0,
    state: 'stopped',
    params: {},
    meta,
    env: '',
    revision,
    ready: false,
    runtime,
    lastError: null,
    createdAt: 't',
    updatedAt: 't',
  };
}

/** A version-2 store: jails a (revision 3, its runtime recorded without an event, as version
 * 2 did) and b (revision 2); events 1 and 2; the counter at 3. */
function versionTwo(path: string): void {
  mkdirSync(path, { recursive: true });
  const db = new Database(join(path, STORE_FILE));
  db.exec(SCHEMA_V2);
  db.exec(`
    UPDATE counters SET value = 3 WHERE name = 'revision';
    UPDATE counters SET value = 2 WHERE name = 'event_count';
    INSERT INTO jails VALUES ('a', 0, 'stopped', '{}', 'app=www', '', 3, '{"steps":["mount"]}', NULL, 't', 't', 0);
    INSERT INTO jails VALUES ('b', 0, 'stopped', '{}', 'app=db', '', 2, NULL, NULL, 't', 't', 0);
    INSERT INTO labels VALUES ('a', 'app', 'www'), ('b', 'app', 'db');
  `);
  db.prepare(`INSERT INTO events VALUES (1, 'ADDED', 'a', ?, 't')`).run(JSON.stringify(record('a', 1, 'app=www')));
  db.prepare(`INSERT INTO events VALUES (2, 'ADDED', 'b', ?, 't')`).run(JSON.stringify(record('b', 2, 'app=db')));
  db.pragma('user_version = 2');
  db.close();
}

test('a version-2 store: revisions continue, the runtime-only change gets its event, labels answer selectors', () => {
  dir = mkdtempSync(join(tmpdir(), 'jy-store-migrate-'));
  const path = join(dir, 'state');
  versionTwo(path);
  store = openStore(path, { cache: false });
  assert.equal(SCHEMA_VERSION, 4);
  assert.equal(store.currentRevision(), 3, 'the revision never goes back');
  // 3 -> 4: no supervision recorded for the jails that were there (docs/health.md)
  assert.equal(store.requireJail('a').supervision, undefined);
  const events = store.eventsSince(0);
  assert.deepEqual(
    events.map((e) => [e.revision, e.type, e.name]),
    [
      [1, 'ADDED', 'a'],
      [2, 'ADDED', 'b'],
      [3, 'MODIFIED', 'a'],
    ],
  );
  assert.deepEqual(events[2]!.jail.runtime, { steps: ['mount'] });
  // the one-shot (no cache) selector path reads the re-keyed labels table
  assert.deepEqual(
    store.listJails({ selector: 'app=www' }).map((j) => j.name),
    ['a'],
  );
  assert.deepEqual(
    store.listJails({ selector: 'app in (www,db)' }).map((j) => j.name),
    ['a', 'b'],
  );
  assert.equal(store.modifyJail('b', { meta: [{ op: 'set', key: 'app', value: 'www' }] }).revision, 4);
  assert.deepEqual(
    store.listJails({ selector: 'app=www' }).map((j) => j.name),
    ['a', 'b'],
  );
  assert.deepEqual(store.listJails({ selector: 'app=db' }), [], 'the old label row is gone');
  store.close();
  store = undefined;

  const db = new Database(join(path, STORE_FILE), { readonly: true });
  try {
    assert.equal(db.pragma('user_version', { simple: true }), 4);
    const names = (
      db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'`).all() as {
        name: string;
      }[]
    ).map((r) => r.name);
    assert.deepEqual(names, [], 'no secondary index is left to rewrite on every change');
    assert.deepEqual(db.prepare('SELECT key, value, jail FROM labels ORDER BY jail').all(), [
      { key: 'app', value: 'www', jail: 'a' },
      { key: 'app', value: 'www', jail: 'b' },
    ]);
    assert.deepEqual(db.prepare('SELECT name FROM counters').all(), [{ name: 'compacted_through' }]);
  } finally {
    db.close();
  }
});
