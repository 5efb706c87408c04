// The store's schema, versioned with PRAGMA user_version. Each migration runs once, inside
// one BEGIN IMMEDIATE transaction, so processes opening the store together agree.

import type Database from 'better-sqlite3';

/** migrations[i] takes the schema from version i to i + 1: SQL, or a function for steps
 * that need to look at the data. */
const migrations: (string | ((db: Database.Database) => void))[] = [
  `
  CREATE TABLE jails (
    name        TEXT PRIMARY KEY,
    jid         INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL,
    params      TEXT NOT NULL,          -- JSON
    meta        TEXT NOT NULL DEFAULT '',
    env         TEXT NOT NULL DEFAULT '',
    revision    INTEGER NOT NULL,
    runtime     TEXT,                   -- JSON or NULL
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
  ) STRICT;
  -- the label cache refreshes "jails changed after revision N"
  CREATE INDEX jails_revision ON jails(revision);

  -- key=value lines of env then meta (labelsOf), kept in the same transaction as the jail
  CREATE TABLE labels (
    jail   TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (jail, key)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX labels_key_value ON labels(key, value, jail);

  -- revision: the global revision of the change (strictly increasing, never reused)
  CREATE TABLE events (
    revision  INTEGER PRIMARY KEY,
    type      TEXT NOT NULL,
    name      TEXT NOT NULL,
    snapshot  TEXT NOT NULL,            -- JSON JailRecord
    at        TEXT NOT NULL
  ) STRICT;

  CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
  ) STRICT;

  -- bookkeeping: revision (last global revision), compacted_through (newest deleted event),
  -- event_count
  CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
  ) STRICT;
  INSERT INTO counters(name, value) VALUES ('revision', 0), ('compacted_through', 0), ('event_count', 0);
  `,
  // 1 -> 2: the jail's readiness (guest signal), durable so a daemon restart keeps it
  `
  ALTER TABLE jails ADD COLUMN ready INTEGER NOT NULL DEFAULT 0 CHECK (ready IN (0, 1));
  `,
  // 2 -> 3: fewer pages written per change (a key write wrote ~6 pages, now ~3):
  // - every change is an event, so the newest event's revision IS the global revision (no
  //   counter row to rewrite) and "jails changed since N" comes from the events (no
  //   jails(revision) index to rewrite);
  // - one labels b-tree keyed (key, value, jail) answers the selector prefilter and is kept
  //   in sync from the jail's old and new labels (no second index).
  (db) => {
    const counter = (name: string) =>
      (db.prepare('SELECT value FROM counters WHERE name = ?').get(name) as { value: number } | undefined)?.value ?? 0;
    const newestEvent = (db.prepare('SELECT max(revision) AS r FROM events').get() as { r: number | null }).r ?? 0;
    const revision = counter('revision');
    if (revision > newestEvent) {
      // runtime bookkeeping used to bump the revision without an event: give the jail that
      // holds the newest revision its event, so the newest event carries the revision
      const row = db.prepare('SELECT * FROM jails WHERE revision = ?').get(revision) as
        | Record<string, unknown>
        | undefined;
      if (row) {
        const snapshot = {
          name: row.name,
          jid: row.jid,
          state: row.state,
          params: JSON.parse(row.params as string) as unknown,
          meta: row.meta,
          env: row.env,
          revision,
          ready: row.ready === 1,
          runtime: row.runtime === null ? null : (JSON.parse(row.runtime as string) as unknown),
          lastError: row.last_error,
          createdAt: row.created_at,
          updatedAt: row.updated_at,
        };
        db.prepare(`INSERT INTO events (revision, type, name, snapshot, at) VALUES (?, 'MODIFIED', ?, ?, ?)`).run(
          revision,
          row.name,
          JSON.stringify(snapshot),
          row.updated_at,
        );
      }
    }
    db.exec(`
      DROP INDEX jails_revision;
      CREATE TABLE labels_by_key (
        key    TEXT NOT NULL,
        value  TEXT NOT NULL,
        jail   TEXT NOT NULL,
        PRIMARY KEY (key, value, jail)
      ) STRICT, WITHOUT ROWID;
      INSERT INTO labels_by_key (key, value, jail) SELECT key, value, jail FROM labels;
      DROP TABLE labels;
      ALTER TABLE labels_by_key RENAME TO labels;
      DELETE FROM counters WHERE name IN ('revision', 'event_count');
    `);
  },
  // 3 -> 4: health and restarts (JailSupervision as JSON, NULL when nothing was recorded)
  `
  ALTER TABLE jails ADD COLUMN supervision TEXT;
  `,
];

export const SCHEMA_VERSION = migrations.length;

/** The global revision (the newest event's; the compaction mark when no event is left) and
 * the newest compacted revision. */
export const REVISIONS_SQL = `SELECT max(coalesce((SELECT max(revision) FROM events), 0), c.value) AS current, c.value AS compacted
   FROM counters c WHERE c.name = 'compacted_through'`;

export interface Revisions {
  current: number;
  compacted: number;
}

export function migrate(db: Database.Database): void {
  // up to date: no write lock needed, so opening the store to read never waits for a writer
  if (db.pragma('user_version', { simple: true }) === SCHEMA_VERSION) return;
  const run = db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(`store schema version ${version} is newer than this jailyard (${SCHEMA_VERSION})`);
    }
    for (let v = version; v < SCHEMA_VERSION; v++) {
      const step = migrations[v]!;
      if (typeof step === 'string') db.exec(step);
      else step(db);
    }
    if (version !== SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
  });
  run.immediate();
}
