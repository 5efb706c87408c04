// The store's schema, versioned with PRAGMA user_version. Each migration runs once, inside
// one BEGIN IMMEDIATE transaction, so processes opening the store together agree.

import type Database from 'better-sqlite3';

/** migrations[i] takes the schema from version i to i + 1. */
const migrations: string[] = [
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
];

export const SCHEMA_VERSION = migrations.length;

export function migrate(db: Database.Database): void {
  const run = db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(`store schema version ${version} is newer than this jailyard (${SCHEMA_VERSION})`);
    }
    for (let v = version; v < SCHEMA_VERSION; v++) db.exec(migrations[v]!);
    if (version !== SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
  });
  run.immediate();
}
