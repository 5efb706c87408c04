// Where the load balancer learns about jails. A source yields SYNC (the complete set of
// matching jails: the controller reconciles everything against it) and incremental
// ADDED/MODIFIED/DELETED events. Sources: the daemon's watch stream (src/api/client.ts), a
// poll of any JailService (local store or remote), and an in-memory one for tests.

import { describeError, isJailyardError } from '../errors.ts';
import { labelsOf } from '../meta/labels.ts';
import type { Params } from '../conf/spec.ts';
import type { JailService } from '../runtime/types.ts';
import type { JailRecord, JailState } from '../store/types.ts';
import { watch } from '../api/client.ts';

/** What the load balancer needs to know of a jail. */
export interface LbJail {
  name: string;
  state: JailState;
  labels: Record<string, string>;
  params: Params;
  /** The jail signalled ready through its guest socket (PUT /ready); only jails labelled
   * jailyard.lb/readiness=guest wait for it. */
  ready: boolean;
  /** The daemon's health check verdict while running (docs/health.md); only jails labelled
   * jailyard.lb/readiness=health wait for 'healthy'. */
  health?: string | null;
}

export type SourceEvent = { type: 'SYNC'; jails: LbJail[] } | { type: 'ADDED' | 'MODIFIED' | 'DELETED'; jail: LbJail };

export interface JailSource {
  /** Events for jails matching `selector` until `signal` aborts. */
  events(selector: string, signal: AbortSignal): AsyncIterable<SourceEvent>;
}

export function lbJailOf(
  r: Pick<JailRecord, 'name' | 'state' | 'meta' | 'env' | 'params' | 'supervision'> & { ready?: boolean },
): LbJail {
  return {
    name: r.name,
    state: r.state,
    labels: labelsOf(r.meta, r.env),
    params: r.params,
    ready: r.ready === true,
    health: (r.state === 'running' && r.supervision?.health?.status) || null,
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

/**
 * The daemon's watch (GET /v1/jails?watch=1): connects with `initial` (the matching jails as
 * ADDED, then a BOOKMARK), turns that first batch into one SYNC, then passes events on. The
 * client resumes by itself after a dropped connection; when the daemon answers 410 (history
 * compacted) we start over with a fresh initial list, i.e. a new SYNC.
 */
export function apiSource(url: string, opts: { token?: string; log?: (line: string) => void } = {}): JailSource {
  return {
    async *events(selector, signal) {
      while (!signal.aborted) {
        let initial: LbJail[] | undefined = [];
        try {
          for await (const e of watch(url, {
            selector,
            initial: true,
            bookmarks: true,
            signal,
            ...(opts.token ? { token: opts.token } : {}),
          })) {
            if (e.type === 'BOOKMARK') {
              if (initial) yield { type: 'SYNC', jails: initial };
              initial = undefined;
              continue;
            }
            if (!e.jail) continue;
            const jail: LbJail = {
              name: e.jail.name,
              state: e.jail.state,
              labels: e.jail.labels,
              params: e.jail.params,
              ready: e.jail.ready === true,
              health: e.jail.health ?? null,
            };
            if (initial) {
              if (e.type !== 'DELETED') initial.push(jail);
            } else {
              yield { type: e.type, jail };
            }
          }
        } catch (e) {
          if (signal.aborted) return;
          if (isJailyardError(e) && e.code === 'JY_ERR_REVISION_GONE') {
            opts.log?.('watch: history gone (410), listing again');
            continue;
          }
          opts.log?.(`watch: ${describeError(e)}; retrying in 1 s`);
          await sleep(1000, signal);
        }
      }
    },
  };
}

/** Polls `service.list` every `pollMs` and yields each result as a SYNC: works over the
 * local store (no daemon) and over a remote service alike; the controller's reconcile turns
 * each full list into the right pool. */
export function pollingSource(
  service: JailService,
  opts: { pollMs?: number; log?: (line: string) => void } = {},
): JailSource {
  return {
    async *events(selector, signal) {
      while (!signal.aborted) {
        try {
          const jails = await service.list(selector ? { selector } : {});
          yield { type: 'SYNC', jails: jails.map(lbJailOf) };
        } catch (e) {
          opts.log?.(`list: ${describeError(e)}`);
        }
        await sleep(opts.pollMs ?? 250, signal);
      }
    },
  };
}

/** An in-memory source (tests, embedding): `set`/`delete` jails; every consumer sees a SYNC
 * first, then the changes. */
export class MemorySource implements JailSource {
  #jails = new Map<string, LbJail>();
  #listeners = new Set<(e: SourceEvent) => void>();

  set(jail: LbJail): void {
    const type = this.#jails.has(jail.name) ? 'MODIFIED' : 'ADDED';
    this.#jails.set(jail.name, jail);
    for (const l of this.#listeners) l({ type, jail });
  }

  delete(name: string): void {
    const jail = this.#jails.get(name);
    if (!jail) return;
    this.#jails.delete(name);
    for (const l of this.#listeners) l({ type: 'DELETED', jail });
  }

  get(name: string): LbJail | undefined {
    return this.#jails.get(name);
  }

  async *events(_selector: string, signal: AbortSignal): AsyncIterable<SourceEvent> {
    const queue: SourceEvent[] = [{ type: 'SYNC', jails: [...this.#jails.values()] }];
    let wake: (() => void) | undefined;
    const listener = (e: SourceEvent) => {
      queue.push(e);
      wake?.();
    };
    const onAbort = () => wake?.();
    this.#listeners.add(listener);
    signal.addEventListener('abort', onAbort);
    try {
      while (!signal.aborted) {
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      this.#listeners.delete(listener);
      signal.removeEventListener('abort', onAbort);
    }
  }
}
