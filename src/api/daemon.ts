// Runs the app on its listeners: a unix socket (mode 0600: the file mode is the
// authorization) and, optionally, TCP where every request needs the bearer token.

import { chmodSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { JailyardError } from '../errors.ts';
import { buildApp, type AppOptions } from './app.ts';

export interface DaemonOptions extends Omit<AppOptions, 'auth'> {
  socketPath: string;
  /** host:port for an additional TCP listener (requires token). */
  listen?: { host: string; port: number };
  token?: string;
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
  // Sockets accepted by the TCP listener: those must carry the token.
  const tcpSockets = new WeakSet<Socket>();
  let tcpServer: Server | undefined;
  const app = buildApp({
    ...opts,
    ...(opts.token ? { auth: { token: opts.token, required: (s: Socket) => tcpSockets.has(s) } } : {}),
  });
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
    const server = createServer((req, res) => app.routing(req, res));
    tcpServer = server;
    server.on('connection', (s) => tcpSockets.add(s));
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
