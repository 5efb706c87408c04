// The daemon's client: a JailService over HTTP (what `jailyard --host URL` uses, so remote
// verbs print exactly what local ones print) and `watch`, the resumable SSE reader the
// load-balancer controller consumes. URLs: unix:///path/to.sock or http(s)://host:port.

import { setTimeout as delay } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { ERROR_CODES, JailyardError, type ErrorCode, type ErrorPlace } from '../errors.ts';
import type { MetaOp } from '../meta/ops.ts';
import type { JailSpec } from '../conf/spec.ts';
import type { BatchOptions, BatchResult, JailService } from '../runtime/types.ts';
import type { EventType, JailChange, JailRecord, WriteOptions } from '../store/types.ts';
import { SseParser } from './sse.ts';
import type { JailView } from './view.ts';

export interface RemoteOptions {
  /** Bearer token (TCP listeners require one). */
  token?: string;
}

export interface Target {
  origin: string;
  dispatcher: Dispatcher;
  headers: Record<string, string>;
}

const targets = new Map<string, Dispatcher>();

export function targetOf(url: string, opts: RemoteOptions): Target {
  const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  if (url.startsWith('unix://')) {
    const socketPath = url.slice('unix://'.length);
    if (!socketPath.startsWith('/'))
      throw new JailyardError('JY_ERR_USAGE', `unix URL needs an absolute path: ${url}`, { param: '--host' });
    let dispatcher = targets.get(url);
    if (!dispatcher) targets.set(url, (dispatcher = new Agent({ connect: { socketPath } })));
    return { origin: 'http://localhost', dispatcher, headers };
  }
  if (/^https?:\/\//.test(url)) {
    let dispatcher = targets.get('tcp');
    if (!dispatcher) targets.set('tcp', (dispatcher = new Agent()));
    return { origin: url.replace(/\/+$/, ''), dispatcher, headers };
  }
  throw new JailyardError('JY_ERR_USAGE', `unsupported daemon URL "${url}" (unix:///path or http://host:port)`, {
    param: '--host',
  });
}

/** The server's JSON error as the same JailyardError the daemon threw. */
export function errorFrom(status: number, body: unknown): JailyardError {
  const b = (body ?? {}) as { code?: string; message?: string } & ErrorPlace;
  const { code, message, ...place } = b;
  const known = typeof code === 'string' && code in ERROR_CODES;
  return new JailyardError(known ? (code as ErrorCode) : 'JY_ERR_INTERNAL', message ?? `HTTP ${status}`, place);
}

/** An answer's body as JSON (undefined when empty); a body that is not JSON becomes an
 * internal error's message, so errorFrom still gives the daemon's words. */
export async function bodyJson(res: Dispatcher.ResponseData): Promise<unknown> {
  const text = await res.body.text();
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return { code: 'JY_ERR_INTERNAL', message: text };
  }
}

/** The answer's JSON, or the daemon's error (as it threw it) for a status of 400 or more. */
export async function answerJson<T>(res: Dispatcher.ResponseData): Promise<T> {
  const body = await bodyJson(res);
  if (res.statusCode >= 400) throw errorFrom(res.statusCode, body);
  return body as T;
}

export function unreachable(url: string, e: unknown): JailyardError {
  const reason = e instanceof Error ? ((e as NodeJS.ErrnoException).code ?? e.message) : String(e);
  return new JailyardError(
    'JY_ERR_DAEMON_UNREACHABLE',
    `cannot reach the daemon at ${url}: ${reason}`,
    { step: 'connect' },
    { cause: e },
  );
}

export function fromView(v: JailView): JailRecord {
  return {
    name: v.name,
    jid: v.jid,
    state: v.state,
    params: v.params,
    meta: v.meta,
    env: v.env,
    revision: v.revision,
    ready: v.ready === true,
    runtime: null,
    lastError: v.lastError,
    createdAt: v.createdAt,
    updatedAt: v.updatedAt,
    ...(v.node !== undefined ? { node: v.node } : {}),
    ...(v.supervision ? { supervision: v.supervision } : {}),
  };
}

export function createRemoteService(url: string, opts: RemoteOptions = {}): JailService {
  const t = targetOf(url, opts);

  async function call(
    method: Dispatcher.HttpMethod,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; json: unknown }> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(t.origin + path, {
        method,
        dispatcher: t.dispatcher,
        headers: { ...t.headers, ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (e) {
      throw unreachable(url, e);
    }
    return { status: res.statusCode, json: await bodyJson(res) };
  }

  async function ok<T>(p: Promise<{ status: number; json: unknown }>): Promise<T> {
    const { status, json } = await p;
    if (status >= 400) throw errorFrom(status, json);
    return json as T;
  }

  async function batch(
    verb: 'start' | 'stop' | 'restart' | 'remove',
    names: string[],
    o: BatchOptions = {},
  ): Promise<BatchResult> {
    // the AbortSignal is the caller's own: the daemon's batch runs to its end, and the caller
    // undoes what it no longer wants (a CLI stopped by a signal stops what it started)
    // the daemon's progress lines come with its answer, handed on before the outcomes
    const { signal: _signal, progress, hookOutput: _hookOutput, ...body } = o;
    const { status, json } = await call('POST', `/v1/batch/${verb}`, {
      names,
      ...body,
      ...(progress ? { progress: true } : {}),
    });
    // A failed batch still answers with its outcomes.
    if (json && typeof json === 'object' && 'outcomes' in json) {
      const { progress: lines, ...result } = json as BatchResult & { progress?: { jail: string; text: string }[] };
      for (const p of lines ?? []) progress?.(p.jail, p.text);
      return result;
    }
    throw errorFrom(status, json);
  }

  const enc = encodeURIComponent;
  return {
    async list(filter) {
      const q = filter?.selector !== undefined ? `?labelSelector=${enc(filter.selector)}` : '';
      const body = await ok<{ items: JailView[] }>(call('GET', `/v1/jails${q}`));
      return body.items.map(fromView);
    },
    async get(name) {
      return fromView(await ok<JailView>(call('GET', `/v1/jails/${enc(name)}`)));
    },
    async create(input: { spec: JailSpec; meta?: MetaOp[]; env?: MetaOp[] }) {
      const { name, ...params } = input.spec.params;
      void name;
      const body = {
        name: input.spec.name,
        params,
        ...(input.meta ? { meta: input.meta } : {}),
        ...(input.env ? { env: input.env } : {}),
      };
      return fromView(await ok<JailView>(call('POST', '/v1/jails', body)));
    },
    async modify(name: string, change: JailChange, o?: WriteOptions) {
      const headers: Record<string, string> = o?.ifRevision !== undefined ? { 'if-match': `"${o.ifRevision}"` } : {};
      return fromView(await ok<JailView>(call('PATCH', `/v1/jails/${enc(name)}`, change, headers)));
    },
    start: (names, o) => batch('start', names, o),
    stop: (names, o) => batch('stop', names, o),
    restart: (names, o) => batch('restart', names, o),
    remove: (names, o) => batch('remove', names, o),
  };
}

export interface WatchEvent {
  type: EventType | 'BOOKMARK';
  /** Global revision of the event (readiness changes included: they are in the log). */
  revision: number;
  /** Absent on bookmarks. */
  jail?: JailView;
}

export interface WatchOptions extends RemoteOptions {
  /** Kubernetes label selector. */
  selector?: string;
  /** Resume after this revision (e.g. the `revision` of a list). Without it: from now. */
  since?: number;
  /** Without since: first the current matching jails as ADDED. */
  initial?: boolean;
  /** Also yield BOOKMARK events (default false). */
  bookmarks?: boolean;
  /** Ends the watch. */
  signal?: AbortSignal;
  /** First reconnect delay in ms, doubled up to 5 s (default 100). */
  retryMs?: number;
}

/**
 * Watches jails: yields events in revision order, reconnecting with the last seen revision
 * when the connection drops (daemon restart), so nothing is missed or repeated. Throws
 * JY_ERR_REVISION_GONE when the daemon no longer has the events after that revision: the
 * caller lists again and watches from the list's revision.
 */
export async function* watch(url: string, opts: WatchOptions = {}): AsyncGenerator<WatchEvent> {
  const t = targetOf(url, opts);
  let since = opts.since;
  let initial = opts.initial ?? false;
  let delay = opts.retryMs ?? 100;
  while (!opts.signal?.aborted) {
    const q = new URLSearchParams({ watch: '1' });
    if (opts.selector) q.set('labelSelector', opts.selector);
    if (since !== undefined) q.set('since', String(since));
    else if (initial) q.set('initial', '1');
    const abort = new AbortController();
    const onAbort = () => abort.abort();
    opts.signal?.addEventListener('abort', onAbort);
    try {
      let res: Dispatcher.ResponseData;
      try {
        res = await request(`${t.origin}/v1/jails?${q}`, {
          dispatcher: t.dispatcher,
          headers: { ...t.headers, accept: 'text/event-stream' },
          signal: abort.signal,
        });
      } catch {
        // daemon down or restarting: try again from `since`
        if (opts.signal?.aborted) return;
        await sleep(delay, opts.signal);
        delay = Math.min(delay * 2, 5000);
        continue;
      }
      if (res.statusCode !== 200) {
        const err = errorFrom(res.statusCode, await bodyJson(res));
        if (res.statusCode < 500) throw err;
        await sleep(delay, opts.signal);
        delay = Math.min(delay * 2, 5000);
        continue;
      }
      delay = opts.retryMs ?? 100;
      const parser = new SseParser();
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body) {
          for (const m of parser.push(decoder.decode(chunk as Buffer, { stream: true }))) {
            if (m.id !== undefined && /^\d+$/.test(m.id)) {
              since = Number(m.id);
              // From here on, resuming replaces the initial list.
              initial = false;
            }
            if (m.event === 'BOOKMARK' && !opts.bookmarks) continue;
            const data = JSON.parse(m.data) as WatchEvent;
            yield data.jail
              ? { type: data.type, revision: data.revision, jail: data.jail }
              : { type: data.type, revision: data.revision };
          }
        }
      } catch (e) {
        if (opts.signal?.aborted) return;
        void e; // connection dropped: reconnect from `since`
      }
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      abort.abort();
    }
    if (opts.signal?.aborted) return;
    await sleep(delay, opts.signal);
  }
}

/** Waits `ms`, or less when `signal` aborts (resolves either way: the caller checks it). */
const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  delay(ms, undefined, { signal }).catch(() => undefined);

export interface LogsOptions extends RemoteOptions {
  /** Only what was written at or after this time (ms since the epoch). */
  sinceMs?: number;
  /** Only the last N lines. */
  lines?: number;
  /** Keep the response open and go on with what the jail writes (tail -F). */
  follow?: boolean;
  signal?: AbortSignal;
}

/** A jail's console log from the daemon (GET /v1/jails/:name/logs): its bytes as they come.
 * An unknown jail, a bad --since, a jail on another node: the daemon's error, thrown before
 * the first chunk. */
export async function* logs(url: string, name: string, opts: LogsOptions = {}): AsyncGenerator<Buffer> {
  const t = targetOf(url, opts);
  const q = new URLSearchParams();
  if (opts.sinceMs !== undefined) q.set('since', `@${opts.sinceMs / 1000}`);
  if (opts.lines !== undefined) q.set('lines', String(opts.lines));
  if (opts.follow) q.set('follow', '1');
  let res: Dispatcher.ResponseData;
  try {
    res = await request(`${t.origin}/v1/jails/${encodeURIComponent(name)}/logs${q.size ? `?${q}` : ''}`, {
      dispatcher: t.dispatcher,
      headers: t.headers,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (e) {
    if (opts.signal?.aborted) return;
    throw unreachable(url, e);
  }
  if (res.statusCode !== 200) throw errorFrom(res.statusCode, await bodyJson(res));
  try {
    for await (const chunk of res.body) yield chunk as Buffer;
  } catch (e) {
    if (opts.signal?.aborted) return;
    throw unreachable(url, e);
  }
}

/** One GET of the daemon's API as JSON (what a verb that only reads a resource of its own
 * needs, e.g. `jailyard ports` and GET /v1/ports); an error answer throws the daemon's error. */
export async function getJson<T>(url: string, path: string, opts: RemoteOptions = {}): Promise<T> {
  const t = targetOf(url, opts);
  let res: Dispatcher.ResponseData;
  try {
    res = await request(t.origin + path, { method: 'GET', dispatcher: t.dispatcher, headers: t.headers });
  } catch (e) {
    throw unreachable(url, e);
  }
  return answerJson<T>(res);
}
