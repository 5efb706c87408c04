// The daemon's one reader of the store's event log. It polls the global revision (cheap:
// one indexed SELECT) so writes by other processes (the CLI) show up, is woken at once by
// writes made through this daemon, keeps the current state of every jail (so a watcher with
// a label selector knows whether a jail matched BEFORE an event), and fans events out to
// subscribers. Resuming watchers replay from a ring of recent events, or from the store.

import { JailyardError, isJailyardError } from '../errors.ts';
import type { EventLog, EventType, JailRecord } from '../store/types.ts';

export interface HubEvent {
  /** Global revision of the event in the store's log. */
  revision: number;
  type: EventType;
  name: string;
  /** The jail after the event (for DELETED: as it was when removed). */
  jail: JailRecord;
  /** The jail before the event; undefined when it did not exist (or is unknown). */
  prev: JailRecord | undefined;
  /** False when the daemon cannot know the jail's state before the event (history gone). */
  prevKnown: boolean;
}

export interface HubSubscriber {
  event(e: HubEvent): void;
  /** The hub lost its place in the log (compacted under it): the stream must end. */
  reset(): void;
}

export interface Subscription {
  /** Events after `since` up to `revision`, oldest first (empty without since). */
  backlog: HubEvent[];
  /** The revision the subscriber is now at: every later event reaches it live. */
  revision: number;
  unsubscribe(): void;
}

export interface HubOptions {
  /** How often to look for writes by other processes (ms). */
  pollMs?: number;
  /** How many recent events to keep in memory for resuming watchers. */
  ringSize?: number;
  /** Called when a background poll fails (e.g. the database is busy); the next poll retries. */
  onError?: (e: unknown) => void;
}

const PAGE = 1000;

export class WatchHub {
  readonly #store: EventLog;
  readonly #pollMs: number;
  readonly #ringSize: number;
  readonly #onError: (e: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #revision = 0;
  #states = new Map<string, JailRecord>();
  /** Recent events with their previous states; complete for revisions > #ringFloor. */
  #ring: HubEvent[] = [];
  #ringFloor = 0;
  #subscribers = new Set<HubSubscriber>();
  #wakeQueued = false;
  /** Events read from the log since the daemon started. */
  eventsTotal = 0;

  constructor(store: EventLog, opts: HubOptions = {}) {
    this.#store = store;
    this.#pollMs = opts.pollMs ?? 25;
    this.#ringSize = opts.ringSize ?? 10_000;
    this.#onError = opts.onError ?? (() => {});
  }

  get revision(): number {
    return this.#revision;
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /** Every jail as of `revision`. */
  states(): ReadonlyMap<string, JailRecord> {
    return this.#states;
  }

  start(): void {
    this.#seed();
    this.#timer ??= setInterval(() => this.#safePoll(), this.#pollMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#subscribers.clear();
  }

  /** A consistent picture: the list and the revision it belongs to (retried if a write
   * from another process slips between the two reads). */
  #seed(): void {
    for (let attempt = 0; ; attempt++) {
      const before = this.#store.currentRevision();
      const jails = this.#store.listJails();
      const after = this.#store.currentRevision();
      if (before === after || attempt >= 20) {
        this.#states = new Map(jails.map((j) => [j.name, j]));
        this.#revision = before;
        this.#ring = [];
        this.#ringFloor = before;
        return;
      }
    }
  }

  /** Wake soon (after the current write's response is queued), without waiting a tick. */
  notify(): void {
    if (this.#wakeQueued) return;
    this.#wakeQueued = true;
    setImmediate(() => {
      this.#wakeQueued = false;
      this.#safePoll();
    });
  }

  #safePoll(): void {
    try {
      this.poll();
    } catch (e) {
      this.#onError(e);
    }
  }

  /** Reads new events from the log and hands them to subscribers. Synchronous. */
  poll(): void {
    const current = this.#store.currentRevision();
    if (current === this.#revision) return;
    for (;;) {
      let events;
      try {
        events = this.#store.eventsSince(this.#revision, PAGE);
      } catch (e) {
        if (isJailyardError(e) && e.code === 'JY_ERR_REVISION_GONE') {
          // We fell behind compaction: start over from the current state, end every stream
          // (clients resume with since and are told to re-list).
          const subs = [...this.#subscribers];
          this.#subscribers.clear();
          this.#seed();
          for (const s of subs) s.reset();
          return;
        }
        throw e;
      }
      for (const ev of events) {
        const prev = this.#states.get(ev.name);
        if (ev.type === 'DELETED') this.#states.delete(ev.name);
        else this.#states.set(ev.name, ev.jail);
        this.#revision = ev.revision;
        const he: HubEvent = {
          revision: ev.revision,
          type: ev.type,
          name: ev.name,
          jail: ev.jail,
          prev,
          prevKnown: true,
        };
        this.#remember(he);
        this.eventsTotal++;
        this.#dispatch(he);
      }
      if (events.length < PAGE) break;
    }
    // a cluster's revision also moves for changes that are no jail's (nodes, settings):
    // nothing of a jail happened up to it (the SQLite log's revision is its last event's)
    if (current > this.#revision) this.#revision = current;
  }

  #remember(e: HubEvent): void {
    this.#ring.push(e);
    if (this.#ring.length > 2 * this.#ringSize) {
      const dropped = this.#ring.splice(0, this.#ring.length - this.#ringSize);
      this.#ringFloor = dropped[dropped.length - 1]!.revision;
    }
  }

  #dispatch(e: HubEvent): void {
    for (const s of this.#subscribers) s.event(e);
  }

  /**
   * Subscribes from `since` (exclusive) or, without it, from now. Throws
   * JY_ERR_REVISION_GONE when the events after `since` are no longer kept, or when `since`
   * is ahead of the log (another store): the client must re-list.
   */
  subscribe(since: number | undefined, subscriber: HubSubscriber): Subscription {
    this.poll();
    let backlog: HubEvent[] = [];
    if (since !== undefined) {
      if (since > this.#revision) {
        throw new JailyardError(
          'JY_ERR_REVISION_GONE',
          `revision ${since} is ahead of the current revision ${this.#revision}: list again`,
          { step: 'watch' },
        );
      }
      // Same answer as the store about what is kept (the ring may remember more).
      this.#store.eventsSince(since, 1);
      backlog = since >= this.#ringFloor ? this.#ring.filter((e) => e.revision > since) : this.#replayFromStore(since);
    }
    this.#subscribers.add(subscriber);
    return { backlog, revision: this.#revision, unsubscribe: () => this.#subscribers.delete(subscriber) };
  }

  /** Events after `since` from the store (older than this daemon's memory). The state
   * before each event comes from the kept history when it reaches back to revision 0;
   * otherwise a jail's first event in the replay is marked prevKnown=false. */
  #replayFromStore(since: number): HubEvent[] {
    const states = new Map<string, JailRecord>();
    let historyComplete = true;
    try {
      for (let at = 0; at < since; ) {
        const page = this.#store.eventsSince(at, PAGE).filter((e) => e.revision <= since);
        for (const ev of page) {
          if (ev.type === 'DELETED') states.delete(ev.name);
          else states.set(ev.name, ev.jail);
          at = ev.revision;
        }
        if (page.length < PAGE) break;
      }
    } catch (e) {
      if (!(isJailyardError(e) && e.code === 'JY_ERR_REVISION_GONE')) throw e;
      historyComplete = false;
      states.clear();
    }
    const seen = new Set<string>();
    const out: HubEvent[] = [];
    for (let at = since; at < this.#revision; ) {
      const page = this.#store.eventsSince(at, PAGE).filter((e) => e.revision <= this.#revision);
      for (const ev of page) {
        const prevKnown = historyComplete || seen.has(ev.name);
        const prev = states.get(ev.name);
        if (ev.type === 'DELETED') states.delete(ev.name);
        else states.set(ev.name, ev.jail);
        seen.add(ev.name);
        out.push({ revision: ev.revision, type: ev.type, name: ev.name, jail: ev.jail, prev, prevKnown });
        at = ev.revision;
      }
      if (page.length < PAGE) break;
    }
    return out;
  }
}
