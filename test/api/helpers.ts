// Shared by the API tests: a temp state folder with a real SQLite store, a JailService over
// it, a running daemon on a unix socket, and an SSE reader.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/sqlite.ts';
import { JailyardError } from '../../src/errors.ts';
import type { BatchResult, JailService, JailOutcome } from '../../src/runtime/types.ts';
import type { Store } from '../../src/store/types.ts';
import { checkRevision } from '../../src/store/revision.ts';
import { startDaemon, type Daemon, type DaemonOptions } from '../../src/api/daemon.ts';
import { watch, type WatchEvent, type WatchOptions } from '../../src/api/client.ts';

export function tempState(prefix = 'jy-api-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A JailService over the store alone: start/stop only walk the state machine (no driver).
 * Real jails are the runtime's business (src/runtime, tested there); the API only needs the
 * service's contract: records, errors, batch results.
 */
export function storeOnlyService(store: Store): JailService {
  const batch = async (names: string[], step: (name: string) => void): Promise<BatchResult> => {
    const outcomes: JailOutcome[] = names.map((name) => {
      try {
        step(name);
        return { name, status: 'ok' };
      } catch (e) {
        if (e instanceof JailyardError) return { name, status: 'failed', message: e.describe(), code: e.code };
        throw e;
      }
    });
    return { outcomes, ok: outcomes.every((o) => o.status === 'ok') };
  };
  const start = (name: string) => {
    store.transition(name, 'stopped', 'starting');
    store.transition(name, 'starting', 'running');
  };
  const stop = (name: string) => {
    store.transition(name, 'running', 'stopping');
    store.transition(name, 'stopping', 'stopped');
  };
  return {
    list: async (filter) => store.listJails(filter),
    get: async (name) => store.requireJail(name),
    create: async ({ spec, meta, env }) =>
      store.createJail({ name: spec.name, params: spec.params, ...(meta ? { meta } : {}), ...(env ? { env } : {}) }),
    modify: async (name, change, opts) => store.modifyJail(name, change, opts),
    start: (names) => batch(names, start),
    stop: (names) => batch(names, stop),
    restart: (names) =>
      batch(names, (n) => {
        stop(n);
        start(n);
      }),
    remove: async (names, opts) => {
      // like the local service: a conditional remove compares in its first change and
      // throws on a conflict (nothing changed)
      if (opts?.ifRevision !== undefined) {
        const n = names[0]!;
        if (store.requireJail(n).state === 'running') {
          store.transition(n, 'running', 'stopping', undefined, () =>
            checkRevision(store.requireJail(n), opts.ifRevision),
          );
          store.transition(n, 'stopping', 'stopped');
          store.removeJail(n);
        } else store.removeJail(n, { ifRevision: opts.ifRevision });
        return { outcomes: [{ name: n, status: 'ok' }], ok: true };
      }
      return batch(names, (n) => {
        if (store.requireJail(n).state === 'running') stop(n);
        store.removeJail(n);
      });
    },
  };
}

export interface TestDaemon {
  store: Store;
  service: JailService;
  daemon: Daemon;
  url: string;
  close(): Promise<void>;
}

export async function startTestDaemon(dir: string, extra: Partial<DaemonOptions> = {}): Promise<TestDaemon> {
  const store = openStore(dir);
  const service = storeOnlyService(store);
  const daemon = await startDaemon({
    store,
    service,
    socketPath: join(dir, 'jailyard.sock'),
    pollIntervalMs: 20,
    ...extra,
  });
  return {
    store,
    service,
    daemon,
    url: `unix://${daemon.socketPath}`,
    close: async () => {
      await daemon.close();
      store.close();
    },
  };
}

/** The collectors still reading (a test that failed did not stop its own). */
const openCollectors = new Set<Collector>();

/**
 * Stops the collectors still reading from `url`: for an after hook, before the daemon's
 * close, which would otherwise wait for the streams of a test that failed before its stop.
 */
export async function stopCollectors(url: string): Promise<void> {
  await Promise.all([...openCollectors].filter((c) => c.url === url).map((c) => c.stop()));
}

/** Collects watch events in the background; `until` waits for a condition. */
export class Collector {
  events: WatchEvent[] = [];
  error: unknown;
  readonly url: string;
  readonly #abort = new AbortController();
  readonly done: Promise<void>;

  constructor(url: string, opts: WatchOptions = {}) {
    this.url = url;
    openCollectors.add(this);
    this.done = (async () => {
      try {
        for await (const e of watch(url, { ...opts, signal: this.#abort.signal })) this.events.push(e);
      } catch (e) {
        this.error = e;
      } finally {
        openCollectors.delete(this);
      }
    })();
  }

  async until(pred: (events: WatchEvent[]) => boolean, timeoutMs = 5000): Promise<void> {
    const t0 = Date.now();
    while (!pred(this.events)) {
      if (this.error) throw this.error;
      if (Date.now() - t0 > timeoutMs)
        throw new Error(`timed out; got ${JSON.stringify(this.events.map((e) => [e.type, e.revision, e.jail?.name]))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * Until the stream is live: a BOOKMARK has come (the daemon sends one at each bookmark
   * interval; the collector must be made with `bookmarks: true`). A stream without `since`
   * sees only what happens after its request reached the daemon, so a write made before
   * that would never come.
   */
  async live(timeoutMs = 5000): Promise<void> {
    await this.until((events) => events.some((e) => e.type === 'BOOKMARK'), timeoutMs);
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.done;
  }

  /** [type, name] pairs of the non-bookmark events. */
  pairs(): Array<[string, string | undefined]> {
    return this.events.filter((e) => e.type !== 'BOOKMARK').map((e) => [e.type, e.jail?.name]);
  }
}
