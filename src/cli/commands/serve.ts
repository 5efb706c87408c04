// jailyard serve — see docs/api.md and docs/cli.md#serve
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JailyardError } from '../../errors.ts';
import type { CliIO, RegisterVerb } from '../context.ts';
import { openSession, type Session } from '../jails.ts';
import type { LocalService, NodeAgent } from '../../cluster/agent.ts';
import type { createLocalService } from '../../runtime/service.ts';
import type { FenceGuard } from '../../cluster/fence-guard.ts';
import type { ApiLimits } from '../../api/limits.ts';
import type { Store } from '../../store/types.ts';
import type { EtcdAccess } from '../../cluster/etcd-access.ts';

interface ServeOptions {
  socket?: string;
  listen?: string;
  tokenFile?: string;
  bookmarkInterval: string;
  maxConnections?: string;
  maxClientConnections?: string;
  guestMaxConnections?: string;
  guestReadyBurst?: string;
  guestReadyInterval?: string;
  headersTimeout?: string;
  requestTimeout?: string;
  idleTimeout?: string;
  authTimeout?: string;
  etcd?: string;
  node?: string;
  nodeLabel: string[];
  range?: string;
  capacity?: string;
  leaseTtl?: string;
  etcdPrefix?: string;
  etcdCacert?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
}

/** What `serve --etcd ...` joins: the cluster and this node. */
export interface ClusterFlags {
  endpoints: string[];
  prefix?: string;
  node: { name: string; labels: Record<string, string>; range: string; capacity: number };
  leaseTtlSec: number;
  /** Client TLS and etcd user (in memory only; never on a command line). */
  access: EtcdAccess;
}

const CLUSTER_FLAGS = [
  '--node',
  '--node-label',
  '--range',
  '--capacity',
  '--lease-ttl',
  '--etcd-prefix',
  '--etcd-cacert',
  '--etcd-cert',
  '--etcd-key',
  '--etcd-user',
  '--etcd-password-file',
] as const;

/** The cluster flags, checked before anything is opened; undefined without --etcd. */
export async function clusterFlags(o: ServeOptions): Promise<ClusterFlags | undefined> {
  const usage = (param: string, msg: string): JailyardError => new JailyardError('JY_ERR_USAGE', msg, { param });
  if (o.etcd === undefined) {
    const given = CLUSTER_FLAGS.find((f) =>
      f === '--node-label'
        ? o.nodeLabel.length > 0
        : o[
            (
              {
                '--node': 'node',
                '--range': 'range',
                '--capacity': 'capacity',
                '--lease-ttl': 'leaseTtl',
                '--etcd-prefix': 'etcdPrefix',
                '--etcd-cacert': 'etcdCacert',
                '--etcd-cert': 'etcdCert',
                '--etcd-key': 'etcdKey',
                '--etcd-user': 'etcdUser',
                '--etcd-password-file': 'etcdPasswordFile',
              } as const
            )[f]
          ] !== undefined,
    );
    if (given) throw usage(given, `${given} joins a cluster: it needs --etcd URL[,URL...]`);
    return undefined;
  }
  const endpoints = o.etcd
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  if (!endpoints.length) throw usage('--etcd', '--etcd needs at least one URL (http://HOST:PORT)');
  for (const u of endpoints) {
    let url: URL | undefined;
    try {
      url = new URL(u);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.port || url.pathname !== '/')
      throw usage('--etcd', `--etcd takes http://HOST:PORT or https://HOST:PORT URLs, got "${u}"`);
  }
  if (!o.node) throw usage('--node', "--etcd needs --node NAME (this node's name in the cluster)");
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(o.node))
    throw usage('--node', `--node must be 1-63 letters, digits, '.', '_' or '-', got "${o.node}"`);
  if (!o.range) throw usage('--range', "--etcd needs --range CIDR (this node's jail addresses, e.g. 198.51.100.32/28)");
  const { parseCidr } = await import('../../cluster/records.ts');
  const cidr = parseCidr(o.range);
  if (!cidr) throw usage('--range', `--range must be an IPv4 CIDR such as 198.51.100.32/28, got "${o.range}"`);
  if (cidr.base !== cidr.first)
    throw usage('--range', `--range ${o.range} has host bits set (the network is ${netText(cidr.first)}/${cidr.bits})`);
  const { isLabelKey, labelValueErrors } = await import('../../meta/selector.ts');
  const labels: Record<string, string> = {};
  for (const l of o.nodeLabel) {
    const eq = l.indexOf('=');
    const key = eq < 0 ? l : l.slice(0, eq);
    const value = eq < 0 ? '' : l.slice(eq + 1);
    if (eq < 0 || !isLabelKey(key))
      throw usage('--node-label', `--node-label takes KEY=VALUE with a label key, got "${l}"`);
    const bad = labelValueErrors(value);
    if (bad.length) throw usage('--node-label', `--node-label ${key}: ${bad.join('; ')}`);
    labels[key] = value;
  }
  const int = (flag: string, text: string | undefined, dflt: number, min: number): number => {
    if (text === undefined) return dflt;
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min)
      throw usage(flag, `${flag} must be an integer >= ${min}, got "${text}"`);
    return n;
  };
  if (o.etcdPrefix !== undefined && (o.etcdPrefix === '' || !o.etcdPrefix.startsWith('/')))
    throw usage('--etcd-prefix', `--etcd-prefix must be a key prefix starting with '/', got "${o.etcdPrefix}"`);
  const node = { name: o.node, labels, range: o.range, capacity: int('--capacity', o.capacity, 100, 1) };
  const leaseTtlSec = int('--lease-ttl', o.leaseTtl, 10, 2);
  // last: it takes $JAILYARD_ETCD_PASSWORD out of the environment
  const { readEtcdAccess } = await import('../../cluster/etcd-access.ts');
  const access = readEtcdAccess({
    endpoints,
    ...(o.etcdCacert !== undefined ? { cacert: o.etcdCacert } : {}),
    ...(o.etcdCert !== undefined ? { cert: o.etcdCert } : {}),
    ...(o.etcdKey !== undefined ? { key: o.etcdKey } : {}),
    ...(o.etcdUser !== undefined ? { user: o.etcdUser } : {}),
    ...(o.etcdPasswordFile !== undefined ? { passwordFile: o.etcdPasswordFile } : {}),
  });
  return {
    endpoints,
    ...(o.etcdPrefix !== undefined ? { prefix: o.etcdPrefix } : {}),
    node,
    leaseTtlSec,
    access,
  };
}

/**
 * A node's agent removes every local jail the cluster does not place on it: a state folder
 * that holds jails of one host must not join by mistake. The first join marks the folder as a
 * node's (`<state>/cluster-node`); an unmarked folder with jails is refused, nothing changed.
 * True when the folder was already this node's (a restart).
 */
function claimStateFolder(dir: string, store: Store, node: string): boolean {
  const marker = join(dir, 'cluster-node');
  if (existsSync(marker)) return readFileSync(marker, 'utf8').trim() === node;
  const own = store.listJails();
  if (own.length)
    throw new JailyardError(
      'JY_ERR_USAGE',
      `the state folder ${dir} holds ${own.length} jail(s) of this host (${own
        .slice(0, 3)
        .map((j) => j.name)
        .join(
          ', ',
        )}${own.length > 3 ? ', ...' : ''}); a cluster node removes the local jails the cluster does not place on it: give the node a state folder of its own (--state)`,
      { param: '--state' },
    );
  writeFileSync(marker, `${node}\n`, { mode: 0o644 });
  return false;
}

/** The node's API URL for its record, when it listens on a specific address. */
function listenUrl(tcp: { host: string; port: number }): string | undefined {
  if (tcp.host === '0.0.0.0' || tcp.host === '::') return undefined;
  return `http://${tcp.host.includes(':') ? `[${tcp.host}]` : tcp.host}:${tcp.port}`;
}

/** Connects to etcd (its mirror loaded) and makes the cluster service; the agent starts
 * once the daemon listens (its record names the API's address). */
async function openCluster(flags: ClusterFlags, io: CliIO) {
  const { ClusterState } = await import('../../cluster/state.ts');
  const warn = (msg: string, fields: Record<string, unknown>): void =>
    io.err(JSON.stringify({ level: 'warn', time: Date.now(), msg, ...fields }));
  const state = await ClusterState.open({
    endpoints: flags.endpoints,
    access: flags.access,
    ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
    // etcd keeps every revision until compacted: keep settings.event_history of them
    compactEveryMs: 300_000,
    onInvalid: (key, e) => warn('invalid record in etcd', { key, error: e.message }),
    onResync: (revision) => warn('etcd watch lost: listed again', { revision }),
  });
  try {
    const { createClusterService, listNodes } = await import('../../cluster/service.ts');
    const service = createClusterService(state);
    const startAgent = async (session: Session, api: string | undefined, rejoin: boolean): Promise<NodeAgent> => {
      const { startNodeAgent } = await import('../../cluster/agent.ts');
      const { loadDriver } = await import('../../platform/index.ts');
      const driver = await loadDriver({ stateDir: session.stateDir });
      // A node coming back after a crash or a fence (its guard killed every jail's processes):
      // the local records still say running or starting. Finish them as `jailyard reconcile`
      // does before the agent acts on them; it then starts what etcd still places here.
      const local = session.service as LocalService;
      if (rejoin && local.recover) {
        const recover = local.recover.bind(local);
        const { reconcile } = await import('../../runtime/reconcile.ts');
        const report = await reconcile({
          store: session.store!,
          driver,
          stateDir: session.stateDir,
          recover,
          ...(local.mountTransient ? { mountTransient: local.mountTransient.bind(local) } : {}),
        });
        for (const name of report.recovered)
          io.err(JSON.stringify({ level: 'warn', time: Date.now(), node: flags.node.name, msg: 'recovered', name }));
        for (const f of report.failed)
          io.err(
            JSON.stringify({ level: 'error', time: Date.now(), node: flags.node.name, msg: 'recover failed', ...f }),
          );
      }
      const start = () =>
        startNodeAgent({
          state,
          node: { ...flags.node, ...(api ? { api } : {}) },
          local: {
            service: session.service as LocalService,
            store: session.store!,
            isAlive: (j) => !!j.runtime?.create && driver.isAlive(j.runtime.create),
          },
          leaseTtlSec: flags.leaseTtlSec,
          endpoints: flags.endpoints,
          log: (level, msg, fields) =>
            io.err(JSON.stringify({ level, time: Date.now(), node: flags.node.name, msg, ...fields })),
        });
      // This folder's node restarted before its old lease ran out (a crash, kill -9): the
      // name is still held by that lease, which ends within a TTL; wait for it, no longer
      const until = Date.now() + (flags.leaseTtlSec + 2) * 1000;
      for (;;) {
        try {
          return await start();
        } catch (e) {
          const held =
            e instanceof JailyardError && e.code === 'JY_ERR_NODE_CONFLICT' && /name is held/.test(e.message);
          if (!rejoin || !held || Date.now() > until) throw e;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    };
    // GET /v1/nodes: the live nodes with their load and what is left of their leases
    const nodes = () => listNodes(state);
    return { state, service, startAgent, nodes };
  } catch (e) {
    await state.close();
    throw e;
  }
}

const netText = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

/** The limit options given on the command line, over the defaults file's "api" section. */
function limitOptions(o: ServeOptions): Partial<ApiLimits> {
  const out: Partial<ApiLimits> = {};
  const count = (flag: string, text: string | undefined, name: keyof ApiLimits): void => {
    if (text === undefined) return;
    const n = Number(text);
    if (!Number.isInteger(n) || n <= 0)
      throw new JailyardError('JY_ERR_USAGE', `${flag} must be a positive integer, got "${text}"`, { param: flag });
    out[name] = n;
  };
  const seconds = (flag: string, text: string | undefined, name: keyof ApiLimits): void => {
    if (text === undefined) return;
    const ms = Math.round(Number(text) * 1000);
    if (!(ms > 0))
      throw new JailyardError('JY_ERR_USAGE', `${flag} must be a positive number of seconds, got "${text}"`, {
        param: flag,
      });
    out[name] = ms;
  };
  count('--max-connections', o.maxConnections, 'maxConnections');
  count('--max-client-connections', o.maxClientConnections, 'maxConnectionsPerClient');
  count('--guest-max-connections', o.guestMaxConnections, 'guestMaxConnections');
  count('--guest-ready-burst', o.guestReadyBurst, 'guestReadyBurst');
  seconds('--guest-ready-interval', o.guestReadyInterval, 'guestReadyIntervalMs');
  seconds('--headers-timeout', o.headersTimeout, 'headersTimeoutMs');
  seconds('--request-timeout', o.requestTimeout, 'requestTimeoutMs');
  seconds('--idle-timeout', o.idleTimeout, 'keepAliveTimeoutMs');
  seconds('--auth-timeout', o.authTimeout, 'authTimeoutMs');
  return out;
}

export const register: RegisterVerb = (program, io) => {
  program
    .command('serve')
    .description(
      'run the daemon: HTTP API and watch stream on a unix socket (and TCP with a token), guest sockets per jail',
    )
    .option(
      '--socket <path>',
      'unix socket (mode 0600; default /var/run/jailyard.sock, or <state>/jailyard.sock with --state/$JAILYARD_STATE)',
    )
    .option('--listen <host:port>', 'also listen on TCP (loopback unless a host is given); needs --token-file')
    .option('--token-file <file>', 'file holding the bearer token TCP clients must send')
    .option('--bookmark-interval <sec>', 'seconds between BOOKMARK events on idle watch streams', '30')
    // defaults: the "api" section of defaults/defaults.json
    .option('--max-connections <n>', 'open connections per listener (TCP, unix socket), watch streams included')
    .option('--max-client-connections <n>', 'open TCP connections per client address')
    .option('--guest-max-connections <n>', 'open connections per guest socket')
    .option('--guest-ready-burst <n>', 'readiness changes a jail may store at once (PUT/DELETE /ready)')
    .option('--guest-ready-interval <sec>', 'then one readiness change per this many seconds (later ones coalesce)')
    .option('--headers-timeout <sec>', "time to send a request's headers")
    .option('--request-timeout <sec>', 'time to send a whole request')
    .option('--idle-timeout <sec>', 'idle time allowed between requests on a kept-alive connection')
    .option('--auth-timeout <sec>', 'TCP: time to send a first request with the right token')
    // cluster mode (docs/cluster.md): jails in etcd, this node's agent runs those placed here
    .option(
      '--etcd <urls>',
      'join the cluster whose etcd answers at these URLs (http://HOST:PORT or https://HOST:PORT, comma-separated)',
    )
    .option('--node <name>', "this node's name in the cluster (with --etcd)")
    .option(
      '--node-label <key=value>',
      'a label of this node, for node.selector (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--range <cidr>', "this node's jail address range; must not overlap another node's (with --etcd)")
    .option('--capacity <n>', 'most jails placed on this node (default 100)')
    .option('--lease-ttl <sec>', "the node lease's TTL: a node gone this long loses its jails (default 10)")
    .option('--etcd-prefix <prefix>', 'key prefix of the cluster in etcd (default /jailyard/)')
    // securing etcd (docs/cluster.md#securing-etcd): files only, never a secret in argv
    .option('--etcd-cacert <file>', "CA (PEM) of the etcd members' certificates (https://; default: the system's CAs)")
    .option('--etcd-cert <file>', 'client certificate (PEM) for etcd members run with --client-cert-auth')
    .option('--etcd-key <file>', "the client certificate's private key (PEM)")
    .option(
      '--etcd-user <name>',
      'etcd user (auth enabled); password from --etcd-password-file or $JAILYARD_ETCD_PASSWORD',
    )
    .option('--etcd-password-file <file>', "file holding the etcd user's password (mode 0600 or stricter)")
    .action(async (o: ServeOptions) => {
      if (program.opts<{ host?: string }>().host)
        throw new JailyardError('JY_ERR_USAGE', 'serve runs the daemon: --host makes no sense here', {
          param: '--host',
        });
      const { startDaemon, parseListen } = await import('../../api/daemon.ts');
      const { guestDir } = await import('../../layout.ts');
      const bookmarkIntervalSec = Number(o.bookmarkInterval);
      if (!(bookmarkIntervalSec > 0))
        throw new JailyardError(
          'JY_ERR_USAGE',
          `--bookmark-interval must be a positive number, got "${o.bookmarkInterval}"`,
          { param: '--bookmark-interval' },
        );
      const listen = o.listen ? parseListen(o.listen) : undefined;
      const { apiLimits } = await import('../../api/limits.ts');
      // checked before anything is opened
      const limits = apiLimits(limitOptions(o));
      let token: string | undefined;
      if (o.tokenFile) {
        try {
          token = readFileSync(o.tokenFile, 'utf8').trim();
        } catch (e) {
          throw new JailyardError('JY_ERR_USAGE', `cannot read the token file: ${(e as Error).message}`, {
            param: '--token-file',
          });
        }
        if (!token) throw new JailyardError('JY_ERR_USAGE', 'the token file is empty', { param: '--token-file' });
      }
      if (listen && !token)
        throw new JailyardError('JY_ERR_USAGE', '--listen needs --token-file', { param: '--token-file' });
      const cluster = await clusterFlags(o);

      const explicitState = program.opts<{ state?: string }>().state ?? process.env.JAILYARD_STATE;
      const session = await openSession(program, io);
      const socketPath =
        o.socket ?? (explicitState ? join(session.stateDir, 'jailyard.sock') : '/var/run/jailyard.sock');
      if (!session.store) throw new JailyardError('JY_ERR_USAGE', 'serve needs the local store', { step: 'serve' });
      // cluster mode: the API serves the cluster's jails from etcd; the local service stays
      // this node's own, driven by the agent (and the guest sockets' readiness)
      const rejoin = cluster ? claimStateFolder(session.stateDir, session.store, cluster.node.name) : false;
      // the fence guard (armed before this node runs any jail: if this daemon dies without its
      // orderly stop, e.g. kill -9, it kills this node's jails before the lease can expire)
      // starts while etcd and the API open: its Node start-up is ~0.5 s
      const guarding = cluster
        ? import('../../cluster/fence-guard.ts').then((m) => m.startFenceGuard(session.stateDir, cluster.node.name))
        : undefined;
      // its failure is reported where it is awaited (before the agent starts)
      guarding?.catch(() => {});
      // a start-up that fails: no jail of this node was started, the guard goes quietly
      const dropGuard = async (): Promise<void> => (await guarding?.catch(() => undefined))?.bye();
      let joined: Awaited<ReturnType<typeof openCluster>> | undefined;
      try {
        joined = cluster ? await openCluster(cluster, io) : undefined;
      } catch (e) {
        await dropGuard();
        throw e;
      }
      // the jail(8) and jls(8) jails run inside themselves, answered on their guest sockets
      const { runJail, runJls, runSysctl } = await import('../freebsd/index.ts');
      const { rootsFrom } = await import('../../api/guest-tools.ts');
      // health checks and restart.policy on one host (docs/health.md); a cluster node's jails
      // are its agent's
      const supervisor = joined
        ? undefined
        : new (await import('../../runtime/supervisor.ts')).Supervisor({
            store: session.store,
            lifecycle: () => (session.service as ReturnType<typeof createLocalService>).lifecycle(),
            log: (line) => io.err(`jailyard: ${line}`),
          });
      let daemon: Awaited<ReturnType<typeof startDaemon>>;
      try {
        daemon = await startDaemon({
          ...(supervisor ? { supervisor } : {}),
          store: session.store,
          service: joined?.service ?? session.service,
          // cluster mode: jails, revisions and watches are the cluster's (the etcd mirror)
          ...(joined ? { events: joined.state, nodes: joined.nodes } : {}),
          socketPath,
          guestRoot: (name) => guestDir(session.stateDir, name),
          tools: {
            front: { jail: runJail, jls: runJls, sysctl: runSysctl },
            scope: { rootOf: rootsFrom(session.stateDir, session.store), stateDir: session.stateDir },
          },
          // the host's own jail(8), jls(8) and ls for native/jy-ctl (one host only: in a
          // cluster they go through the CLI, which asks the API)
          ...(joined
            ? {}
            : { hostTools: (await import('../host-front.ts')).hostFront(session.service, session.stateDir) }),
          bookmarkIntervalSec,
          limits,
          // /v1/rollouts: abort, HAProxy's view of the pool (docs/api.md)
          rollouts: (await import('../../lb/rollout-control.ts')).rolloutControl,
          // warnings and errors (failed polls, guest sockets, internal errors) as JSON lines
          logger: { level: 'warn' },
          ...(listen ? { listen } : {}),
          ...(token ? { token } : {}),
        });
      } catch (e) {
        await joined?.state.close();
        await dropGuard();
        throw e;
      }
      let agent: NodeAgent | undefined;
      let guard: FenceGuard | undefined;
      if (joined && cluster) {
        try {
          guard = await guarding;
          agent = await joined.startAgent(session, daemon.tcp && listenUrl(daemon.tcp), rejoin);
        } catch (e) {
          // refused (name taken, range overlapping a live node's): nothing was written
          await dropGuard();
          await daemon.close();
          await joined.state.close();
          session.close();
          throw e;
        }
        io.err(`jailyard: node ${cluster.node.name} joined the cluster at ${cluster.endpoints.join(',')}`);
      }
      supervisor?.start();
      io.err(
        `jailyard: serving on unix://${socketPath}${daemon.tcp ? ` and http://${daemon.tcp.host}:${daemon.tcp.port}` : ''}`,
      );
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          process.off('SIGTERM', onTerm);
          process.off('SIGINT', onInt);
          io.err(`jailyard: ${signal}, closing`);
          // a node leaving stops its jails before its lease goes: others may re-place them
          (agent ? agent.stop({ stopJails: true }) : Promise.resolve())
            .catch(() => {})
            // the checks, stops and starts under way finish first
            .then(() => supervisor?.close())
            .then(() => daemon.close())
            .finally(async () => {
              // the jails are stopped: the guard may go without fencing
              await guard?.bye();
              await joined?.state.close().catch(() => {});
              session.close();
              resolve();
            });
        };
        const onTerm = () => stop('SIGTERM');
        const onInt = () => stop('SIGINT');
        process.on('SIGTERM', onTerm);
        process.on('SIGINT', onInt);
      });
    });
};
