// jailyard nodes — the cluster's live nodes (docs/cli.md#nodes, docs/cluster.md): asks the
// API (GET /v1/nodes) of the daemon named by --host, or of the daemon serving this state
// folder (its socket, as `serve` places it). On one host the list is empty.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { JailyardError } from '../../errors.ts';
import type { NodeView } from '../../api/context.ts';
import { stateDir, type RegisterVerb } from '../context.ts';

/** The daemon serving `dir`: its socket as `serve` names it (with --state or
 * $JAILYARD_STATE: <state>/jailyard.sock, else /var/run/jailyard.sock). */
function localDaemon(dir: string, explicit: boolean): string {
  const sock = explicit ? join(dir, 'jailyard.sock') : '/var/run/jailyard.sock';
  if (!existsSync(sock))
    throw new JailyardError(
      'JY_ERR_DAEMON_UNREACHABLE',
      `no daemon serves ${dir} (no socket at ${sock}): nodes asks a daemon; run \`jailyard serve --etcd ...\` or give --host`,
      { step: 'connect' },
    );
  return `unix://${sock}`;
}

export async function fetchNodes(
  url: string,
  token: string | undefined,
): Promise<{ cluster: boolean; items: NodeView[] }> {
  const { Agent, request } = await import('undici');
  let origin: string;
  let agent: InstanceType<typeof Agent>;
  if (url.startsWith('unix://')) {
    const socketPath = url.slice('unix://'.length);
    if (!socketPath.startsWith('/'))
      throw new JailyardError('JY_ERR_USAGE', `unix URL needs an absolute path: ${url}`, { param: '--host' });
    origin = 'http://localhost';
    agent = new Agent({ connect: { socketPath } });
  } else if (/^https?:\/\//.test(url)) {
    origin = url.replace(/\/+$/, '');
    agent = new Agent();
  } else {
    throw new JailyardError('JY_ERR_USAGE', `unsupported daemon URL "${url}" (unix:///path or http://host:port)`, {
      param: '--host',
    });
  }
  try {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${origin}/v1/nodes`, {
        dispatcher: agent,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
    } catch (e) {
      const reason = e instanceof Error ? ((e as NodeJS.ErrnoException).code ?? e.message) : String(e);
      throw new JailyardError('JY_ERR_DAEMON_UNREACHABLE', `cannot reach the daemon at ${url}: ${reason}`, {
        step: 'connect',
      });
    }
    const text = await res.body.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (res.statusCode === 404 && (body as { code?: string } | undefined)?.code === 'JY_ERR_ROUTE_NOT_FOUND')
      throw new JailyardError('JY_ERR_ROUTE_NOT_FOUND', `the daemon at ${url} does not list nodes (an older jailyard)`);
    if (res.statusCode >= 400) {
      const b = (body ?? {}) as { code?: string; message?: string };
      throw new JailyardError('JY_ERR_CLUSTER', b.message ?? `HTTP ${res.statusCode}`, { step: 'nodes' });
    }
    const b = body as { cluster?: unknown; items?: unknown } | undefined;
    if (!b || !Array.isArray(b.items)) throw new JailyardError('JY_ERR_INTERNAL', `unexpected answer from ${url}`);
    return { cluster: b.cluster === true, items: b.items as NodeView[] };
  } finally {
    await agent.close();
  }
}

/** A lease id as etcdctl prints it (hex). */
function leaseHex(id: string): string {
  try {
    return BigInt(id).toString(16);
  } catch {
    return id;
  }
}

/** Aligned columns, the last one free. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

export const register: RegisterVerb = (program, io) => {
  program
    .command('nodes')
    .description("list the cluster's live nodes: labels, range, capacity, jails placed, lease")
    .option('--json', 'the nodes as JSON on stdout')
    .action(async (o: { json?: boolean }) => {
      const host = program.opts<{ host?: string }>().host ?? process.env.JAILYARD_HOST;
      const explicit = (program.opts<{ state?: string }>().state ?? process.env.JAILYARD_STATE) !== undefined;
      const url = host ?? localDaemon(stateDir(program), explicit);
      const { cluster, items } = await fetchNodes(url, process.env.JAILYARD_TOKEN);
      if (o.json) {
        io.out(JSON.stringify({ cluster, nodes: items }));
        return;
      }
      if (!cluster) {
        io.err('jailyard: this daemon serves one host, not a cluster (serve --etcd): no nodes');
        return;
      }
      const labels = (l: Record<string, string>): string =>
        Object.entries(l)
          .map(([k, v]) => `${k}=${v}`)
          .join(',') || '-';
      const rows = [
        ['NAME', 'RANGE', 'JAILS', 'CAPACITY', 'LEASE', 'TTL', 'API', 'LABELS'],
        ...items.map((n) => [
          n.name,
          n.range,
          String(n.jails),
          String(n.capacity),
          leaseHex(n.lease.id),
          n.lease.ttl === null ? '?' : n.lease.ttl < 0 ? 'gone' : `${n.lease.ttl}s`,
          n.api ?? '-',
          labels(n.labels),
        ]),
      ];
      io.out(table(rows));
    });
};
