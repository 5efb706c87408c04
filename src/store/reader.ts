// A read-only connection to the store through Node's own SQLite (node:sqlite), with the part
// of better-sqlite3's API the store's reads use (prepare/get/all/iterate, transaction,
// pragma, close). For commands that only read (ls, exec through Node): loading better-sqlite3
// (its JavaScript and its 2 MB addon) took ~20 ms of each such command, more than the
// query; Node's SQLite is already in the process. Read-only also means that closing it never
// checkpoints the WAL (a read-write connection that closes last does, with an fsync).
//
// Nothing is written through it: a write fails with SQLITE_READONLY. The caller opens the
// usual read-write store instead when this returns undefined (no store file yet, a schema to
// migrate first, a Node without node:sqlite).
import type Database from 'better-sqlite3';
import type * as NodeSqlite from 'node:sqlite';
import { join } from 'node:path';
import { SCHEMA_VERSION } from './schema.ts';

/** The store's file in its state folder. */
export const STORE_FILE = 'jailyard.db';

/** How long a connection waits for another process's write lock: `given`, else
 * $JAILYARD_STORE_BUSY_MS, else 10 s. */
export function busyTimeoutMs(given?: number): number {
  const env = Number(process.env.JAILYARD_STORE_BUSY_MS || NaN);
  return given ?? (Number.isInteger(env) && env >= 0 ? env : 10_000);
}

/** SQLite's primary result codes, as better-sqlite3 names them in `code` (storeError reads
 * those); node:sqlite gives the number only. */
const CODES: Record<number, string> = {
  3: 'SQLITE_PERM',
  5: 'SQLITE_BUSY',
  6: 'SQLITE_LOCKED',
  8: 'SQLITE_READONLY',
  10: 'SQLITE_IOERR',
  11: 'SQLITE_CORRUPT',
  13: 'SQLITE_FULL',
  14: 'SQLITE_CANTOPEN',
  26: 'SQLITE_NOTADB',
};

function named<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const errcode = (e as { errcode?: unknown }).errcode;
    if (e instanceof Error && typeof errcode === 'number') {
      const code = CODES[errcode & 0xff];
      if (code) Object.defineProperty(e, 'code', { value: code, configurable: true, writable: true });
    }
    throw e;
  }
}

type Args = NodeSqlite.SQLInputValue[];

/**
 * Opens `file` read-only when its schema is `schemaVersion`; undefined when it cannot (no such
 * file, another schema version, no node:sqlite) and the caller should open it read-write.
 */
export function openReader(file: string, schemaVersion: number, busyMs: number): Database.Database | undefined {
  const sqlite = process.getBuiltinModule?.('node:sqlite') as typeof NodeSqlite | undefined;
  if (!sqlite) return undefined;
  let db: NodeSqlite.DatabaseSync;
  try {
    db = new sqlite.DatabaseSync(file, { readOnly: true, timeout: busyMs });
  } catch {
    return undefined;
  }
  try {
    const version = (db.prepare('PRAGMA user_version').get() as { user_version: number } | undefined)?.user_version;
    if (version !== schemaVersion) {
      db.close();
      return undefined;
    }
  } catch {
    db.close();
    return undefined;
  }
  const prepare = (sql: string) => {
    const s = named(() => db.prepare(sql));
    return {
      get: (...a: Args) => named(() => s.get(...a)),
      all: (...a: Args) => named(() => s.all(...a)),
      iterate: (...a: Args) => named(() => s.all(...a))[Symbol.iterator](),
      run: (...a: Args) => named(() => s.run(...a)),
    };
  };
  const transaction = (fn: (...a: unknown[]) => unknown) => {
    const run = (...a: unknown[]) => {
      if (db.isTransaction) return fn(...a);
      named(() => db.exec('BEGIN'));
      try {
        const r = fn(...a);
        db.exec('COMMIT');
        return r;
      } catch (e) {
        if (db.isTransaction) db.exec('ROLLBACK');
        throw e;
      }
    };
    return Object.assign(run, { deferred: run, immediate: run, exclusive: run });
  };
  const pragma = (text: string, opts?: { simple?: boolean }) => {
    const rows = named(() => db.prepare(`PRAGMA ${text}`).all());
    return opts?.simple ? Object.values(rows[0] ?? {})[0] : rows;
  };
  const reader = {
    prepare,
    transaction,
    pragma,
    exec: (sql: string) => named(() => db.exec(sql)),
    close: () => db.close(),
    get open() {
      return db.isOpen;
    },
    get readonly() {
      return true;
    },
  };
  return reader as unknown as Database.Database;
}

/** A read-only connection to the store in the state folder `dir` (openReader: undefined when
 * the caller should open it read-write): SqliteStore's until its first write, and the CLI's
 * fast `ls`'s (src/cli/ls-fast.ts). */
export function openStoreReader(dir: string, busyMs = busyTimeoutMs()): Database.Database | undefined {
  return openReader(join(dir, STORE_FILE), SCHEMA_VERSION, busyMs);
}
