// Stand-ins for jails in the load-balancer tests: tiny HTTP servers on loopback addresses
// (127.0.0.x) that answer their version, and a bounded load loop through HAProxy.

import { createServer, type Server } from 'node:http';
import { request, Agent } from 'undici';

export interface VersionServer {
  addr: string;
  port: number;
  version: string;
  /** Requests answered. */
  hits: number;
  /** When false, GET / answers 503 (fails HAProxy's check). */
  healthy: boolean;
  close(): Promise<void>;
}

export async function startVersionServer(addr: string, version: string, port = 0): Promise<VersionServer> {
  const s: VersionServer = { addr, port, version, hits: 0, healthy: true, close: async () => {} };
  const server: Server = createServer((_req, res) => {
    s.hits++;
    res.writeHead(s.healthy ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(`${version}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, addr, () => resolve());
  });
  const a = server.address();
  s.port = typeof a === 'object' && a ? a.port : port;
  s.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return s;
}

/** A port that was free a moment ago on `addr`. HAProxy binds with SO_REUSEPORT, so two
 * suites racing for one port would share it: each suite uses its own loopback address. */
export async function freePort(addr: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, addr, () => r()));
  const a = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  return typeof a === 'object' && a ? a.port : 0;
}

export interface LoadResult {
  ok: number;
  failed: number;
  /** Body → count (which versions answered). */
  versions: Record<string, number>;
  errors: string[];
}

/** Keeps `concurrency` keep-alive clients sending GET / until `stop()` or `maxMs` (bounded). */
export function runLoad(
  url: string,
  opts: { concurrency?: number; maxMs?: number } = {},
): { stop(): Promise<LoadResult>; result: LoadResult } {
  const result: LoadResult = { ok: 0, failed: 0, versions: {}, errors: [] };
  // the client drops idle connections well before HAProxy's keep-alive timeout (10 s), so a
  // request never races HAProxy closing an idle connection: that would be a client artefact
  const agent = new Agent({ connections: opts.concurrency ?? 4, keepAliveTimeout: 1000, keepAliveMaxTimeout: 1000 });
  let running = true;
  const deadline = Date.now() + (opts.maxMs ?? 30_000);
  const worker = async () => {
    while (running && Date.now() < deadline) {
      try {
        const r = await request(url, { dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 });
        const body = (await r.body.text()).trim();
        if (r.statusCode === 200) {
          result.ok++;
          result.versions[body] = (result.versions[body] ?? 0) + 1;
        } else {
          result.failed++;
          if (result.errors.length < 20) result.errors.push(`status ${r.statusCode}: ${body.slice(0, 80)}`);
        }
      } catch (e) {
        result.failed++;
        if (result.errors.length < 20) result.errors.push(String(e));
      }
      // bounded: a small pause keeps the loop from saturating loopback
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const workers = Array.from({ length: opts.concurrency ?? 4 }, worker);
  return {
    result,
    async stop() {
      running = false;
      await Promise.all(workers);
      await agent.close();
      return result;
    },
  };
}
