// An in-process view of all jails with their parsed labels, for fast selector queries.
// It is keyed on the global revision: before each use it asks the database for the current
// revision and, if another process (or this one) changed something, pulls only the jails
// whose revision grew and drops the ones deleted since (from the event log). If those
// deletions were compacted away, it reloads everything.

import type Database from 'better-sqlite3';
import { labelsOf } from '../meta/labels.ts';
import type { Selector } from '../meta/selector.ts';
import { rowToRecord, type JailRow } from './rows.ts';
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
      counters: db.prepare<[], { name: string; value: number }>(`SELECT name, value FROM counters WHERE name IN ('revision', 'compacted_through')`),
      all: db.prepare<[], JailRow>('SELECT * FROM jails'),
      changed: db.prepare<[number], JailRow>('SELECT * FROM jails WHERE revision > ?'),
      deleted: db.prepare<[number], { name: string }>(`SELECT name FROM events WHERE revision > ? AND type = 'DELETED'`),
    };
  }

  /** Whether the cache has been loaded once (later queries only pull changes). */
  get warm(): boolean {
    return this.revision >= 0;
  }

  private refresh(): void {
    // one read transaction: the counters, the changed rows and the deletions are one snapshot
    this.db.transaction(() => {
      const c = Object.fromEntries(this.stmts.counters.all().map((r) => [r.name, r.value])) as Record<string, number>;
      const current = c.revision ?? 0;
      if (current === this.revision) return;
      if (this.revision < 0 || (c.compacted_through ?? 0) > this.revision) {
        this.entries = new Map();
        for (const row of this.stmts.all.iterate()) this.put(row);
      } else {
        for (const { name } of this.stmts.deleted.iterate(this.revision)) this.entries.delete(name);
        for (const row of this.stmts.changed.iterate(this.revision)) this.put(row);
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
    if (!this.sorted) this.sorted = [...this.entries.values()].sort((a, b) => (a.record.name < b.record.name ? -1 : a.record.name > b.record.name ? 1 : 0));
    const out: JailRecord[] = [];
    for (const e of this.sorted) if (!selector || selector.matches(e.labels)) out.push(e.record);
    return out;
  }
}
