// The guest view (like Incus' /dev/incus): one unix socket per RUNNING jail, in the jail's
// guest folder, bound read-only at /run/jailyard inside the jail's own mount namespace; on
// the host it lies in the jail's 0700 state folder, so only the jail and host root reach
// it. A socket answers for its own jail only, so which jail asks is decided by which socket
// it can reach: nothing in the request can name another jail. It serves the jail's env
// (never meta) and takes the jail's readiness signal, which the store keeps (a daemon
// restart does not lose it; a stop or restart of the jail clears it); how often it may
// change is bounded per tree of jails (#setReady). Only the jail's root may change it or use
// the in-jail jail(8) (guest-tools.ts changesSomething). With the tools
// configured it also answers the jail(8) and jls(8) the jail runs inside itself
// (POST /tools/jail, /tools/jls: guest-tools.ts), for that jail and its descendants only.

import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { ERROR_CODES, isJailyardError } from '../errors.ts';
import { readMetaKey } from '../meta/ops.ts';
import type { Store } from '../store/types.ts';
import { changesSomething, listenJailSocket, requireJailRoot, type ToolContext, ToolsEndpoint } from './guest-tools.ts';
import type { HubEvent, HubSubscriber, Subscription, WatchHub } from './hub.ts';
import { capConnections, guardHandler, TokenBucket } from './limits.ts';
import { type PeerCheck, peerInJail } from './peer.ts';

export const GUEST_SOCKET = 'guest.sock';

export interface GuestOptions {
  store: Store;
  hub: WatchHub;
  /** The jail's guest folder on the host. */
  dirOf(name: string): string;
  /** A socket could not be made or removed (the jail keeps running without it). */
  onError?: (name: string, e: unknown) => void;
  /** Open connections per socket (default 16): one jail cannot take the daemon's descriptors. */
  maxConnections?: number;
  /** Timeouts for each socket's server (limits.ts serverOptions). */
  serverOptions?: ServerOptions;
  /** Tells who connected: a jail whose namespaces are known serves only its own processes. */
  peers?: PeerCheck;
  /** The in-jail jail(8) and jls(8): the front and the host's service they act through. */
  tools?: ToolContext;
  /** Readiness changes stored per tree of jails (a top-level jail and its children): `burst`
   * at once, then one per `intervalMs` (default 5 and 500 ms: limits.ts guestReadyBurst,
   * guestReadyIntervalMs); more are coalesced. */
  ready?: { burst: number; intervalMs: number };
}

/** A jail's readiness budget, and the change it asked for that waits for the budget. */
interface ReadyBudget {
  bucket: TokenBucket;
  /** The latest readiness asked for while over the limit, stored when the timer fires; the
   * socket it came through (a socket shut since belonged to a life of the jail that ended). */
  pending?: { ready: boolean; timer: NodeJS.Timeout; server: Server | undefined };
}

const DEFAULT_READY_LIMIT = { burst: 5, intervalMs: 500 };

function reply(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export class GuestServer {
  readonly #opts: GuestOptions;
  readonly #servers = new Map<string, Server>();
  /** The last queued open/shut of each jail's socket (see #sync). */
  readonly #queued = new Map<string, Promise<void>>();
  readonly #tools: ToolsEndpoint | undefined;
  /** Per jail that changed its readiness lately (see #setReady). */
  readonly #ready = new Map<string, ReadyBudget>();
  /** The token bucket of each tree of jails (a top-level jail and its descendants): a
   * jail's children have sockets of their own, and with a bucket each a jail could change
   * readiness (1 + children) times as often. */
  readonly #treeBuckets = new Map<string, TokenBucket>();
  #sub: Subscription | undefined;

  constructor(opts: GuestOptions) {
    this.#opts = opts;
    this.#tools = opts.tools ? new ToolsEndpoint(opts.tools) : undefined;
  }

  /** Socket path of a jail (on the host). */
  socketOf(name: string): string {
    return join(this.#opts.dirOf(name), GUEST_SOCKET);
  }

  async start(): Promise<void> {
    const subscriber: HubSubscriber = {
      event: (e: HubEvent) => {
        void this.#sync(e.name, e.type !== 'DELETED' && e.jail.state === 'running');
      },
      reset: () => {
        void this.start();
      },
    };
    this.#sub?.unsubscribe();
    this.#sub = this.#opts.hub.subscribe(undefined, subscriber);
    const running = [...this.#opts.hub.states().values()].filter((j) => j.state === 'running');
    await Promise.all(running.map((j) => this.#sync(j.name, true)));
  }

  async close(): Promise<void> {
    this.#sub?.unsubscribe();
    this.#sub = undefined;
    const names = new Set([...this.#servers.keys(), ...this.#queued.keys()]);
    await Promise.all([...names].map((name) => this.#sync(name, false)));
  }

  /** One open or shut at a time per jail, in event order: a restart's open must not overlap
   * its own shut, whose late unlink would remove the new socket (leaving a server nobody
   * can reach nor close). Never rejects. */
  #sync(name: string, wanted: boolean): Promise<void> {
    const next = (this.#queued.get(name) ?? Promise.resolve()).then(() => this.#apply(name, wanted));
    this.#queued.set(name, next);
    void next.then(() => {
      if (this.#queued.get(name) === next) this.#queued.delete(name);
    });
    return next;
  }

  async #apply(name: string, wanted: boolean): Promise<void> {
    const has = this.#servers.has(name);
    try {
      if (wanted && !has) await this.#open(name);
      else if (!wanted && has) await this.#shut(name);
    } catch (e) {
      if (wanted) {
        // a half-made socket: stop listening so nothing is left behind
        this.#servers.get(name)?.close();
        this.#servers.delete(name);
      }
      this.#opts.onError?.(name, e);
    }
  }

  async #open(name: string): Promise<void> {
    const dir = this.#opts.dirOf(name);
    // Parents it has to make are the host's own (no way in for local users); the socket's
    // folder is 0755 because the jail reaches it through its bind.
    mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chmodSync(dir, 0o755);
    const path = join(dir, GUEST_SOCKET);
    rmSync(path, { force: true });
    // The jail is the client: whatever it sends costs it one 400, never the daemon.
    const handler = guardHandler(
      (req, res) => this.#handle(name, req, res),
      (e) => this.#opts.onError?.(name, e),
    );
    const server = createServer(this.#opts.serverOptions ?? {}, handler);
    capConnections(server, { max: this.#opts.maxConnections ?? 16 });
    this.#servers.set(name, server);
    await listenJailSocket(server, path);
  }

  async #shut(name: string): Promise<void> {
    const server = this.#servers.get(name);
    this.#servers.delete(name);
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(join(this.#opts.dirOf(name), GUEST_SOCKET), { force: true });
  }

  async #handle(name: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    let jail = this.#opts.store.getJail(name);
    if (!jail) return reply(res, 404, 'no such jail\n');
    // The path is reachable only inside the jail's mount namespace, unless a view of the
    // host's tree (a basejail of the live root) shows the state folder to another jail:
    // then which socket a process reaches no longer says which jail it is in.
    const check = peerInJail(this.#opts.peers, req.socket, jail.runtime?.create?.nsIds);
    if (check !== true) {
      const inside = await check;
      if (inside === undefined) return;
      if (!inside) {
        res.setHeader('connection', 'close');
        return reply(res, 403, 'this socket serves the processes of its own jail only\n');
      }
      // as it is now, after the wait
      jail = this.#opts.store.getJail(name);
      if (!jail) return reply(res, 404, 'no such jail\n');
    }
    if (changesSomething(path, req.method)) {
      const root = requireJailRoot(this.#opts.peers, req, res, jail.runtime?.create);
      if (root !== true) {
        if (!(await root)) return;
        jail = this.#opts.store.getJail(name);
        if (!jail) return reply(res, 404, 'no such jail\n');
      }
    }
    if (ToolsEndpoint.routes(path)) {
      if (this.#tools) return this.#tools.handle(name, req, res);
      req.resume();
      return reply(res, 404, 'not found: this daemon serves no in-jail tools\n');
    }
    if (path === '/env' && req.method === 'GET') return reply(res, 200, jail.env);
    if (path.startsWith('/env/') && req.method === 'GET') {
      let key: string;
      try {
        key = decodeURIComponent(path.slice('/env/'.length));
      } catch {
        return reply(res, 400, 'malformed percent-escape in the key\n');
      }
      const value = key ? readMetaKey(jail.env, key) : undefined;
      return value === undefined ? reply(res, 404, `no env key "${key}"\n`) : reply(res, 200, value);
    }
    if (path === '/ready' && (req.method === 'PUT' || req.method === 'POST' || req.method === 'DELETE')) {
      req.resume();
      return this.#setReady(name, req.method !== 'DELETE', res);
    }
    if (path === '/env' || path.startsWith('/env/') || path === '/ready')
      return reply(res, 405, 'method not allowed\n');
    return reply(
      res,
      404,
      'not found: the guest view serves GET /env, GET /env/KEY, PUT /ready, DELETE /ready, POST /tools/jail, POST /tools/jls\n',
    );
  }

  /**
   * Readiness goes to the store: a change is one MODIFIED event with a revision, which the
   * hub is told to read at once (watchers, the load balancer). Each change is a store write
   * and an event in the bounded watch history, so a jail toggling it in a loop would grow the
   * store and push other jails' events out of the history: per tree of jails (a top-level
   * jail and the children it made), `ready.burst` changes
   * are stored at once and then one per `ready.intervalMs` (a token bucket). A change asked
   * for beyond that is not refused but coalesced: 202, and the latest state asked for is
   * stored when the next token is due (at most intervalMs later), so the load balancer still
   * sees the jail's final word promptly and a jail's health script need not retry. A request
   * that changes nothing (the stored state, nothing waiting) is 204 without a write.
   */
  #setReady(name: string, ready: boolean, res: ServerResponse): void {
    const limit = this.#opts.ready ?? DEFAULT_READY_LIMIT;
    const now = Date.now();
    let budget = this.#ready.get(name);
    if (budget?.pending) {
      // the timer stores whatever was asked last
      budget.pending.ready = ready;
      reply(res, 202, this.#coalesced(limit));
      return;
    }
    const jail = this.#opts.store.getJail(name);
    if (!jail || jail.ready === ready) {
      reply(res, jail ? 204 : 404, jail ? '' : 'no such jail\n');
      return;
    }
    if (!budget) {
      // a full bucket with nothing waiting is the same as a new one: forgotten, so the map
      // holds only jails that changed their readiness lately
      for (const [n, b] of this.#ready) if (!b.pending && b.bucket.full(now)) this.#ready.delete(n);
      for (const [t, b] of this.#treeBuckets) if (b.full(now)) this.#treeBuckets.delete(t);
      const tree = name.split('.')[0]!;
      let bucket = this.#treeBuckets.get(tree);
      if (!bucket) {
        bucket = new TokenBucket(limit.burst, limit.intervalMs, now);
        this.#treeBuckets.set(tree, bucket);
      }
      budget = { bucket };
      this.#ready.set(name, budget);
    }
    // a jail that is not running is refused by the store at once (409), over the limit or not
    if (jail.state !== 'running' || budget.bucket.take(now)) {
      if (this.#storeReady(name, ready, res)) reply(res, 204, '');
      return;
    }
    const wait = budget.bucket.waitMs(now);
    const b = budget;
    const timer = setTimeout(() => this.#flushReady(name, b), wait);
    timer.unref();
    b.pending = { ready, timer, server: this.#servers.get(name) };
    reply(res, 202, this.#coalesced(limit));
  }

  #coalesced(limit: { burst: number; intervalMs: number }): string {
    return `readiness changes are limited to ${limit.burst} at once, then one per ${limit.intervalMs} ms: the latest asked for is stored within ${limit.intervalMs} ms\n`;
  }

  /** Stores the readiness a jail asked for while over its limit (see #setReady). */
  #flushReady(name: string, budget: ReadyBudget): void {
    const pending = budget.pending;
    if (!pending) return;
    const now = Date.now();
    // the socket was shut since (the jail stopped or restarted, or the daemon closes): the
    // wish was made in a life of the jail that ended, and a new life starts not ready
    if (this.#servers.get(name) !== pending.server || this.#ready.get(name) !== budget) {
      budget.pending = undefined;
      return;
    }
    const wait = budget.bucket.waitMs(now);
    if (wait > 0) {
      pending.timer = setTimeout(() => this.#flushReady(name, budget), wait);
      pending.timer.unref();
      return;
    }
    budget.pending = undefined;
    const jail = this.#opts.store.getJail(name);
    if (!jail || jail.ready === pending.ready) return;
    budget.bucket.take(now);
    this.#storeReady(name, pending.ready);
  }

  /** One readiness write; with `res`, a failure is answered there. Whether it was stored. */
  #storeReady(name: string, ready: boolean, res?: ServerResponse): boolean {
    try {
      this.#opts.store.setReady(name, ready);
      this.#opts.hub.notify();
      return true;
    } catch (e) {
      // e.g. the jail is stopping while it still reaches its socket
      if (isJailyardError(e)) {
        if (res) reply(res, ERROR_CODES[e.code], `${e.message}\n`);
        return false;
      }
      this.#opts.onError?.(name, e);
      if (res) reply(res, 500, 'internal error\n');
      return false;
    }
  }
}
