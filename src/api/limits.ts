// What keeps the daemon alive under hostile or merely many clients: connection caps (per
// listener, per TCP client address, per guest socket), short header/request/idle timeouts,
// a token bucket per jail for the store writes its guest socket may cause (readiness), and a
// guard around every raw request handler so one bad request costs one 400, never the process
// (the API, the watch streams and every jail's guest socket live in it).

import type { IncomingMessage, ServerOptions, ServerResponse } from 'node:http';
import type { Server, Socket } from 'node:net';
import { JailyardError } from '../errors.ts';
import { loadDefaults } from '../defaults.ts';

export interface ApiLimits {
  /** Open connections per listener (the TCP one, the unix one); watch streams count. */
  maxConnections: number;
  /** Open connections per remote address on the TCP listener. */
  maxConnectionsPerClient: number;
  /** Open connections per guest socket (one per running jail). */
  guestMaxConnections: number;
  /** Readiness changes a jail may store at once through its guest socket (the bucket's size). */
  guestReadyBurst: number;
  /** Once the burst is spent: one stored readiness change per this many milliseconds. */
  guestReadyIntervalMs: number;
  /** Time to receive a request's headers, from the connection's start or the previous response. */
  headersTimeoutMs: number;
  /** Time to receive a whole request (headers and body). Responses (watch streams) are not limited. */
  requestTimeoutMs: number;
  /** Idle time allowed between two requests on a kept-alive connection. */
  keepAliveTimeoutMs: number;
  /** TCP: a connection that has not sent one request with the right token by then is closed. */
  authTimeoutMs: number;
}

export const LIMIT_NAMES = [
  'maxConnections',
  'maxConnectionsPerClient',
  'guestMaxConnections',
  'guestReadyBurst',
  'guestReadyIntervalMs',
  'headersTimeoutMs',
  'requestTimeoutMs',
  'keepAliveTimeoutMs',
  'authTimeoutMs',
] as const satisfies ReadonlyArray<keyof ApiLimits>;

/** The limits of the defaults file's "api" section, with `overrides` over them. Every value
 * must be a positive integer (JY_ERR_USAGE naming the setting). */
export function apiLimits(overrides: Partial<ApiLimits> = {}): ApiLimits {
  const base: Partial<ApiLimits> = loadDefaults().api ?? {};
  const out = {} as ApiLimits;
  for (const name of LIMIT_NAMES) {
    const v = overrides[name] ?? base[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new JailyardError(
        'JY_ERR_USAGE',
        `api limit ${name} must be a positive integer, got ${JSON.stringify(v)}`,
        { param: `api.${name}` },
      );
    }
    out[name] = v;
  }
  if (out.requestTimeoutMs < out.headersTimeoutMs) {
    throw new JailyardError('JY_ERR_USAGE', 'api limit requestTimeoutMs must be at least headersTimeoutMs', {
      param: 'api.requestTimeoutMs',
    });
  }
  return out;
}

/** node's http server options for these limits. The check interval decides how late an expired
 * connection is noticed (node's default is 30 s, which made idle sockets live 90-120 s). */
export function serverOptions(limits: ApiLimits): ServerOptions {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
  };
}

export interface CapOptions {
  /** Connections at once on this server. */
  max: number;
  /** Connections at once per key (keyOf); without keyOf no per-client cap. */
  perClient?: number;
  keyOf?: (socket: Socket) => string | undefined;
  /** When the server is full: a connection that may be closed to make room (the oldest
   * unauthenticated one), else the new connection is refused. */
  evictable?: (socket: Socket) => boolean;
}

/**
 * Caps a server's open connections. A refused connection is destroyed at once (it costs its
 * descriptor for no longer than the accept). Must be called before the server listens.
 */
export function capConnections(server: Server, opts: CapOptions): void {
  // open connections in insertion order (= age, for eviction), each with its own release
  const open = new Map<Socket, () => void>();
  const perKey = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const key = opts.keyOf?.(socket);
    const overClient = () =>
      opts.perClient !== undefined && key !== undefined && (perKey.get(key) ?? 0) >= opts.perClient;
    // a socket destroyed (a timeout, an eviction) frees its place at once: its 'close' comes
    // a loop turn later, after its peer may already have seen it end and connected again
    if (open.size >= opts.max || overClient()) for (const [s, release] of open) if (s.destroyed) release();
    if (overClient()) {
      socket.destroy();
      return;
    }
    if (open.size >= opts.max) {
      const victim = opts.evictable ? [...open.keys()].find((s) => opts.evictable!(s)) : undefined;
      if (!victim) {
        socket.destroy();
        return;
      }
      open.get(victim)!();
      victim.destroy();
    }
    if (key !== undefined) perKey.set(key, (perKey.get(key) ?? 0) + 1);
    const release = (): void => {
      if (!open.delete(socket) || key === undefined) return;
      const n = (perKey.get(key) ?? 1) - 1;
      if (n > 0) perKey.set(key, n);
      else perKey.delete(key);
    };
    open.set(socket, release);
    socket.once('close', release);
  });
}

function plainReply(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    connection: 'close',
  });
  res.end(text);
}

/**
 * A raw request handler that cannot take the process down: a synchronous throw or a rejected
 * promise ends that one request (400 for a malformed request such as a bad percent-escape,
 * else 500) and is reported to `onError`; the server keeps serving.
 */
export function guardHandler(
  handler: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>,
  onError: (e: unknown, req: IncomingMessage) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  const fail = (e: unknown, req: IncomingMessage, res: ServerResponse): void => {
    try {
      const bad = e instanceof URIError || (e instanceof JailyardError && e.httpStatus < 500);
      if (!bad) onError(e, req);
      plainReply(res, bad ? 400 : 500, bad ? 'bad request\n' : 'internal error\n');
    } catch {
      res.destroy();
    }
  };
  return (req, res) => {
    try {
      const r = handler(req, res);
      if (r && typeof (r as Promise<void>).catch === 'function')
        (r as Promise<void>).catch((e: unknown) => fail(e, req, res));
    } catch (e) {
      fail(e, req, res);
    }
  };
}

/**
 * A token bucket: `burst` tokens at first, one more every `intervalMs` (never above
 * `burst`). Bounds how often something may happen: at most burst + t / intervalMs times in
 * any t milliseconds. `now` is passed in so the arithmetic is tested without a clock.
 */
export class TokenBucket {
  readonly #burst: number;
  readonly #intervalMs: number;
  #tokens: number;
  #at: number;

  constructor(burst: number, intervalMs: number, now: number) {
    this.#burst = burst;
    this.#intervalMs = intervalMs;
    this.#tokens = burst;
    this.#at = now;
  }

  #refill(now: number): void {
    if (now <= this.#at) return;
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) / this.#intervalMs);
    this.#at = now;
  }

  /** Takes a token when one is there. */
  take(now: number): boolean {
    this.#refill(now);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Milliseconds from `now` until a token is there (0: one is). */
  waitMs(now: number): number {
    this.#refill(now);
    return this.#tokens >= 1 ? 0 : Math.ceil((1 - this.#tokens) * this.#intervalMs);
  }

  /** Whether the bucket is full again (its owner may forget it: a new one is the same). */
  full(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= this.#burst;
  }
}
