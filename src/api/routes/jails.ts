// /v1/jails: list (or watch), get, create, modify (jail -m), remove, start/stop/restart.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { ERROR_CODES, JailyardError, type ErrorCode } from '../../errors.ts';
import type { BatchResult as BatchResultT } from '../../runtime/types.ts';
import type { JailRecord } from '../../store/types.ts';
import type { ApiContext } from '../context.ts';
import { checkSelectorParam, etag, parseIfMatch, toMetaOps } from '../input.ts';
import {
  BatchBody,
  BatchResult,
  CreateBody,
  ErrorBody,
  IfMatchHeaders,
  JailList,
  JailView,
  ListQuery,
  NameParams,
  PatchBody,
  isFlagSet,
} from '../schemas.ts';
import { pickFields, toView, viewJson, VIEW_FIELDS, type ViewField } from '../view.ts';
import { serveWatch } from './watch.ts';
import { crashPoint } from '../../runtime/crashpoint.ts';

const errors = {
  400: ErrorBody,
  404: ErrorBody,
  409: ErrorBody,
  410: ErrorBody,
  412: ErrorBody,
  413: ErrorBody,
  500: ErrorBody,
};

function parseFields(text: string | undefined): ViewField[] | undefined {
  if (!text) return undefined;
  const fields = text
    .split(',')
    .map((f) => f.trim())
    .filter(Boolean);
  for (const f of fields) {
    if (!(VIEW_FIELDS as readonly string[]).includes(f)) {
      throw new JailyardError('JY_ERR_USAGE', `unknown field "${f}" (known: ${VIEW_FIELDS.join(', ')})`, {
        param: 'fields',
      });
    }
  }
  return fields as ViewField[];
}

/** 200 when every jail succeeded, else the status of the first failure's code. */
export function batchStatus(result: BatchResultT): number {
  if (result.ok) return 200;
  const failed = result.outcomes.find((o) => o.status === 'failed');
  const code = failed?.code;
  return code && code in ERROR_CODES ? ERROR_CODES[code as ErrorCode] : 500;
}

export const jailRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  const sendJail = (reply: { header(k: string, v: string): unknown }, record: JailRecord) => {
    reply.header('etag', etag(record.revision));
    return toView(record);
  };

  app.get(
    '/v1/jails',
    {
      schema: {
        summary: 'List jails (jls), or watch them as Server-Sent Events with watch=1',
        querystring: ListQuery,
        response: { 200: JailList, ...errors },
      },
    },
    async (request, reply) => {
      const q = request.query;
      checkSelectorParam(q.labelSelector);
      if (isFlagSet(q.watch)) {
        serveWatch(ctx, request, reply, {
          labelSelector: q.labelSelector,
          since: q.since === undefined ? undefined : Number(q.since),
          initial: isFlagSet(q.initial),
        });
        return reply;
      }
      const fields = parseFields(q.fields);
      const filter = q.labelSelector ? { selector: q.labelSelector } : undefined;
      // The revision must be the one the list belongs to, so list-then-watch(since) neither
      // misses nor repeats: retry when a write slipped in between.
      for (let attempt = 0; ; attempt++) {
        const before = ctx.events.currentRevision();
        const jails = await ctx.service.list(filter);
        const after = ctx.events.currentRevision();
        if (before === after || attempt >= 10) {
          if (fields)
            return {
              revision: before,
              items: jails.map((j) => pickFields(toView(j), fields)) as Array<{ name: string }>,
            };
          // The whole view: pre-serialized per record (cached until the jail changes).
          // (a JSON string is sent as is; the typed reply only knows the schema's object)
          const untyped = reply as unknown as FastifyReply;
          untyped.type('application/json; charset=utf-8');
          return untyped.send(`{"revision":${before},"items":[${jails.map((j) => viewJson(j)).join(',')}]}`);
        }
      }
    },
  );

  app.get(
    '/v1/jails/:name',
    { schema: { summary: 'One jail', params: NameParams, response: { 200: JailView, ...errors } } },
    async (request, reply) => sendJail(reply, await ctx.service.get(request.params.name)),
  );

  app.post(
    '/v1/jails',
    {
      schema: {
        summary: 'Create a jail (jail -c without starting it)',
        body: CreateBody,
        response: { 201: JailView, ...errors },
      },
    },
    async (request, reply) => {
      const b = request.body;
      crashPoint('api:received');
      const record = await ctx.service.create({
        spec: { name: b.name, params: { name: b.name, ...(b.params ?? {}) } },
        meta: toMetaOps('meta', b.meta, b.name),
        env: toMetaOps('env', b.env, b.name),
      });
      crashPoint('api:answered');
      reply.code(201);
      return sendJail(reply, record);
    },
  );

  app.patch(
    '/v1/jails/:name',
    {
      schema: {
        summary: 'Modify a jail (jail -m): parameters, meta and env operations; If-Match: revision',
        params: NameParams,
        headers: IfMatchHeaders,
        body: PatchBody,
        response: { 200: JailView, ...errors },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const ifRevision = parseIfMatch(request.headers['if-match']);
      const record = await ctx.service.modify(
        request.params.name,
        {
          params: b.params,
          unset: b.unset,
          meta: toMetaOps('meta', b.meta, request.params.name),
          env: toMetaOps('env', b.env, request.params.name),
        },
        ifRevision === undefined ? {} : { ifRevision },
      );
      return sendJail(reply, record);
    },
  );

  app.delete(
    '/v1/jails/:name',
    {
      schema: {
        summary: 'Remove a jail (stops it first); If-Match: revision',
        params: NameParams,
        headers: IfMatchHeaders,
        // no error schemas: a failed batch is answered with its BatchResult and the status
        response: { 200: BatchResult },
      },
    },
    async (request, reply) => {
      const name = request.params.name;
      const ifRevision = parseIfMatch(request.headers['if-match']);
      crashPoint('api:received');
      // with If-Match, the revision is compared in the transaction of the removal's first
      // change (412 JY_ERR_REVISION_CONFLICT, nothing changed)
      const result = await ctx.service.remove([name], ifRevision === undefined ? {} : { ifRevision });
      crashPoint('api:answered');
      // the status may be any error status: not one the schema lists
      reply.code(batchStatus(result) as 200);
      return result;
    },
  );

  for (const verb of ['start', 'stop', 'restart'] as const) {
    app.post(
      `/v1/jails/:name/${verb}`,
      {
        schema: {
          summary: `${verb} a jail (jail -${verb === 'start' ? 'c' : verb === 'stop' ? 'r' : 'rc'})`,
          params: NameParams,
          response: { 200: BatchResult },
        },
      },
      async (request, reply) => {
        crashPoint('api:received');
        const result = await ctx.service[verb]([request.params.name]);
        crashPoint('api:answered');
        reply.code(batchStatus(result) as 200);
        return result;
      },
    );
  }

  // Batches (the CLI's `jailyard start a b c -p 4` over --host): depend order and parallelism
  // are the service's, as locally.
  for (const verb of ['start', 'stop', 'restart', 'remove'] as const) {
    app.post(
      `/v1/batch/${verb}`,
      {
        schema: {
          summary: `${verb} several jails in dependency order`,
          body: BatchBody,
          response: { 200: BatchResult },
        },
      },
      async (request, reply) => {
        const { names, parallel, dryRun, progress } = request.body;
        crashPoint('api:received');
        // what a local CLI prints while it works: the CLI with --host and native/jy-ctl print it
        const lines: { jail: string; text: string }[] = [];
        const result = await ctx.service[verb](names, {
          ...(parallel !== undefined ? { parallel } : {}),
          ...(dryRun !== undefined ? { dryRun } : {}),
          ...(progress ? { progress: (jail: string, text: string) => void lines.push({ jail, text }) } : {}),
        });
        crashPoint('api:answered');
        reply.code(batchStatus(result) as 200);
        return progress ? { ...result, progress: lines } : result;
      },
    );
  }
};
