// The embedded state store over SQLite (better-sqlite3): one file, WAL, BEGIN IMMEDIATE for
// every write, one event per change. Shared by the CLI and the daemon, and safe between
// processes: every read-modify-write happens inside the write transaction.

import {
  mkdirSync,
  chmodSync,
  closeSync,
  openSync,
  statSync,
  statfsSync,
  unlinkSync,
  writeSync,
  existsSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { JailyardError, withContext } from '../errors.ts';
import { applyMetaOps, metaBufferSize, type MetaOp } from '../meta/ops.ts';
import { labelMapOf, labelsOf } from '../meta/labels.ts';
import { parseSelector, type Requirement } from '../meta/selector.ts';
import type { Params } from '../conf/spec.ts';
import { migrate, REVISIONS_SQL, type Revisions } from './schema.ts';
import { busyTimeoutMs, openStoreReader, STORE_FILE } from './reader.ts';
import { ancestorsOf, isJidRef, validateJailName, wantedJid } from './names.ts';
import { checkSetting, DEFAULT_SETTINGS, SETTING_NAMES } from './settings.ts';
import { recordToRow, rowToRecord, type JailRow } from './rows.ts';
import { JailCache } from './cache.ts';
import { checkRevision } from './revision.ts';
import { startCheckpointer, type Checkpointer } from './checkpointer.ts';
import {
  ALLOWED_TRANSITIONS,
  type EventType,
  type JailChange,
  type JailEvent,
  type JailRecord,
  type JailState,
  type JailSupervision,
  type RuntimeFacts,
  type Settings,
  type Store,
  type TransitionPatch,
  type WriteOptions,
} from './types.ts';

export interface OpenStoreOptions {
  /** PRAGMA synchronous in WAL mode: NORMAL (default; a power loss may lose the last commits
   * but never corrupts) or FULL (every commit fsyncs the WAL). */
  synchronous?: 'NORMAL' | 'FULL';
  /** Keep an in-process label cache for listJails (default true). Without it, selector
   * queries prefilter through the labels table. */
  cache?: boolean;
  /** SQLite busy timeout in ms (default $JAILYARD_STORE_BUSY_MS, else 10000): how long a
   * writer waits for another before failing with a clear error. */
  busyTimeoutMs?: number;
  /** Mostly reads will follow (ls, exec): an existing store of the current schema is opened
   * read-only through node:sqlite (./reader.ts), without loading better-sqlite3, and the
   * first write reopens it read-write; otherwise (no store yet, a migration due) it is
   * opened read-write at once. */
  readOnly?: boolean;
}

/** better-sqlite3, loaded by the first read-write open (read-only opens never need it). */
let driver: typeof Database | undefined;

/**
 * The stores of this process that read through node:sqlite. Two SQLite libraries in one
 * process (Node's own and better-sqlite3's) do not share SQLite's table of open files, and
 * fcntl locks belong to the process: closing either library's descriptor of a file drops the
 * locks the other holds on it (the WAL index's read and write locks among them), so another
 * process may then write under a reader, or rebuild the index under a writer: a malformed
 * database. So node:sqlite is used only while this process has no better-sqlite3 connection:
 * the first one closes every node:sqlite reader before it opens and reopens them after it
 * (test/store/two-sqlites.test.ts), and once better-sqlite3 is loaded, read-only opens use it.
 */
const nodeSqliteReaders = new Set<SqliteStore>();

export { STORE_FILE };
/** Space kept free for the writes that stop and remove jails (see docs/reliability.md). */
export const RESERVE_FILE = 'jailyard.reserve';
export const RESERVE_BYTES = 1 << 20;
/** Below this much free space, writes that add are refused. */
const LOW_SPACE_BYTES = 256 * 1024;
const SPACE_CHECK_MS = 250;

/** Bytes an unprivileged writer may still use on the filesystem holding `dir`. */
function freeBytes(dir: string): number {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

function sqliteCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return e instanceof Error && typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/** A disk-full failure: SQLITE_FULL, or an I/O error (opening the WAL or its index on a full
 * filesystem reports SQLITE_IOERR_*) while the filesystem has next to nothing left. */
function isDiskFull(e: unknown, dir: string): boolean {
  const code = sqliteCode(e);
  if (code === 'SQLITE_FULL') return true;
  return (code?.startsWith('SQLITE_IOERR') ?? false) && freeBytes(dir) < LOW_SPACE_BYTES;
}

/** SQLite's failures to use the store file, as errors that name the file and what to do. */
function storeError(e: unknown, file: string, busyMs: number, jail?: string): unknown {
  const code = sqliteCode(e);
  if (!code) return e;
  const place = { step: 'store', ...(jail ? { jail } : {}) };
  const dir = file.slice(0, file.lastIndexOf('/')) || '/';
  if (isDiskFull(e, dir)) {
    return new JailyardError(
      'JY_ERR_STORE',
      `no space left on the state folder's disk (ENOSPC) writing ${file}; nothing was changed: free space on ${dir} and retry`,
      place,
      { cause: e },
    );
  }
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new JailyardError(
      'JY_ERR_STORE',
      `the store ${file} is locked by another process (waited ${busyMs} ms); nothing was changed: retry when it is done, ` +
        `or find the holder with \`fuser ${file}\``,
      place,
      { cause: e },
    );
  }
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code === 'SQLITE_PERM') {
    return new JailyardError(
      'JY_ERR_STORE',
      `the store ${file} cannot be written (${code}: ${(e as Error).message}); nothing was changed: ` +
        `make ${file} and its folder writable (not a read-only mount) and retry`,
      place,
      { cause: e },
    );
  }
  if (code.startsWith('SQLITE_IOERR') || code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') {
    return new JailyardError('JY_ERR_STORE', `the store ${file} failed: ${code}: ${(e as Error).message}`, place, {
      cause: e,
    });
  }
  return e;
}

/** Opens (creating if needed, mode 0700) the store in `dir`: `dir/jailyard.db`. */
export function openStore(dir: string, opts: OpenStoreOptions = {}): SqliteStore {
  return new SqliteStore(dir, opts);
}

/** Operators that need the key present, so the labels table can narrow the candidates. */
const PREFILTER_OPERATORS: ReadonlySet<string> = new Set(['=', '==', 'in', 'exists', 'gt', 'lt']);

/** Events deleted at once when the log is past event_history (at most). */
const COMPACTION_BATCH = 1024;

interface EventRow {
  revision: number;
  type: string;
  name: string;
  snapshot: string;
  at: string;
}

/**
 * A jail's supervision after a transition to `to` (JailSupervision): 'starting' and 'stopped'
 * end the health of the life before, 'starting' and 'stopping' cancel a pending restart (an
 * operator's start or stop); then the transition's own patch (the supervisor's) applies.
 */
export function supervisionAfter(
  cur: JailSupervision | null,
  to: JailState,
  patch?: (cur: JailSupervision | null) => JailSupervision | null,
): JailSupervision | null {
  let next = cur ? { ...cur } : null;
  if (next && (to === 'starting' || to === 'stopped')) delete next.health;
  if (next && (to === 'starting' || to === 'stopping')) delete next.pending;
  if (patch) next = patch(next);
  return next && (next.restarts > 0 || next.health || next.pending || next.streak) ? next : null;
}

/** An event's jail as stored; snapshots written before `ready` existed read as not ready. */
function snapshotOf(text: string): JailRecord {
  const jail = JSON.parse(text) as JailRecord;
  jail.ready = jail.ready === true;
  return jail;
}

/** The store's prepared statements on `db`. */
function statements(db: Database.Database) {
  return {
    get: db.prepare<[string], JailRow>('SELECT * FROM jails WHERE name = ?'),
    all: db.prepare<[], JailRow>('SELECT * FROM jails ORDER BY name'),
    insert: db.prepare<[JailRow]>(
      `INSERT INTO jails (name, jid, state, params, meta, env, revision, ready, runtime, last_error, supervision, created_at, updated_at)
       VALUES (@name, @jid, @state, @params, @meta, @env, @revision, @ready, @runtime, @last_error, @supervision, @created_at, @updated_at)`,
    ),
    // positional: binding twelve values by name costs more than the rest of the statement
    update: db.prepare<
      [
        number,
        string,
        string,
        string,
        string,
        number,
        number,
        string | null,
        string | null,
        string | null,
        string,
        string,
      ]
    >(
      `UPDATE jails SET jid = ?, state = ?, params = ?, meta = ?, env = ?, revision = ?,
       ready = ?, runtime = ?, last_error = ?, supervision = ?, updated_at = ? WHERE name = ?`,
    ),
    delete: db.prepare<[string]>('DELETE FROM jails WHERE name = ?'),
    revisions: db.prepare<[], Revisions>(REVISIONS_SQL),
    setCompacted: db.prepare<[number]>(`UPDATE counters SET value = ? WHERE name = 'compacted_through'`),
    addEvent: db.prepare<[number, string, string, string, string]>(
      'INSERT INTO events (revision, type, name, snapshot, at) VALUES (?, ?, ?, ?, ?)',
    ),
    eventsSince: db.prepare<[number, number], EventRow>(
      'SELECT * FROM events WHERE revision > ? ORDER BY revision LIMIT ?',
    ),
    deleteEventsThrough: db.prepare<[number]>('DELETE FROM events WHERE revision <= ?'),
    settings: db.prepare<[], { name: string; value: number }>('SELECT name, value FROM settings'),
    setSetting: db.prepare<[string, number]>(
      'INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value',
    ),
    deleteLabel: db.prepare<[string, string, string]>('DELETE FROM labels WHERE key = ? AND value = ? AND jail = ?'),
    insertLabel: db.prepare<[string, string, string]>('INSERT INTO labels (key, value, jail) VALUES (?, ?, ?)'),
    byJid: db.prepare<[number], JailRow>(`SELECT * FROM jails WHERE jid = ? AND state != 'stopped'`),
    byJidParam: db.prepare<[number], JailRow>(
      `SELECT * FROM jails WHERE state = 'stopped' AND json_extract(params, '$.jid') = ? ORDER BY name`,
    ),
    busyJids: db.prepare<[], { jid: number }>(
      `SELECT jid FROM jails WHERE state != 'stopped' AND jid > 0 ORDER BY jid`,
    ),
    subtreeSize: db.prepare<[string, string], { total: number }>(
      `SELECT coalesce(sum(
         (CASE WHEN meta = '' THEN 0 ELSE length(CAST(meta AS BLOB)) + 1 END) +
         (CASE WHEN env = '' THEN 0 ELSE length(CAST(env AS BLOB)) + 1 END)), 0) AS total
       FROM jails WHERE name > ? AND name < ?`,
    ),
  };
}

export class SqliteStore implements Store {
  readonly dir: string;
  private readonly opts: OpenStoreOptions;
  private db: Database.Database;
  /** this.db is a read-only connection (./reader.ts) until the first write. */
  private reading: boolean;
  private readonly cacheOn: boolean;
  private cache!: JailCache | null;
  private listCalls = 0;
  private q!: ReturnType<typeof statements>;
  private transaction!: Database.Transaction<(fn: () => unknown) => unknown>;
  private readonly file: string;
  private readonly busyMs: number;
  /** The reserve file is gone (given up on a full disk): writes that add need free space. */
  private reserveGone = false;
  /** When the filesystem last had room (Date.now()). */
  private spaceCheckedAt = 0;

  constructor(dir: string, opts: OpenStoreOptions = {}) {
    this.dir = dir;
    this.file = join(dir, STORE_FILE);
    this.busyMs = busyTimeoutMs(opts.busyTimeoutMs);
    this.opts = opts;
    this.cacheOn = opts.cache !== false;
    const reader = opts.readOnly && !driver ? openStoreReader(dir, this.busyMs) : undefined;
    this.reading = reader !== undefined;
    if (reader) nodeSqliteReaders.add(this);
    this.db = reader ?? this.openWritable();
    this.attach();
  }

  /** Prepares the statements, the cache and the write wrapper on this.db. */
  private attach(): void {
    this.q = statements(this.db);
    this.cache = this.cacheOn ? new JailCache(this.db) : null;
    // one wrapper for every write (better-sqlite3 builds four functions per transaction())
    this.transaction = this.db.transaction((fn: () => unknown) => fn());
  }

  /** Opened to read (OpenStoreOptions.readOnly) and now asked to write: from here on the
   * usual read-write connection. */
  private becomeWriter(): void {
    this.closeReader();
    this.reopenWritable();
  }

  /** The first half of becomeWriter: the node:sqlite connection closed. */
  private closeReader(): void {
    nodeSqliteReaders.delete(this);
    this.db.close();
  }

  /** The second half: the read-write connection in its place. */
  private reopenWritable(): void {
    this.db = this.openWritable();
    this.reading = false;
    this.attach();
  }

  /** The read-write connection (made, with its folder, when there is no store yet). */
  private openWritable(): Database.Database {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    // only when needed: a read-only state folder then fails below, naming the store file
    if ((statSync(this.dir).mode & 0o777) !== 0o700) chmodSync(this.dir, 0o700);
    let db: Database.Database;
    try {
      db = this.openDb(this.opts);
    } catch (e) {
      // Opening in WAL mode makes the WAL and its index: on a full disk, give up the reserve
      // so that the jails can still be stopped and removed.
      if (!isDiskFull(e, this.dir) || !this.releaseReserve()) throw storeError(e, this.file, this.busyMs);
      try {
        db = this.openDb(this.opts);
      } catch (e2) {
        throw storeError(e2, this.file, this.busyMs);
      }
    }
    this.keepReserve();
    return db;
  }

  private openDb(opts: OpenStoreOptions): Database.Database {
    if (!driver) {
      // the process's first better-sqlite3 connection: no node:sqlite one may stay open beside it
      const readers = [...nodeSqliteReaders];
      for (const r of readers) r.closeReader();
      driver = createRequire(import.meta.url)('better-sqlite3') as typeof Database;
      for (const r of readers) {
        try {
          r.reopenWritable();
        } catch {
          // that store stays closed: its next call fails naming a closed connection, this
          // open goes on
        }
      }
    }
    const db = new driver(this.file);
    try {
      // SQLite's busy handler waits for the write lock (sleeping 1, 2, 5, 10 ... 100 ms between
      // tries). Measured with 20-50 writer processes, it burns far less CPU than retrying from
      // JS with shorter sleeps (each failed try there costs an exception), and is as fast.
      db.pragma(`busy_timeout = ${this.busyMs}`);
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
      migrate(db);
      return db;
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /** Keeps RESERVE_BYTES of the disk as a file beside the store (made again once there is
   * room): what a stop or remove needs when the disk is full. Best effort. */
  private keepReserve(): void {
    const path = join(this.dir, RESERVE_FILE);
    if (existsSync(path)) return;
    if (freeBytes(this.dir) < 2 * RESERVE_BYTES) {
      this.reserveGone = true;
      return;
    }
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        // written, not sparse: the blocks must really be taken
        const chunk = Buffer.alloc(64 * 1024);
        for (let n = 0; n < RESERVE_BYTES; n += chunk.length) writeSync(fd, chunk);
      } finally {
        closeSync(fd);
      }
      this.reserveGone = false;
    } catch {
      try {
        unlinkSync(path);
      } catch {
        // not made
      }
      this.reserveGone = true;
    }
  }

  /** Gives the reserve back to the filesystem; false when there was none. */
  private releaseReserve(): boolean {
    this.reserveGone = true;
    try {
      unlinkSync(join(this.dir, RESERVE_FILE));
      return true;
    } catch {
      return false;
    }
  }

  /** Before a write that adds (create, set, start): refused while the disk is full, so the
   * reserve stays for the writes that stop and remove. */
  private needSpace(jail?: string): void {
    // A long-lived handle (the daemon) may still have room in its WAL on a full disk: look at
    // the filesystem, not only at what SQLite managed to write. Room for a few WAL frames is
    // enough; without the reserve, its room must be back first.
    // (statfs costs ~10 us on a loaded host: looked at every SPACE_CHECK_MS at most while
    // there was room; SQLite's own SQLITE_FULL covers the moments in between)
    const now = Date.now();
    if (!this.reserveGone && now - this.spaceCheckedAt < SPACE_CHECK_MS) return;
    const free = freeBytes(this.dir);
    if (!this.reserveGone && free >= LOW_SPACE_BYTES) {
      this.spaceCheckedAt = now;
      return;
    }
    this.spaceCheckedAt = 0;
    if (this.reserveGone && free >= RESERVE_BYTES + LOW_SPACE_BYTES) {
      this.keepReserve();
      return;
    }
    const err = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    throw storeError(err, this.file, this.busyMs, jail);
  }

  close(): void {
    nodeSqliteReaders.delete(this);
    this.db.close();
  }

  checkpointInBackground(): Checkpointer {
    return startCheckpointer(join(this.dir, STORE_FILE));
  }

  /** Runs `fn` in one BEGIN IMMEDIATE transaction (the write lock is taken up front, so the
   * read-modify-write inside cannot interleave with another process's). */
  private write<T>(fn: () => T, opts: { jail?: string; frees?: boolean | (() => boolean) } = {}): T {
    if (this.reading) this.becomeWriter();
    try {
      return this.transaction.immediate(fn) as T;
    } catch (e) {
      // a write that stops or removes may use the reserve: give it up and try once more
      const frees = typeof opts.frees === 'function' ? opts.frees() : opts.frees === true;
      if (frees && isDiskFull(e, this.dir) && this.releaseReserve()) {
        try {
          return this.transaction.immediate(fn) as T;
        } catch (e2) {
          throw storeError(e2, this.file, this.busyMs, opts.jail);
        }
      }
      throw storeError(e, this.file, this.busyMs, opts.jail);
    }
  }

  private now(): string {
    return new Date().toISOString();
  }

  private updateRow(jail: JailRecord): void {
    const r = recordToRow(jail);
    this.q.update.run(
      r.jid,
      r.state,
      r.params,
      r.meta,
      r.env,
      r.revision,
      r.ready,
      r.runtime,
      r.last_error,
      r.supervision,
      r.updated_at,
      r.name,
    );
  }

  /** The revision the next change gets (inside the write transaction). */
  private nextRevision(): number {
    return this.q.revisions.get()!.current + 1;
  }

  /** Every change is one event; the newest event's revision is the global revision. */
  private appendEvent(
    revision: number,
    type: EventType,
    jail: JailRecord,
    settings: Settings,
    at = jail.updatedAt,
  ): void {
    this.q.addEvent.run(revision, type, jail.name, JSON.stringify(jail), at);
    // compact in batches (each one rewrites the counter and the oldest pages), keeping at
    // least event_history revisions
    const keep = settings.event_history;
    const slack = Math.min(COMPACTION_BATCH, Math.floor(keep / 16));
    const { compacted } = this.q.revisions.get()!;
    if (revision - compacted > keep + slack) this.compactThrough(revision - keep);
  }

  /** Deletes the events through `through` and records it as the newest compacted revision. */
  private compactThrough(through: number): void {
    this.q.deleteEventsThrough.run(through);
    this.q.setCompacted.run(through);
  }

  /** Brings the labels table in line with the new buffers, touching only changed keys. */
  private syncLabels(
    name: string,
    before: { meta: string; env: string } | null,
    after: { meta: string; env: string } | null,
  ): void {
    const none = new Map<string, string>();
    const next = after ? labelMapOf(after.meta, after.env) : none;
    const prev = before ? labelMapOf(before.meta, before.env) : none;
    for (const [key, value] of prev) if (next.get(key) !== value) this.q.deleteLabel.run(key, value, name);
    for (const [key, value] of next) if (prev.get(key) !== value) this.q.insertLabel.run(key, value, name);
  }

  private readSettings(): Settings {
    const s: Settings = { ...DEFAULT_SETTINGS };
    for (const r of this.q.settings.all()) if (Object.hasOwn(s, r.name)) s[r.name as keyof Settings] = r.value;
    return s;
  }

  private requireRow(name: string): JailRecord {
    const row = this.q.get.get(name);
    if (!row) throw new JailyardError('JY_ERR_JAIL_NOT_FOUND', `jail "${name}" not found`, { jail: name });
    return rowToRecord(row);
  }

  /** Applies meta/env ops to the current buffers under the limits (see docs/metadata.md). */
  private applyMeta(
    name: string,
    current: { meta: string; env: string },
    ops: { meta?: MetaOp[]; env?: MetaOp[] },
    settings: Settings,
  ): { meta: string; env: string } {
    const max = settings.meta_maxbufsize;
    const apply = (param: 'meta' | 'env', buf: string, list: MetaOp[] | undefined): string => {
      try {
        return applyMetaOps(buf, list ?? [], max);
      } catch (e) {
        throw e instanceof JailyardError ? withContext(e, { before: `${param}: `, place: { jail: name, param } }) : e;
      }
    };
    const next = { meta: apply('meta', current.meta, ops.meta), env: apply('env', current.env, ops.env) };
    if (settings.meta_hierarchical === 1) this.checkHierarchy(name, current, next, max);
    return next;
  }

  /** meta_hierarchical=1: for every existing ancestor A of the jail, the meta and env of A's
   * descendants together may not exceed meta_maxbufsize, unless the write shrinks them. */
  private checkHierarchy(
    name: string,
    before: { meta: string; env: string },
    after: { meta: string; env: string },
    max: number,
  ): void {
    const size = (b: { meta: string; env: string }) => metaBufferSize(b.meta) + metaBufferSize(b.env);
    const delta = size(after) - size(before);
    if (delta <= 0) return;
    for (const ancestor of ancestorsOf(name)) {
      if (!this.q.get.get(ancestor)) continue;
      const total = this.q.subtreeSize.get(`${ancestor}.`, `${ancestor}/`)!.total + delta;
      if (total > max) {
        throw new JailyardError(
          'JY_ERR_META_TOO_LARGE',
          `meta and env of the descendants of "${ancestor}" too large: ${total} bytes, meta_maxbufsize is ${max} (meta_hierarchical=1)`,
          { jail: name },
        );
      }
    }
  }

  private checkParams(name: string, params: Params | undefined): void {
    for (const p of ['meta', 'env']) {
      if (params && Object.hasOwn(params, p)) {
        throw new JailyardError('JY_ERR_PARAM_VALUE', `${p} is not set through params; use the ${p} operations`, {
          jail: name,
          param: p,
        });
      }
    }
  }

  // ------------------------------------------------------------------ Store

  createJail(input: { name: string; params: Params; meta?: MetaOp[]; env?: MetaOp[] }): JailRecord {
    validateJailName(input.name, wantedJid(input.params, input.name));
    this.checkParams(input.name, input.params);
    return this.write(
      () => {
        this.needSpace(input.name);
        if (this.q.get.get(input.name)) {
          throw new JailyardError('JY_ERR_JAIL_EXISTS', `jail "${input.name}" already exists`, { jail: input.name });
        }
        const settings = this.readSettings();
        // meta and env start empty: never inherited from a parent jail
        const { meta, env } = this.applyMeta(input.name, { meta: '', env: '' }, input, settings);
        const revision = this.nextRevision();
        const at = this.now();
        const jail: JailRecord = {
          name: input.name,
          jid: 0,
          state: 'stopped',
          params: input.params,
          meta,
          env,
          revision,
          ready: false,
          runtime: null,
          lastError: null,
          createdAt: at,
          updatedAt: at,
        };
        this.q.insert.run(recordToRow(jail));
        this.syncLabels(jail.name, null, jail);
        this.appendEvent(revision, 'ADDED', jail, settings);
        return jail;
      },
      { jail: input.name },
    );
  }

  getJail(name: string): JailRecord | undefined {
    const row = this.q.get.get(name);
    return row ? rowToRecord(row) : undefined;
  }

  requireJail(name: string): JailRecord {
    return this.requireRow(name);
  }

  resolveJail(ref: string): JailRecord | undefined {
    if (!isJidRef(ref)) return this.getJail(ref);
    const jid = Number(ref);
    const running = Number.isSafeInteger(jid) && jid > 0 ? this.q.byJid.get(jid) : undefined;
    if (running) return rowToRecord(running);
    const named = this.getJail(ref);
    if (named) return named;
    const wanting = Number.isSafeInteger(jid) && jid > 0 ? this.q.byJidParam.all(jid) : [];
    return wanting.length === 1 ? rowToRecord(wanting[0]!) : undefined;
  }

  requireJailRef(ref: string): JailRecord {
    const j = this.resolveJail(ref);
    if (!j) throw new JailyardError('JY_ERR_JAIL_NOT_FOUND', `jail "${ref}" not found`, { jail: ref });
    return j;
  }

  listJails(filter?: { selector?: string }): JailRecord[] {
    const selector = filter?.selector ? parseSelector(filter.selector) : undefined;
    // A one-shot process (the CLI) asks once: the labels table answers without loading every
    // jail. From the second query on (a daemon), the cache pays off.
    const prefilter = selector?.requirements.some((r) => PREFILTER_OPERATORS.has(r.operator)) ?? false;
    if (this.cache && (this.cache.warm || !prefilter || this.listCalls++ > 0)) return this.cache.list(selector);
    if (!selector || selector.isEverything()) return this.q.all.all().map(rowToRecord);
    return this.listIndexed(selector.requirements).filter((j) => selector.matches(labelsOf(j.meta, j.env)));
  }

  /** Candidates from the labels table: the jails satisfying every requirement that needs the
   * key present (=, ==, in, exists, gt, lt); all jails when there is none. */
  private listIndexed(requirements: readonly Requirement[]): JailRecord[] {
    const clauses: string[] = [];
    const args: string[] = [];
    for (const r of requirements) {
      if (r.operator === '=' || r.operator === '==' || r.operator === 'in') {
        clauses.push(
          `name IN (SELECT jail FROM labels WHERE key = ? AND value IN (${r.values.map(() => '?').join(',')}))`,
        );
        args.push(r.key, ...r.values);
      } else if (r.operator === 'exists' || r.operator === 'gt' || r.operator === 'lt') {
        clauses.push('name IN (SELECT jail FROM labels WHERE key = ?)');
        args.push(r.key);
      }
    }
    const where = clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
    return this.db
      .prepare<string[], JailRow>(`SELECT * FROM jails ${where} ORDER BY name`)
      .all(...args)
      .map(rowToRecord);
  }

  modifyJail(name: string, change: JailChange, opts?: WriteOptions): JailRecord {
    this.checkParams(name, change.params);
    return this.write(
      () => {
        this.needSpace(name);
        const cur = this.requireRow(name);
        checkRevision(cur, opts?.ifRevision);
        const settings = this.readSettings();
        const params: Params = { ...cur.params };
        for (const k of change.unset ?? []) delete params[k];
        Object.assign(params, change.params ?? {});
        // a numeric name is its jid: the two cannot part
        if (params.jid !== cur.params.jid) validateJailName(name, wantedJid(params, name));
        const touchesMeta = (change.meta?.length ?? 0) > 0 || (change.env?.length ?? 0) > 0;
        const { meta, env } = touchesMeta ? this.applyMeta(name, cur, change, settings) : cur;
        const jail: JailRecord = { ...cur, params, meta, env, revision: this.nextRevision(), updatedAt: this.now() };
        this.updateRow(jail);
        if (touchesMeta) this.syncLabels(name, cur, jail);
        this.appendEvent(jail.revision, 'MODIFIED', jail, settings);
        return jail;
      },
      { jail: name },
    );
  }

  transition(name: string, from: JailState, to: JailState, patch?: TransitionPatch, guard?: () => void): JailRecord {
    // stopping needs no room beyond the reserve; starting must leave it
    const frees = to === 'stopping' || to === 'stopped';
    return this.write(
      () => {
        if (!frees) this.needSpace(name);
        const cur = this.requireRow(name);
        // inside the same write transaction: no other process changes what it reads
        guard?.();
        if (cur.state !== from) {
          throw new JailyardError(
            'JY_ERR_INVALID_TRANSITION',
            `invalid transition from ${cur.state} to ${to} (expected the jail to be ${from})`,
            {
              jail: name,
            },
          );
        }
        if (!ALLOWED_TRANSITIONS[from].includes(to)) {
          throw new JailyardError('JY_ERR_INVALID_TRANSITION', `invalid transition from ${from} to ${to}`, {
            jail: name,
          });
        }
        let jid = cur.jid;
        if (to === 'starting') jid = this.allocateJid(name, wantedJid(cur.params, name));
        if (to === 'stopped') jid = 0;
        // a (re)starting or stopped jail has not said it is ready in its new life
        const ready = to === 'starting' || to === 'stopped' ? false : cur.ready === true;
        const supervision = supervisionAfter(cur.supervision ?? null, to, patch?.supervision);
        const jail: JailRecord = {
          ...cur,
          state: to,
          jid,
          ready,
          runtime: patch && 'runtime' in patch ? (patch.runtime ?? null) : cur.runtime,
          lastError: patch && 'lastError' in patch ? (patch.lastError ?? null) : cur.lastError,
          revision: this.nextRevision(),
          updatedAt: this.now(),
        };
        if (supervision) jail.supervision = supervision;
        else delete jail.supervision;
        this.updateRow(jail);
        this.appendEvent(jail.revision, 'MODIFIED', jail, this.readSettings());
        return jail;
      },
      { jail: name, frees },
    );
  }

  /** The jail's own `jid` parameter when it has one (an error naming it when another jail
   * holds that jid), else the lowest positive jid not held by a jail that is not stopped. */
  private allocateJid(name: string, asked: number | undefined): number {
    if (asked !== undefined) {
      const holder = this.q.byJid.get(asked);
      if (holder && holder.name !== name)
        throw new JailyardError('JY_ERR_JAIL_EXISTS', `jid ${asked} is in use by jail "${holder.name}"`, {
          jail: name,
          param: 'jid',
        });
      return asked;
    }
    let want = 1;
    for (const { jid } of this.q.busyJids.iterate()) {
      if (jid > want) break;
      if (jid === want) want++;
    }
    return want;
  }

  setReady(name: string, ready: boolean): JailRecord {
    return this.write(
      () => {
        if (ready) this.needSpace(name);
        const cur = this.requireRow(name);
        if (cur.ready === ready) return cur;
        if (ready && cur.state !== 'running') {
          throw new JailyardError(
            'JY_ERR_INVALID_TRANSITION',
            `jail "${name}" cannot become ready while it is ${cur.state}`,
            { jail: name, param: 'ready' },
          );
        }
        const jail: JailRecord = { ...cur, ready, revision: this.nextRevision(), updatedAt: this.now() };
        this.updateRow(jail);
        this.appendEvent(jail.revision, 'MODIFIED', jail, this.readSettings());
        return jail;
      },
      { jail: name, frees: !ready },
    );
  }

  supervise(name: string, update: (cur: JailRecord) => JailSupervision | null | undefined): JailRecord {
    return this.write(
      () => {
        const cur = this.requireRow(name);
        const next = update(cur);
        if (next === undefined || JSON.stringify(next) === JSON.stringify(cur.supervision ?? null)) return cur;
        const jail: JailRecord = { ...cur, revision: this.nextRevision(), updatedAt: this.now() };
        if (next) jail.supervision = next;
        else delete jail.supervision;
        this.updateRow(jail);
        this.appendEvent(jail.revision, 'MODIFIED', jail, this.readSettings());
        return jail;
      },
      // the supervisor's bookkeeping of a jail that exists: no room is reserved for it
      { jail: name, frees: true },
    );
  }

  recordRuntime(name: string, runtime: RuntimeFacts | null, opts?: { undo?: boolean }): void {
    let stopping = false;
    this.write(
      () => {
        const cur = this.requireRow(name);
        // the steps a stop or an undo records need no room beyond the reserve
        stopping = opts?.undo === true || cur.state === 'stopping' || cur.state === 'stopped';
        if (!stopping) this.needSpace(name);
        const jail: JailRecord = { ...cur, runtime, revision: this.nextRevision(), updatedAt: this.now() };
        this.updateRow(jail);
        this.appendEvent(jail.revision, 'MODIFIED', jail, this.readSettings());
      },
      { jail: name, frees: () => stopping },
    );
  }

  removeJail(name: string, opts?: WriteOptions): void {
    this.write(
      () => {
        const cur = this.requireRow(name);
        checkRevision(cur, opts?.ifRevision);
        if (cur.state !== 'stopped') {
          throw new JailyardError(
            'JY_ERR_INVALID_TRANSITION',
            `cannot remove jail "${name}" while it is ${cur.state}; stop it first`,
            { jail: name },
          );
        }
        this.q.delete.run(name);
        this.syncLabels(name, cur, null);
        this.appendEvent(this.nextRevision(), 'DELETED', cur, this.readSettings(), this.now());
      },
      { jail: name, frees: true },
    );
  }

  currentRevision(): number {
    return this.q.revisions.get()!.current;
  }

  eventsSince(since: number, limit = 1000): JailEvent[] {
    return this.db.transaction(() => {
      const { compacted } = this.q.revisions.get()!;
      if (since < compacted) {
        throw new JailyardError(
          'JY_ERR_REVISION_GONE',
          `events after revision ${since} are gone (compacted through revision ${compacted}); list again and watch from the current revision`,
        );
      }
      return this.q.eventsSince.all(since, limit).map((r) => ({
        revision: r.revision,
        type: r.type as EventType,
        name: r.name,
        jail: snapshotOf(r.snapshot),
        at: r.at,
      }));
    })();
  }

  getSettings(): Settings {
    return this.readSettings();
  }

  setSetting<K extends keyof Settings>(name: K, value: Settings[K]): void {
    const n = checkSetting(name, value);
    this.write(() => {
      this.needSpace();
      this.q.setSetting.run(name, n);
      if (name === 'event_history') {
        const { current, compacted } = this.q.revisions.get()!;
        if (current - n > compacted) this.compactThrough(current - n);
      }
    });
  }

  /** The setting names, in display order. */
  static readonly settingNames = SETTING_NAMES;
}
