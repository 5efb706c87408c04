// The dashboard's only way to the daemon: the API under /v1 (docs/api.md), with the bearer
// token the operator logged in with (kept in sessionStorage: gone with the tab). The watch
// stream is read with fetch, not EventSource, because EventSource cannot send the token.

import { SseParser } from '../../src/api/sse.ts';

export interface JailView {
  name: string;
  state: 'stopped' | 'starting' | 'running' | 'stopping';
  jid: number;
  labels: Record<string, string>;
  meta: string;
  env: string;
  revision: number;
  params: Record<string, string | number | boolean | string[]>;
  ready: boolean;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
  node?: string;
  /** The health check's verdict while running; null or absent without one. */
  health?: 'starting' | 'healthy' | 'unhealthy' | null;
  supervision?: { restarts: number; health?: { output?: string } } | null;
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';
  revision: number;
  jail?: JailView;
}

export interface BatchResult {
  ok: boolean;
  outcomes: { name: string; status: 'ok' | 'failed' | 'skipped'; message?: string; code?: string }[];
}

/** An error answer of the API: `{ code, message, param?, jail?, key? }` and its status. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly param: string | undefined;
  constructor(status: number, body: { code?: string; message?: string; param?: string }) {
    super(body.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body.code ?? 'JY_ERR_HTTP';
    this.param = body.param;
  }
}

const TOKEN_KEY = 'jailyard.token';

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = getToken();
  return { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra };
}

/** Listeners told when the daemon refuses the token (the login shows again). */
const unauthorized = new Set<() => void>();
export function onUnauthorized(listener: () => void): () => void {
  unauthorized.add(listener);
  return () => unauthorized.delete(listener);
}

async function fail(res: Response): Promise<never> {
  let body: { code?: string; message?: string; param?: string } = {};
  try {
    body = (await res.json()) as typeof body;
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  const e = new ApiError(res.status, body);
  if (res.status === 401) for (const l of unauthorized) l();
  throw e;
}

export async function request<T>(
  method: string,
  path: string,
  opts: { body?: unknown; ifMatch?: number; batch?: boolean } = {},
): Promise<{ data: T; etag: string | null }> {
  const extra: Record<string, string> = {};
  if (opts.body !== undefined) extra['content-type'] = 'application/json';
  if (opts.ifMatch !== undefined) extra['if-match'] = `"${opts.ifMatch}"`;
  const res = await fetch(path, {
    method,
    headers: headers(extra),
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  if (!res.ok) {
    // a batch that failed answers with its BatchResult and the first failure's status
    if (opts.batch && res.status !== 401) {
      const data = (await res.json().catch(() => undefined)) as T | undefined;
      if (data && typeof data === 'object' && 'outcomes' in data) return { data, etag: null };
      throw new ApiError(res.status, (data ?? {}) as { message?: string });
    }
    return fail(res);
  }
  return { data: (await res.json()) as T, etag: res.headers.get('etag') };
}

/**
 * The watch stream from `since` (or from now): yields each event, BOOKMARKs included, until
 * the stream ends or `signal` aborts. A 410 (the log no longer holds `since`) throws ApiError.
 */
export async function* watchStream(since: number | undefined, signal: AbortSignal): AsyncGenerator<WatchEvent> {
  const query = since === undefined ? '' : `&since=${since}`;
  const res = await fetch(`/v1/jails?watch=1${query}`, { headers: headers({ accept: 'text/event-stream' }), signal });
  if (!res.ok) await fail(res);
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const m of parser.push(value)) yield JSON.parse(m.data) as WatchEvent;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** The `data` of each event of an SSE stream (GET /v1/rollouts/watch), until it ends or
 * `signal` aborts. */
export async function* eventStream(path: string, signal: AbortSignal): AsyncGenerator<string> {
  const res = await fetch(path, { headers: headers({ accept: 'text/event-stream' }), signal });
  if (!res.ok) await fail(res);
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const m of parser.push(value)) yield m.data;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** A text answer read as it arrives (a jail's console log with follow=1 stays open). */
export async function* textStream(path: string, signal: AbortSignal): AsyncGenerator<string> {
  const res = await fetch(path, { headers: headers({ accept: 'text/plain' }), signal });
  if (!res.ok) await fail(res);
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
