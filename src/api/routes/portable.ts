// Export, import, clone and snapshots over the API (`jailyard --host ... export|import|clone|
// snapshot`): the same work as the local CLI (src/portable) on the daemon's own store and
// state folder. An export is streamed as the archive is made (application/zstd; a failure
// after the first byte breaks the connection, so a client never keeps half an archive); an
// import's body is the archive, spooled to a file in the state folder (at most the free space
// less a reserve, and --max-size) and read from there as hostile input. Not in cluster mode:
// a jail's files are on the node that runs it.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import { createWriteStream, rmSync, statfsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { JailyardError } from '../../errors.ts';
import { parseSize } from '../../conf/spec.ts';
import { parseParamAssignment } from '../../conf/params.ts';
import type { Params } from '../../conf/spec.ts';
import type { MetaOp } from '../../meta/ops.ts';
import type { Store } from '../../store/types.ts';
import type { ApiContext } from '../context.ts';
import { ErrorBody, NameParams, isFlagSet } from '../schemas.ts';
import { toView } from '../view.ts';

const Flag = Type.Optional(
  Type.Union([Type.Literal('1'), Type.Literal('true'), Type.Literal('0'), Type.Literal('false')]),
);
const errors = { 400: ErrorBody, 404: ErrorBody, 409: ErrorBody, 500: ErrorBody };
// the bodies are the portable module's own results (a JailView inside where a jail is made)
const made = { 201: Type.Any(), ...errors };
const ok = { 200: Type.Any(), ...errors };
const SnapParams = Type.Object({ name: Type.String({ minLength: 1 }), snapshot: Type.String({ minLength: 1 }) });

export interface PortableRouteOptions {
  ctx: ApiContext;
  store: Store;
  stateDir: string;
}

/** `param=value` words as the CLI reads them (src/cli/words.ts, the same parser). */
function words(list: string[], jail: string | undefined): { params: Params; meta: MetaOp[]; env: MetaOp[] } {
  const out = { params: {} as Params, meta: [] as MetaOp[], env: [] as MetaOp[] };
  for (const w of list) {
    const a = parseParamAssignment(w, jail);
    if (a.kind === 'meta') out[a.param].push(a.op);
    else out.params[a.name] = a.value;
  }
  if ('name' in out.params) throw new JailyardError('JY_ERR_USAGE', 'the new name is given on its own, not as name=');
  return out;
}

export const portableRoutes: FastifyPluginAsyncTypebox<PortableRouteOptions> = async (
  app,
  { ctx, store, stateDir },
) => {
  const local = (): void => {
    if (ctx.nodes)
      throw new JailyardError(
        'JY_ERR_USAGE',
        "export, import, clone and snapshots work on one host's jails: ask the node that runs the jail (jailyard nodes lists them)",
      );
  };
  const tools = async () => {
    const { mountChecker, whileStopped } = await import('../../portable/stopped.ts');
    return { mountsBelow: await mountChecker(stateDir), whileStopped };
  };
  // the archive comes as it is: the route spools it
  app.addContentTypeParser('application/zstd', (_request, payload, done) => done(null, payload));

  app.get(
    '/v1/jails/:name/export',
    {
      schema: {
        summary:
          'A stopped jail as an export archive (tar + zstd); full=1 carries the skeleton, restart=1 stops it for the export',
        params: NameParams,
        querystring: Type.Object({ full: Flag, restart: Flag }),
        response: errors,
      },
    },
    async (request, reply) => {
      local();
      const record = store.requireJailRef(request.params.name);
      const { mountsBelow, whileStopped } = await tools();
      const { planExport } = await import('../../portable/export.ts');
      const { packArchive } = await import('../../portable/archive.ts');
      await whileStopped(ctx.service, store, record.name, isFlagSet(request.query.restart), async () => {
        // refusals before the first byte are plain JSON errors
        const plan = planExport(stateDir, store.requireJail(record.name), {
          full: isFlagSet(request.query.full),
          mountsBelow,
        });
        const { stream } = packArchive(plan.manifest, plan.sources);
        const res = reply.raw;
        reply.hijack();
        res.writeHead(200, {
          'content-type': 'application/zstd',
          'content-disposition': `attachment; filename="${record.name}.tar.zst"`,
        });
        try {
          await pipeline(stream, res);
        } catch (e) {
          request.log.error({ err: e, jail: record.name }, 'export failed while streaming');
          res.destroy();
        }
      });
    },
  );

  app.post(
    '/v1/import',
    {
      schema: {
        summary: 'Make a jail from an export archive (the body, application/zstd)',
        response: made,
        querystring: Type.Object({
          name: Type.Optional(Type.String({ minLength: 1 })),
          trust: Flag,
          start: Flag,
          maxSize: Type.Optional(Type.String()),
          param: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
        }),
      },
    },
    async (request, reply) => {
      local();
      const q = request.query;
      const given = words(q.param === undefined ? [] : Array.isArray(q.param) ? q.param : [q.param], q.name);
      const maxBytes = q.maxSize !== undefined ? parseSize(q.maxSize, { param: 'maxSize' }) : undefined;
      const body = request.body as NodeJS.ReadableStream | undefined;
      if (!body || typeof (body as { pipe?: unknown }).pipe !== 'function')
        throw new JailyardError('JY_ERR_USAGE', 'the body must be the archive, as application/zstd');
      const s = statfsSync(stateDir);
      const room = Math.min(s.bavail * s.bsize - (64 << 20), maxBytes ?? Number.MAX_SAFE_INTEGER);
      const file = join(stateDir, `.upload-${process.pid}-${randomBytes(4).toString('hex')}.tar.zst`);
      try {
        let n = 0;
        await pipeline(
          body,
          new Transform({
            transform(chunk: Buffer, _enc, cb) {
              n += chunk.length;
              if (n > room)
                cb(
                  new JailyardError(
                    'JY_ERR_ARCHIVE',
                    `the archive is larger than ${room} bytes (the limit, or the free space); nothing was imported`,
                  ),
                );
              else cb(null, chunk);
            },
          }),
          createWriteStream(file, { flags: 'wx', mode: 0o600 }),
        );
        const { importJail } = await import('../../portable/import.ts');
        const r = await importJail(store, stateDir, file, {
          ...(q.name ? { name: q.name } : {}),
          params: given.params,
          meta: given.meta,
          env: given.env,
          ...(isFlagSet(q.trust) ? { trust: true } : {}),
          ...(maxBytes !== undefined ? { maxBytes } : {}),
        });
        let started: boolean | undefined;
        if (isFlagSet(q.start)) started = (await ctx.service.start([r.jail.name])).ok;
        reply.code(201);
        return {
          jail: toView(store.requireJail(r.jail.name)),
          skeleton: r.skeleton,
          entries: r.entries,
          bytes: r.bytes,
          notes: r.notes,
          ...(started !== undefined ? { started } : {}),
        };
      } finally {
        rmSync(file, { force: true });
      }
    },
  );

  app.post(
    '/v1/jails/:name/clone',
    {
      schema: {
        summary: 'Copy a stopped jail to a new one (new name, hostname, next free address unless given)',
        params: NameParams,
        body: Type.Object({
          name: Type.String({ minLength: 1 }),
          params: Type.Optional(Type.Array(Type.String())),
          restart: Type.Optional(Type.Boolean()),
          start: Type.Optional(Type.Boolean()),
        }),
        response: made,
      },
    },
    async (request, reply) => {
      local();
      const b = request.body;
      const original = store.requireJailRef(request.params.name);
      const given = words(b.params ?? [], b.name);
      const { mountsBelow, whileStopped } = await tools();
      const { cloneJail } = await import('../../portable/clone.ts');
      const r = await whileStopped(ctx.service, store, original.name, b.restart, () =>
        cloneJail(store, stateDir, store.requireJail(original.name), b.name, {
          params: given.params,
          meta: given.meta,
          env: given.env,
          mountsBelow,
        }),
      );
      let started: boolean | undefined;
      if (b.start) started = (await ctx.service.start([b.name])).ok;
      reply.code(201);
      return {
        jail: toView(store.requireJail(b.name)),
        from: r.from,
        entries: r.entries,
        bytes: r.bytes,
        notes: r.notes,
        ...(started !== undefined ? { started } : {}),
      };
    },
  );

  app.get(
    '/v1/jails/:name/snapshots',
    { schema: { summary: "A jail's snapshots, oldest first", params: NameParams, response: ok } },
    async (request) => {
      local();
      const record = store.requireJailRef(request.params.name);
      const { listSnapshots } = await import('../../portable/snapshot.ts');
      return listSnapshots(stateDir, record.name);
    },
  );

  app.post(
    '/v1/jails/:name/snapshots',
    {
      schema: {
        summary: "Snapshot a stopped jail's writable part (restart: stop it for the copy)",
        params: NameParams,
        body: Type.Object({
          name: Type.Optional(Type.String({ minLength: 1 })),
          restart: Type.Optional(Type.Boolean()),
        }),
        response: made,
      },
    },
    async (request, reply) => {
      local();
      const record = store.requireJailRef(request.params.name);
      const { mountsBelow, whileStopped } = await tools();
      const { createSnapshot } = await import('../../portable/snapshot.ts');
      const s = await whileStopped(ctx.service, store, record.name, request.body.restart, async () =>
        createSnapshot(stateDir, store.requireJail(record.name), request.body.name, mountsBelow),
      );
      reply.code(201);
      return s;
    },
  );

  app.post(
    '/v1/jails/:name/snapshots/:snapshot/rollback',
    {
      schema: { summary: "Put a stopped jail's writable part back to a snapshot", params: SnapParams, response: ok },
    },
    async (request) => {
      local();
      const record = store.requireJailRef(request.params.name);
      const { mountsBelow } = await tools();
      const { rollbackSnapshot } = await import('../../portable/snapshot.ts');
      return rollbackSnapshot(stateDir, record, request.params.snapshot, mountsBelow);
    },
  );

  app.delete(
    '/v1/jails/:name/snapshots/:snapshot',
    { schema: { summary: 'Remove a snapshot', params: SnapParams, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      local();
      const record = store.requireJailRef(request.params.name);
      const { removeSnapshot } = await import('../../portable/snapshot.ts');
      removeSnapshot(stateDir, record.name, request.params.snapshot);
      reply.code(204);
    },
  );
};
