// GET /v1/jails/:name/logs: a jail's console log (`jailyard logs` over --host). The bytes as
// the jail wrote them (rotated file first), chunked, as text/plain; with follow=1 the
// response stays open and goes on with what the jail writes, across rotations, until the
// client closes it, the jail is removed, or the daemon stops. Same auth as every route.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import { once } from 'node:events';
import { JailyardError } from '../../errors.ts';
import { parseSince, readConsoleLog } from '../../runtime/logs.ts';
import type { ApiContext } from '../context.ts';
import { ErrorBody, NameParams, isFlagSet } from '../schemas.ts';

const Flag = Type.Union([Type.Literal('1'), Type.Literal('true'), Type.Literal('0'), Type.Literal('false')]);

export const LogsQuery = Type.Object({
  follow: Type.Optional(Flag),
  since: Type.Optional(
    Type.String({ description: 'a duration back from now (30s, 5m, 1h30m, 2d), an ISO 8601 time, or @UNIXSECONDS' }),
  ),
  lines: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'only the last N lines' })),
});

export interface LogRouteOptions {
  ctx: ApiContext;
  /** The console log of a jail whose log is on this host, else undefined (cluster mode: the
   * jail is placed on another node). */
  logOf(name: string): string | undefined;
}

export const logRoutes: FastifyPluginAsyncTypebox<LogRouteOptions> = async (app, { ctx, logOf }) => {
  app.get(
    '/v1/jails/:name/logs',
    {
      schema: {
        summary: "A jail's console log as text (follow=1: stays open, like tail -F)",
        params: NameParams,
        querystring: LogsQuery,
        response: { 400: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (request, reply) => {
      const q = request.query;
      // before anything is written: a plain JSON error (404 for an unknown jail)
      const record = await ctx.service.get(request.params.name);
      const sinceMs = q.since === undefined ? undefined : parseSince(q.since);
      const log = logOf(record.name);
      if (log === undefined) {
        throw new JailyardError(
          'JY_ERR_INVALID_TRANSITION',
          `the console log of ${record.name} is on ${record.node ? `node ${record.node}` : 'another node'}: ask that node's API (jailyard nodes lists them)`,
          { jail: record.name },
        );
      }
      const abort = new AbortController();
      const res = reply.raw;
      reply.hijack();
      res.writeHead(200, {
        'content-type': 'text/plain; charset=utf-8',
        'x-content-type-options': 'nosniff',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
      });
      // a follower ends with the daemon (endAllStreams) like a watch
      if (isFlagSet(q.follow)) ctx.streams.add(res);
      res.on('close', () => abort.abort());
      try {
        for await (const chunk of readConsoleLog(log, {
          ...(sinceMs !== undefined ? { sinceMs } : {}),
          ...(q.lines !== undefined ? { lines: Number(q.lines) } : {}),
          follow: isFlagSet(q.follow),
          signal: abort.signal,
        })) {
          if (res.writableEnded || res.destroyed) break;
          // a client that does not read holds the reader here, not the daemon's memory
          if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
        }
      } catch (e) {
        request.log.error({ err: e, jail: record.name }, 'reading the console log failed');
      } finally {
        ctx.streams.delete(res);
        if (!res.writableEnded) res.end();
      }
    },
  );
};
