// Runs the app on its listeners: a unix socket (mode 0600: the file mode is the
// authorization) and, optionally, TCP where every request needs the bearer token. Both are
// capped and time out idle clients (limits.ts); on TCP, a connection is also capped per
// client address and closed when it has not sent a request with the right token in
// authTimeoutMs, and when full, the oldest such connection makes room for a new one.

import { chmodSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { JailyardError } from '../errors.ts';
import { buildApp, type AppOptions } from './app.ts';
import { type HostTools, hostToolRoutes } from './host-tools.ts';
import { apiLimits, capConnections, guardHandler, serverOptions } from './limits.ts';

export interface DaemonOptions extends Omit<AppOptions, 'auth'> {
  socketPath: string;
  /** host:port for an additional TCP listener (requires token). */
  listen?: { host: string; port: number };
  token?: string;
  /** The host's jail(8), jls(8) and `jailyard ls` on the unix socket (host-tools.ts). */
  hostTools?: HostTools;
}

export interface Daemon {
  app: FastifyInstance;
  socketPath: string;
  /** The TCP address actually bound (port 0 → the chosen port). */
  tcp?: { host: string; port: number };
  close(): Promise<void>;
}

/** "HOST:PORT", "[::1]:PORT" or ":PORT" (loopback). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  if (!m) throw new JailyardError('JY_ERR_USAGE', `--listen must be HOST:PORT, got "${text}"`, { param: '--listen' });
  const port = Number(m[3]);
  if (port > 65535) throw new JailyardError('JY_ERR_USAGE', `port ${port} out of range`, { param: '--listen' });
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

function removeStaleSocket(path: string): void {
  try {
    if (statSync(path).isSocket()) rmSync(path);
  } catch {
    // absent
  }
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  if (opts.listen && !opts.token) {
    throw new JailyardError('JY_ERR_USAGE', 'a TCP listener needs a token (--token-file)', { param: '--token-file' });
  }
  const limits = apiLimits(opts.limits);
  // Sockets accepted by the TCP listener: those must carry the token. Until one request
  // did, the socket is in `unproven` with the timer that closes it.
  const tcpSockets = new WeakSet<Socket>();
  const unproven = new Map<Socket, NodeJS.Timeout>();
  let tcpServer: Server | undefined;
  // a valid token arrived, or the socket closed: no timer any more
  const proven = (s: Socket): void => {
    const timer = unproven.get(s);
    if (timer === undefined) return;
    clearTimeout(timer);
    unproven.delete(s);
  };
  const app = buildApp({
    ...opts,
    limits,
    ...(opts.token
      ? { auth: { token: opts.token, required: (s: Socket) => tcpSockets.has(s), authorized: proven } }
      : {}),
  });
  if (opts.hostTools) app.register(hostToolRoutes, { tools: opts.hostTools });
  mkdirSync(dirname(opts.socketPath), { recursive: true });
  removeStaleSocket(opts.socketPath);
  // Create the socket with 0600 from the start (no window where others may connect).
  const oldMask = process.umask(0o177);
  try {
    await app.listen({ path: opts.socketPath });
  } finally {
    process.umask(oldMask);
  }
  chmodSync(opts.socketPath, 0o600);

  let tcp: Daemon['tcp'];
  if (opts.listen) {
    const server = createServer(
      serverOptions(limits),
      guardHandler(
        (req, res) => app.routing(req, res),
        (e) => app.log.error({ err: e }, 'request handler failed'),
      ),
    );
    tcpServer = server;
    capConnections(server, {
      max: limits.maxConnections,
      perClient: limits.maxConnectionsPerClient,
      keyOf: (s) => s.remoteAddress ?? '',
      evictable: (s) => unproven.has(s),
    });
    server.on('connection', (s: Socket) => {
      tcpSockets.add(s);
      // a refused connection is already destroyed: no timer for it
      if (s.destroyed) return;
      const timer = setTimeout(() => {
        unproven.delete(s);
        s.destroy();
      }, limits.authTimeoutMs);
      timer.unref();
      unproven.set(s, timer);
      s.once('close', () => proven(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.listen!.port, opts.listen!.host, () => resolve());
    });
    const addr = server.address();
    tcp = typeof addr === 'object' && addr ? { host: addr.address, port: addr.port } : opts.listen;
  }

  // the store's WAL is checkpointed off the write path while the daemon runs
  const checkpointer = opts.store.checkpointInBackground?.();

  let closing: Promise<void> | undefined;
  return {
    app,
    socketPath: opts.socketPath,
    ...(tcp ? { tcp } : {}),
    close() {
      closing ??= (async () => {
        // app.close() ends every watch stream first (on both listeners), then the unix server.
        await app.close();
        if (tcpServer) {
          const s = tcpServer;
          s.closeAllConnections();
          await new Promise<void>((resolve) => s.close(() => resolve()));
        }
        removeStaleSocket(opts.socketPath);
        await checkpointer?.stop();
      })();
      return closing;
    },
  };
}
