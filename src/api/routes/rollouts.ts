// /v1/rollouts: the rollouts saved in the daemon's state folder (`jailyard rollout` writes its
// progress to <state>/rollouts/<selector>.json after every step: src/lb/rollout.ts
// rolloutFileFor). A rollout runs in the CLI that started it, not in the daemon: this shows
// its steps as they are saved (also as a stream: the folder watched with inotify), HAProxy's view of its pool where the rollout names HAProxy's
// admin socket, and aborts it. An abort never makes a second writer: a rollout whose process
// runs (its owner file, src/lb/rollout-owner.ts) is asked to abort and does it itself between
// its steps; one nobody runs (interrupted, failed, or its process killed) is aborted by the
// daemon, holding the owner file meanwhile. A file that is not a rollout's (or is being
// replaced) is skipped.

import { mkdirSync, readdirSync, readFileSync, watch } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import { JailyardError, describeError } from '../../errors.ts';
import type { JailService } from '../../runtime/types.ts';
import { ErrorBody } from '../schemas.ts';

/** Steps kept per rollout in an answer (the newest). */
const MAX_STEPS = 500;

export const RolloutViewSchema = Type.Object({
  id: Type.String({ description: "the progress file's name without .json: /v1/rollouts/ID/..." }),
  selector: Type.String(),
  from: Type.String(),
  to: Type.String(),
  replicas: Type.Integer(),
  phase: Type.String({ description: 'running, done, failed, aborted or interrupted' }),
  created: Type.Array(Type.String(), { description: 'new jails this rollout created' }),
  removed: Type.Array(Type.String(), { description: 'old jails it removed' }),
  log: Type.Array(Type.Object({ at: Type.String(), text: Type.String() })),
  error: Type.Optional(Type.String()),
  active: Type.Boolean({ description: 'a process runs its steps now (the CLI, or this daemon aborting it)' }),
  abortRequested: Type.Boolean({ description: 'an abort was asked of the process running it' }),
  haproxy: Type.Optional(
    Type.Object({ adminSocket: Type.String(), backend: Type.String() }, { description: 'what it waits on' }),
  ),
});

interface RolloutView {
  id: string;
  selector: string;
  from: string;
  to: string;
  replicas: number;
  phase: string;
  created: string[];
  removed: string[];
  log: { at: string; text: string }[];
  error?: string;
  active: boolean;
  abortRequested: boolean;
  haproxy?: { adminSocket: string; backend: string };
}

const str = (v: unknown): v is string => typeof v === 'string';
const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every(str);

/** The fields of a saved rollout the API shows, or undefined for anything else. */
export function rolloutView(
  data: unknown,
  id: string,
  live: { active: boolean; abortRequested: boolean } = { active: false, abortRequested: false },
): RolloutView | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const d = data as Record<string, unknown>;
  if (!str(d.selector) || !str(d.from) || !str(d.to) || !str(d.phase)) return undefined;
  if (!Number.isSafeInteger(d.replicas) || !strings(d.created) || !strings(d.removed) || !Array.isArray(d.log))
    return undefined;
  const log = (d.log as unknown[])
    .filter((l): l is { at: string; text: string } => {
      const e = l as Record<string, unknown> | null;
      return typeof e === 'object' && e !== null && str(e.at) && str(e.text);
    })
    .slice(-MAX_STEPS)
    .map((l) => ({ at: l.at, text: l.text }));
  const lb = d.lb as Record<string, unknown> | undefined;
  return {
    id,
    selector: d.selector,
    from: d.from,
    to: d.to,
    replicas: d.replicas as number,
    phase: d.phase,
    created: d.created,
    removed: d.removed,
    log,
    ...(str(d.error) ? { error: d.error } : {}),
    ...live,
    ...(typeof lb === 'object' && lb !== null && str(lb.adminSocket) && str(lb.backend)
      ? { haproxy: { adminSocket: lb.adminSocket, backend: lb.backend } }
      : {}),
  };
}

/** A progress file's name (rolloutFileFor: the selector with anything else as `_`). */
const ID_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,250}$/;

const PoolServerSchema = Type.Object({
  server: Type.String(),
  jail: Type.Optional(Type.String({ description: 'the jail behind a server the controller made (jy-NAME)' })),
  addr: Type.String(),
  port: Type.Integer(),
  status: Type.String({ description: 'up, down, drain, maint, starting or stopping, as HAProxy has it' }),
  sessions: Type.Integer({ description: 'current plus queued streams (show stat scur + qcur)' }),
});

const PoolSchema = Type.Object({
  source: Type.String({ description: 'haproxy: read from its admin socket now; jails: not reachable (see reason)' }),
  backend: Type.Optional(Type.String()),
  servers: Type.Array(PoolServerSchema),
  reason: Type.Optional(Type.String()),
});

export interface PoolServer {
  server: string;
  jail?: string;
  addr: string;
  port: number;
  status: string;
  sessions: number;
}

/** What these routes do to rollouts (src/lb/rollout-control.ts, handed in by `jailyard
 * serve`: the API does not import the load balancer). Without it the rollouts are shown
 * read-only. */
export interface RolloutControl {
  /** A live process runs the rollout's steps (its owner file); an abort was asked of it. */
  live(stateFile: string): { active: boolean; abortRequested: boolean };
  /** Asks the process running the rollout to abort. */
  requestAbort(stateFile: string): void;
  /** Aborts a rollout nobody runs, holding its owner file: rejects at once when another
   * process holds it. */
  abort(stateFile: string, service: JailService, log?: (line: string) => void): Promise<unknown>;
  /** HAProxy's servers of `backend`, read from its admin socket now (throws when it does not answer). */
  pool(adminSocket: string, backend: string): Promise<PoolServer[]>;
}

export const rolloutRoutes: FastifyPluginAsyncTypebox<{
  stateDir: string;
  service: JailService;
  control?: RolloutControl;
}> = async (app, { stateDir, service, control }) => {
  const dir = join(stateDir, 'rollouts');
  const fileOf = (id: string) => join(dir, `${id}.json`);
  const live = (id: string) => control?.live(fileOf(id)) ?? { active: false, abortRequested: false };
  const noControl = () =>
    new JailyardError('JY_ERR_ROLLOUT', 'this daemon shows rollouts read-only (started without the load balancer)', {
      param: 'id',
    });
  /** The saved rollout ID, or 404. */
  const load = (id: string) => {
    let data: unknown;
    try {
      if (ID_RE.test(id)) data = JSON.parse(readFileSync(fileOf(id), 'utf8'));
    } catch {
      data = undefined;
    }
    const view = data === undefined ? undefined : rolloutView(data, id, live(id));
    if (!view) throw new JailyardError('JY_ERR_ROLLOUT_NOT_FOUND', `no rollout "${id}" in this host's state folder`);
    return view;
  };
  /** The rollouts as GET /v1/rollouts answers them. */
  const list = (): RolloutView[] => {
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith('.json'));
    } catch {
      return [];
    }
    const items: RolloutView[] = [];
    for (const name of names.sort()) {
      const id = name.slice(0, -'.json'.length);
      try {
        const view = rolloutView(JSON.parse(readFileSync(join(dir, name), 'utf8')), id, live(id));
        if (view) items.push(view);
      } catch {
        // gone meanwhile, or not JSON
      }
    }
    return items;
  };
  /** Open /v1/rollouts/watch streams, ended when the daemon closes. */
  const streams = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of streams) res.end();
  });
  /** Aborts the daemon runs itself (a rollout nobody runs), awaited when the daemon closes. */
  const aborting = new Set<Promise<unknown>>();
  app.addHook('onClose', async () => {
    await Promise.allSettled([...aborting]);
  });

  app.get(
    '/v1/rollouts',
    {
      schema: {
        summary: "The rollouts saved in this host's state folder, with their steps",
        response: { 200: Type.Object({ items: Type.Array(RolloutViewSchema) }), 500: ErrorBody },
      },
    },
    async () => ({ items: list() }),
  );

  app.get(
    '/v1/rollouts/watch',
    {
      schema: {
        summary:
          "The rollouts as a stream: GET /v1/rollouts's answer as an SSE `rollouts` event, again on every change",
        description:
          'text/event-stream: one `rollouts` event now, then one within 50 ms of any change of the rollouts folder (a ' +
          'step saved, an owner or abort file made or removed; inotify, no polling), a `: ping` comment every 15 s.',
      },
    },
    async (_req, reply) => {
      mkdirSync(dir, { recursive: true });
      const res = reply.raw;
      reply.hijack();
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'x-content-type-options': 'nosniff',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
      });
      let timer: NodeJS.Timeout | undefined;
      let last = '';
      const send = () => {
        timer = undefined;
        const data = JSON.stringify({ items: list() });
        // a temp file made and renamed away, a step's rename: the same answer is not sent twice
        if (data === last || res.writableEnded || res.destroyed) return;
        last = data;
        res.write(`event: rollouts\ndata: ${data}\n\n`);
      };
      const watcher = watch(dir, () => {
        timer ??= setTimeout(send, 50);
      });
      watcher.on('error', () => res.end());
      const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
      streams.add(res);
      res.on('close', () => {
        streams.delete(res);
        watcher.close();
        clearInterval(ping);
        clearTimeout(timer);
      });
      send();
    },
  );

  app.get(
    '/v1/rollouts/:id/pool',
    {
      schema: {
        summary: "HAProxy's own view of a rollout's backend (show servers state, show stat)",
        params: Type.Object({ id: Type.String() }),
        response: { 200: PoolSchema, 404: ErrorBody },
      },
    },
    async (req) => {
      const r = load(req.params.id);
      if (!r.haproxy)
        return { source: 'jails', servers: [], reason: 'the rollout runs without HAProxy (no --admin-socket)' };
      const { adminSocket, backend } = r.haproxy;
      if (!control) return { source: 'jails', backend, servers: [], reason: noControl().message };
      try {
        return { source: 'haproxy', backend, servers: await control.pool(adminSocket, backend) };
      } catch (e) {
        return { source: 'jails', backend, servers: [], reason: `HAProxy not reachable: ${describeError(e)}` };
      }
    },
  );

  app.post(
    '/v1/rollouts/:id/abort',
    {
      schema: {
        summary: 'Abort a rollout: back to its --from jails, the new ones it made removed',
        description:
          'A rollout its process runs is asked to abort and does it between its steps (how: requested); one nobody ' +
          'runs (interrupted, failed, its process gone) is aborted by the daemon (how: started). Follow it in ' +
          'GET /v1/rollouts: the phase ends `aborted`.',
        params: Type.Object({ id: Type.String() }),
        response: {
          202: Type.Object({ id: Type.String(), how: Type.String({ description: 'requested or started' }) }),
          404: ErrorBody,
          409: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      const r = load(req.params.id);
      const file = fileOf(r.id);
      if (!control) throw noControl();
      if (r.phase === 'done' || r.phase === 'aborted')
        throw new JailyardError(
          'JY_ERR_ROLLOUT',
          `the rollout of ${r.selector} is ${r.phase}: nothing to abort` +
            (r.phase === 'done' ? ` (going back is a new rollout, --from ${r.to} --to ${r.from})` : ''),
          { param: 'id' },
        );
      if (r.active) {
        control.requestAbort(file);
        return reply.code(202).send({ id: r.id, how: 'requested' });
      }
      // the abort claims the owner file before its first await: a process that took the
      // rollout meanwhile makes it reject at once (JY_ERR_ROLLOUT), answered here
      const run = control.abort(file, service, (line) => req.log.info({ rollout: r.id }, `rollout abort: ${line}`));
      // (settled before the next turn of the event loop; the steps take longer)
      const early = await Promise.race([
        run.then(
          () => undefined,
          (e: unknown) => e,
        ),
        new Promise((r) => setImmediate(() => r('pending'))),
      ]);
      if (early !== 'pending' && early !== undefined) throw early;
      const tracked = run.catch((e: unknown) =>
        req.log.warn({ rollout: r.id }, `rollout abort failed: ${describeError(e)}`),
      );
      aborting.add(tracked);
      void tracked.finally(() => aborting.delete(tracked));
      return reply.code(202).send({ id: r.id, how: 'started' });
    },
  );
};
