// An in-process view of all jails with their parsed labels, for fast selector queries.
// It is keyed on the global revision: before each use it asks the database for the current
// revision and, if another process (or this one) changed something, re-reads only the jails
// named by the events since (dropping the ones gone). If those events were compacted away,
// it reloads everything.

import type Database from 'better-sqlite3';
import { labelsOf } from '../meta/labels.ts';
import type { Selector } from '../meta/selector.ts';
import { byName, rowToRecord, type JailRow } from './rows.ts';
import { REVISIONS_SQL, type Revisions } from './schema.ts';
import type { JailRecord } from './types.ts';

interface Entry {
  record: JailRecord;
  labels: Record<string, string>;
}

export class JailCache {
  private readonly db: Database.Database;
  private revision = -1;
  private entries = new Map<string, Entry>();
  /** Entries sorted by name; rebuilt lazily after a change. */
  private sorted: Entry[] | null = null;
  private readonly stmts;

  constructor(db: Database.Database) {
    this.db = db;
    this.stmts = {
      revisions: db.prepare<[], Revisions>(REVISIONS_SQL),
      all: db.prepare<[], JailRow>('SELECT * FROM jails'),
      one: db.prepare<[string], JailRow>('SELECT * FROM jails WHERE name = ?'),
      changed: db.prepare<[number], { name: string }>('SELECT DISTINCT name FROM events WHERE revision > ?'),
    };
  }

  /** Whether the cache has been loaded once (later queries only pull changes). */
  get warm(): boolean {
    return this.revision >= 0;
  }

  private refresh(): void {
    // one read transaction: the revisions, the changed names and their rows are one snapshot
    this.db.transaction(() => {
      const { current, compacted } = this.stmts.revisions.get()!;
      if (current === this.revision) return;
      // far behind (more changes than jails, or past the compacted history): read them all
      if (this.revision < 0 || compacted > this.revision || current - this.revision > Math.max(this.entries.size, 64)) {
        this.entries = new Map();
        for (const row of this.stmts.all.iterate()) this.put(row);
      } else {
        // every change is an event: the jails named by the newer events are the changed ones
        for (const { name } of this.stmts.changed.all(this.revision)) {
          const row = this.stmts.one.get(name);
          if (row) this.put(row);
          else this.entries.delete(name);
        }
      }
      this.revision = current;
      this.sorted = null;
    })();
  }

  private put(row: JailRow): void {
    const record = Object.freeze(rowToRecord(row));
    this.entries.set(row.name, { record, labels: labelsOf(record.meta, record.env) });
  }

  /** Jails matching `selector` (all without one), ordered by name. Records are frozen and
   * shared: treat them as read-only. */
  list(selector?: Selector): JailRecord[] {
    this.refresh();
    if (!this.sorted) this.sorted = [...this.entries.values()].sort((a, b) => byName(a.record, b.record));
    const out: JailRecord[] = [];
    for (const e of this.sorted) if (!selector || selector.matches(e.labels)) out.push(e.record);
    return out;
  }
}
