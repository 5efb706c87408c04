// The daemon's HTTP application: schema-first routes over a JailService and the store's
// event log, OpenAPI at /openapi.json, Prometheus at /metrics, per-jail guest sockets.

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { JailyardError } from '../errors.ts';
import { consoleLogFile } from '../layout.ts';
import type { JailService } from '../runtime/types.ts';
import type { EventLog, Store } from '../store/types.ts';
import type { ApiContext, NodeView } from './context.ts';
import { installErrorHandlers, sendError, toJailyardError } from './errors.ts';
import { GuestServer } from './guest.ts';
import type { ToolContext } from './guest-tools.ts';
import { WatchHub } from './hub.ts';
import { apiLimits, capConnections, guardHandler, serverOptions, type ApiLimits } from './limits.ts';
import { PeerCheck } from './peer.ts';
import { createMetrics } from './metrics.ts';
import type { SupervisorStats } from '../runtime/supervisor.ts';
import { jailRoutes } from './routes/jails.ts';
import { logRoutes } from './routes/logs.ts';
import { nodeRoutes } from './routes/nodes.ts';
import { portableRoutes } from './routes/portable.ts';
import { portRoutes } from './routes/ports.ts';
import { recipeRoutes } from './routes/recipe.ts';
import { planRoutes } from './routes/plan.ts';
import { type RolloutControl, rolloutRoutes } from './routes/rollouts.ts';
import { skeletonRoutes } from './routes/skeletons.ts';
import { systemRoutes } from './routes/system.ts';
import { uiRoutes } from './ui.ts';
import { endAllStreams } from './routes/watch.ts';

export interface AppOptions {
  /** This host's store: the guest sockets' readiness, the jails' processes it tells from
   * the host's, and (without `events`) what the API serves. */
  store: Store;
  service: JailService;
  /** Cluster mode: the event log the API serves (the cluster's etcd mirror) instead of the
   * store; revisions, lists and watches are then the cluster's. */
  events?: EventLog;
  /** Cluster mode: the live nodes for GET /v1/nodes. */
  nodes?: () => Promise<NodeView[]>;
  /** Guest sockets: a folder holding one folder per jail, or a function naming the jail's
   * guest folder. Without it no guest sockets are made. */
  guestRoot?: string | ((name: string) => string);
  /** fastify's logger option (false by default). */
  logger?: boolean | Record<string, unknown>;
  /** Seconds between BOOKMARK events on idle watch streams (default 30). */
  bookmarkIntervalSec?: number;
  /** How often to look for writes by other processes, in ms (default 25). */
  pollIntervalMs?: number;
  /** Request body limit in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Bearer-token check for requests arriving on sockets for which `required` is true
   * (the TCP listener); unix-socket requests are authorized by the socket's file mode. */
  auth?: { token: string; required(socket: Socket): boolean; authorized?(socket: Socket): void };
  /** Connection caps and timeouts (the defaults file's "api" section, these over it). */
  limits?: Partial<ApiLimits>;
  /** The jail(8)/jls(8) front the guest sockets run for the jail(8) and jls(8) inside jails
   * (the CLI hands it in: src/cli/freebsd); without it those requests get a 404. */
  tools?: Omit<ToolContext, 'service'>;
  /** The daemon's supervisor (health checks, restart.policy): its counts on /metrics. */
  supervisor?: { stats: SupervisorStats };
  /** The dashboard's built files (default: dist/ui of this package; docs/ui.md). */
  uiDir?: string;
  /** Abort and HAProxy's pool view for /v1/rollouts (src/lb/rollout-control.ts); without it
   * rollouts are read-only. */
  rollouts?: RolloutControl;
}

function sameSecret(given: string, expected: string): boolean {
  // Hash both so the comparison is constant-time whatever the lengths.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export function buildApp(opts: AppOptions): FastifyInstance {
  const limits = apiLimits(opts.limits);
  const app = Fastify({
    // fastify's own server, with our timeouts, cap and guard (fastify sets no timeouts on it)
    serverFactory: (handler) => {
      const server = createServer(
        serverOptions(limits),
        guardHandler(handler, (e) => app.log.error({ err: e }, 'request handler failed')),
      );
      capConnections(server, { max: limits.maxConnections });
      return server;
    },
    logger: opts.logger ?? false,
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    forceCloseConnections: true,
    // An unknown body field (a typo like "parms") is an error, not silently dropped.
    // No type coercion either: a one-element array must not turn into a string (meta ops).
    // Query strings are declared as strings and parsed by the routes.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    // Jail names may contain dots and colons; keep the raw path.
    routerOptions: { ignoreTrailingSlash: true },
    // the router's own refusals (a malformed escape in the path, an over-long parameter)
    // answer in the API's error form, like every other error
    frameworkErrors: (error, _request, reply) => sendError(reply, toJailyardError(error)),
  }).withTypeProvider<TypeBoxTypeProvider>();

  const events = opts.events ?? opts.store;
  const hubOptions = {
    pollMs: opts.pollIntervalMs ?? 25,
    onError: (e: unknown) => app.log.error({ err: e }, 'event log poll failed'),
  };
  const hub = new WatchHub(events, hubOptions);
  const ctx: ApiContext = {
    events,
    service: opts.service,
    ...(opts.nodes ? { nodes: opts.nodes } : {}),
    hub,
    streams: new Set(),
    bookmarkMs: (opts.bookmarkIntervalSec ?? 30) * 1000,
  };
  const metrics = createMetrics(hub, opts.supervisor?.stats);
  const guestRoot = opts.guestRoot;
  // with guest sockets the daemon serves jails: it tells their processes from the host's
  const peers = guestRoot === undefined ? undefined : PeerCheck.start();
  // the guest sockets and the check of jailed processes are about this host's own jails:
  // in cluster mode they follow the local store through a hub of their own
  const localHub = guestRoot === undefined || events === opts.store ? hub : new WatchHub(opts.store, hubOptions);
  const guest =
    guestRoot === undefined
      ? undefined
      : new GuestServer({
          store: opts.store,
          hub: localHub,
          dirOf: typeof guestRoot === 'function' ? guestRoot : (name) => join(guestRoot, name),
          onError: (name, e) => app.log.error({ err: e, jail: name }, 'guest socket failed'),
          maxConnections: limits.guestMaxConnections,
          ready: { burst: limits.guestReadyBurst, intervalMs: limits.guestReadyIntervalMs },
          serverOptions: serverOptions(limits),
          ...(peers ? { peers } : {}),
          ...(opts.tools ? { tools: { ...opts.tools, service: opts.service } } : {}),
        });

  hub.start();
  if (localHub !== hub) localHub.start();
  const unsubscribe = events.subscribe?.(() => hub.notify());
  installErrorHandlers(app);

  if (opts.auth) {
    const auth = opts.auth;
    app.addHook('onRequest', async (request, reply) => {
      if (!auth.required(request.raw.socket)) return;
      // the dashboard's static files hold no data (it reads the API with the token)
      if (request.routeOptions.config?.public === true) return;
      const header = request.headers.authorization ?? '';
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      if (m && sameSecret(m[1]!, auth.token)) {
        auth.authorized?.(request.raw.socket);
      } else {
        // no second try on this connection
        reply.header('connection', 'close');
        throw new JailyardError('JY_ERR_UNAUTHORIZED', 'missing or wrong bearer token', { step: 'authorization' });
      }
    });
  }
  if (peers) {
    // The unix socket's mode admits the host's root, and a jail's root is uid 0 too: a view
    // of the host's tree in a jail (a basejail of the live root) must not make it an API
    // client. Processes inside a running jail are refused (TCP clients need the token).
    let insideAt = -1;
    let inside = new Set<string>();
    const jailNamespaces = (): Set<string> => {
      if (insideAt !== localHub.revision) {
        inside = new Set();
        for (const j of localHub.states().values()) {
          // a stopped jail's namespaces are gone (their numbers may be reused)
          if (j.state === 'stopped') continue;
          const ns = j.runtime?.create?.nsIds;
          if (ns?.mnt) inside.add(ns.mnt);
          if (ns?.pid) inside.add(ns.pid);
        }
        // never the daemon's own (a jail recorded without namespaces of its own)
        for (const own of peers.own()) inside.delete(own);
        insideAt = localHub.revision;
      }
      return inside;
    };
    app.addHook('onRequest', async (request, reply) => {
      const socket = request.raw.socket;
      // unix sockets have no remote address (inject()'s fake socket and TCP have one)
      if (socket.remoteAddress !== undefined || jailNamespaces().size === 0) return;
      const peer = await peers.of(socket);
      const ns = jailNamespaces();
      // a peer whose namespaces cannot be read (the connecting process exited, a child of it
      // holding the socket; its number reused) is refused: unknown is not the host
      const unknown = peer !== undefined && peer.mnt === undefined && peer.pidns === undefined;
      if (peer && (unknown || (peer.mnt && ns.has(peer.mnt)) || (peer.pidns && ns.has(peer.pidns)))) {
        reply.header('connection', 'close');
        throw new JailyardError('JY_ERR_UNAUTHORIZED', 'the API does not serve processes inside a jail', {
          step: 'authorization',
        });
      }
    });
  }
  // Every answer: never sniffed as another type, never framed, no referrer; an answer that
  // is no dashboard file (JSON, text, SSE: data a jail may have written) runs nothing in a
  // browser that opens it (the dashboard's files set their own policy, src/api/ui.ts)
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    if (!reply.hasHeader('content-security-policy'))
      reply.header('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
    return payload;
  });
  // Writes made through this daemon reach watchers at once, not at the next poll.
  app.addHook('onSend', async (request, _reply, payload) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      hub.poll();
      if (localHub !== hub) localHub.poll();
    }
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.observeRequest(
      request.routeOptions.url ?? 'unmatched',
      request.method,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
  });
  app.addHook('onReady', async () => {
    await guest?.start();
  });
  app.addHook('preClose', async () => {
    endAllStreams(ctx);
  });
  app.addHook('onClose', async () => {
    await guest?.close();
    peers?.close();
    unsubscribe?.();
    hub.stop();
    if (localHub !== hub) localHub.stop();
  });

  app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'jailyard', description: 'jail(8) semantics over HTTP: jails, meta/env, watch', version: '0.1.0' },
    },
  });
  app.register(jailRoutes, { ctx });
  app.register(systemRoutes, { ctx, metrics });
  app.register(nodeRoutes, { ctx });
  // export/import/clone/snapshots: the files of this host's jails (src/portable)
  app.register(portableRoutes, { ctx, store: opts.store, stateDir: opts.store.dir });
  app.register(portRoutes, { ctx });
  // a jail's console log is on the host that runs it: in cluster mode, jails of this node
  app.register(logRoutes, {
    ctx,
    logOf: (name) => (opts.store.getJail(name) ? consoleLogFile(opts.store.dir, name) : undefined),
  });
  // a recipe's steps inside the jail run on the host that runs it (src/runtime/recipe.ts)
  app.register(recipeRoutes, { ctx, store: opts.store, stateDir: opts.store.dir });
  app.register(skeletonRoutes, { stateDir: opts.store.dir });
  app.register(rolloutRoutes, {
    stateDir: opts.store.dir,
    service: ctx.service,
    ...(opts.rollouts ? { control: opts.rollouts } : {}),
  });
  app.register(planRoutes, { ctx, stateDir: opts.store.dir, local: (name) => opts.store.getJail(name) });
  app.register(uiRoutes, opts.uiDir !== undefined ? { dir: opts.uiDir } : {});
  return app as unknown as FastifyInstance;
}
