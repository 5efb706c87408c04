// The guest view (like Incus' /dev/incus): one unix socket per RUNNING jail, in the jail's
// guest folder (bind-mounted read-only into the jail at /run/jailyard). A socket answers for
// its own jail only, so which jail asks is decided by which socket it can reach: nothing in
// the request can name another jail. It serves the jail's env (never meta) and takes the
// jail's readiness signal.

import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { readMetaKey } from '../meta/ops.ts';
import type { Store } from '../store/types.ts';
import type { HubEvent, HubSubscriber, Subscription, WatchHub } from './hub.ts';

export const GUEST_SOCKET = 'guest.sock';

export interface GuestOptions {
  store: Store;
  hub: WatchHub;
  /** The jail's guest folder on the host. */
  dirOf(name: string): string;
  ready: Set<string>;
  /** A socket could not be made or removed (the jail keeps running without it). */
  onError?: (name: string, e: unknown) => void;
}

function reply(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export class GuestServer {
  readonly #opts: GuestOptions;
  readonly #servers = new Map<string, Server>();
  #sub: Subscription | undefined;

  constructor(opts: GuestOptions) {
    this.#opts = opts;
  }

  /** Socket path of a jail (on the host). */
  socketOf(name: string): string {
    return join(this.#opts.dirOf(name), GUEST_SOCKET);
  }

  async start(): Promise<void> {
    const subscriber: HubSubscriber = {
      event: (e: HubEvent) => {
        if (e.revision === undefined) return;
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
    await Promise.all([...this.#servers.keys()].map((name) => this.#sync(name, false)));
  }

  async #sync(name: string, wanted: boolean): Promise<void> {
    const has = this.#servers.has(name);
    try {
      if (wanted && !has) await this.#open(name);
      else if (!wanted && has) await this.#shut(name);
    } catch (e) {
      if (wanted) this.#servers.delete(name);
      this.#opts.onError?.(name, e);
    }
  }

  async #open(name: string): Promise<void> {
    const dir = this.#opts.dirOf(name);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chmodSync(dir, 0o755);
    const path = join(dir, GUEST_SOCKET);
    rmSync(path, { force: true });
    const server = createServer((req, res) => this.#handle(name, req, res));
    this.#servers.set(name, server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // The jail's root connects through a read-only bind: the socket itself must be writable.
    chmodSync(path, 0o666);
  }

  async #shut(name: string): Promise<void> {
    const server = this.#servers.get(name);
    this.#servers.delete(name);
    this.#opts.ready.delete(name);
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(join(this.#opts.dirOf(name), GUEST_SOCKET), { force: true });
  }

  #handle(name: string, req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    const jail = this.#opts.store.getJail(name);
    if (!jail) return reply(res, 404, 'no such jail\n');
    if (path === '/env' && req.method === 'GET') return reply(res, 200, jail.env);
    if (path.startsWith('/env/') && req.method === 'GET') {
      const key = decodeURIComponent(path.slice('/env/'.length));
      const value = key ? readMetaKey(jail.env, key) : undefined;
      return value === undefined ? reply(res, 404, `no env key "${key}"\n`) : reply(res, 200, value);
    }
    if (path === '/ready' && (req.method === 'PUT' || req.method === 'POST')) {
      req.resume();
      if (!this.#opts.ready.has(name)) {
        this.#opts.ready.add(name);
        this.#opts.hub.emitEphemeral(name);
      }
      return reply(res, 204, '');
    }
    if (path === '/env' || path.startsWith('/env/') || path === '/ready') return reply(res, 405, 'method not allowed\n');
    return reply(res, 404, 'not found: the guest view serves GET /env, GET /env/KEY, PUT /ready\n');
  }
}
