// The jails as the daemon has them, kept live: one list, then the watch stream from the
// list's revision (docs/api.md: list-then-watch neither misses nor repeats). A dropped stream
// resumes from the last revision seen; a 410 (history compacted) lists again. No polling.

import { ApiError, request, watchStream, type JailView, type WatchEvent } from './api.ts';

export interface FeedEvent {
  revision: number;
  type: WatchEvent['type'];
  name: string;
  state: JailView['state'];
  at: string;
}

export type FeedStatus = 'connecting' | 'live' | 'reconnecting' | 'unauthorized';

const KEEP_EVENTS = 200;

export class JailFeed {
  jails = new Map<string, JailView>();
  revision = 0;
  status: FeedStatus = 'connecting';
  /** The latest events seen since the page loaded, newest last. */
  events: FeedEvent[] = [];
  /** Counts the changes: a view that rendered at one version and subscribed later can tell
   * that it missed some (parts.tsx useFeed). */
  version = 0;
  readonly #listeners = new Set<() => void>();
  readonly #abort = new AbortController();

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    this.version++;
    for (const l of this.#listeners) l();
  }

  stop(): void {
    this.#abort.abort();
  }

  async #list(): Promise<void> {
    const { data } = await request<{ revision: number; items: JailView[] }>('GET', '/v1/jails');
    this.jails = new Map(data.items.map((j) => [j.name, j]));
    this.revision = data.revision;
    this.#changed();
  }

  #apply(e: WatchEvent): void {
    if (e.type === 'BOOKMARK') {
      this.revision = Math.max(this.revision, e.revision);
      return;
    }
    const j = e.jail;
    if (!j) return;
    this.revision = Math.max(this.revision, e.revision);
    if (e.type === 'DELETED') this.jails.delete(j.name);
    else this.jails.set(j.name, j);
    this.events.push({ revision: e.revision, type: e.type, name: j.name, state: j.state, at: j.updatedAt });
    if (this.events.length > KEEP_EVENTS) this.events.splice(0, this.events.length - KEEP_EVENTS);
  }

  /** Runs until stop(): list, watch, resume. */
  async run(): Promise<void> {
    const signal = this.#abort.signal;
    let listed = false;
    let backoff = 100;
    while (!signal.aborted) {
      try {
        if (!listed) {
          await this.#list();
          listed = true;
        }
        for await (const e of watchStream(this.revision, signal)) {
          if (this.status !== 'live') this.status = 'live';
          backoff = 100;
          this.#apply(e);
          this.#changed();
        }
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof ApiError && e.status === 401) {
          this.status = 'unauthorized';
          this.#changed();
          return;
        }
        // the log no longer holds our revision: the whole list again
        if (e instanceof ApiError && e.status === 410) listed = false;
      }
      if (signal.aborted) return;
      this.status = 'reconnecting';
      this.#changed();
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 5000);
    }
  }
}
