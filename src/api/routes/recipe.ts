// POST /v1/jails/:name/recipe: `jailyard --host URL recipe apply FILE JAIL`. The caller parsed
// the recipe on its side (its INCLUDEs and CP sources are the caller's files) and sends a
// bundle: the recipe files' texts by path, the CP sources' bytes and modes by path, the
// arguments. The daemon parses the bundle again (it trusts nothing of it: every syntax and
// path check of the parser is made here), never reads a file of its own for an INCLUDE or a
// CP, and runs the same executor as the local verb (src/runtime/recipe.ts): every step inside
// the jail goes through the exec path, so CP bytes are written by the jail itself, never by
// the host. The answer streams as NDJSON: `{"progress"}` and `{"output"}` lines as the steps
// run, then `{"report"}` or `{"error"}` (with the failing step's file:line:col).

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import { once } from 'node:events';
import { JailyardError, isJailyardError } from '../../errors.ts';
import type { Store } from '../../store/types.ts';
import type { ApiContext } from '../context.ts';
import { ErrorBody, NameParams } from '../schemas.ts';

/** The largest bundle (the CP sources are in it, base64): a recipe's files, not an image. */
export const RECIPE_BODY_LIMIT = 64 * 1024 * 1024;

const Bundle = Type.Object(
  {
    file: Type.String({ minLength: 1, maxLength: 4096, description: 'the top recipe: a key of recipes' }),
    args: Type.Optional(Type.Record(Type.String(), Type.String())),
    recipes: Type.Record(Type.String(), Type.String(), { description: 'recipe texts by absolute path' }),
    sources: Type.Optional(
      Type.Record(
        Type.String(),
        Type.Object({
          mode: Type.Integer({ minimum: 0, maximum: 0o177777 }),
          data: Type.String({ description: 'the bytes, base64' }),
        }),
        { description: 'CP sources by absolute path' },
      ),
    ),
  },
  { additionalProperties: false },
);

export interface RecipeRouteOptions {
  ctx: ApiContext;
  store: Store;
  stateDir: string;
}

export const recipeRoutes: FastifyPluginAsyncTypebox<RecipeRouteOptions> = async (app, { ctx, store, stateDir }) => {
  app.post(
    '/v1/jails/:name/recipe',
    {
      bodyLimit: RECIPE_BODY_LIMIT,
      schema: {
        summary:
          "Apply a recipe (Jailfile) bundle to the jail: its files' texts and CP sources; answers NDJSON progress, output, then report or error",
        params: NameParams,
        body: Bundle,
        response: { 400: ErrorBody, 404: ErrorBody, 409: ErrorBody, 413: ErrorBody, 500: ErrorBody },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const recipes = new Map(Object.entries(b.recipes));
      const sources = new Map(Object.entries(b.sources ?? {}));
      const { loadRecipe } = await import('../../conf/recipe.ts');
      // only the bundle's texts: a path it does not hold is not read from this host
      const steps = loadRecipe(b.file, {
        ...(b.args ? { args: b.args } : {}),
        read: (f) => {
          const t = recipes.get(f);
          if (t === undefined) throw Object.assign(new Error('not in the bundle'), { code: 'ENOENT' });
          return t;
        },
      });
      for (const s of steps)
        if (s.kind === 'CP' && !sources.has(s.src))
          throw new JailyardError('JY_ERR_PATH', `the bundle does not hold the CP source ${s.src}`, { pos: s.pos });
      // the jail: an unknown one is a plain 404; its processes must be on this host
      const record = await ctx.service.get(request.params.name);
      if (!store.getJail(record.name))
        throw new JailyardError(
          'JY_ERR_INVALID_TRANSITION',
          `${record.name} runs on ${record.node ? `node ${record.node}` : 'another node'}: ask that node's API (jailyard nodes lists them)`,
          { jail: record.name },
        );
      const { applyRecipe, localJailAccess } = await import('../../runtime/recipe.ts');
      const access = await localJailAccess(stateDir, store);

      const abort = new AbortController();
      const res = reply.raw;
      reply.hijack();
      res.writeHead(200, {
        'content-type': 'application/x-ndjson; charset=utf-8',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
      });
      // a client gone: the recipe stops before its next step
      res.on('close', () => abort.abort());
      const line = async (o: unknown): Promise<void> => {
        if (res.writableEnded || res.destroyed) return;
        if (!res.write(`${JSON.stringify(o)}\n`)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
      };
      try {
        const report = await applyRecipe(record.name, steps, {
          service: ctx.service,
          ...access,
          readSource: (path, pos) => {
            const s = sources.get(path);
            if (!s) throw new JailyardError('JY_ERR_PATH', `the bundle does not hold the CP source ${path}`, { pos });
            return { data: Buffer.from(s.data, 'base64'), mode: s.mode };
          },
          progress: (text) => void line({ progress: text }),
          output: (text) => void line({ output: text }),
          signal: abort.signal,
        });
        await line({ report });
      } catch (e) {
        const je = isJailyardError(e)
          ? e
          : new JailyardError('JY_ERR_INTERNAL', e instanceof Error ? e.message : String(e), {}, { cause: e });
        if (!isJailyardError(e)) request.log.error({ err: e, jail: record.name }, 'recipe failed');
        await line({ error: je.toJSON() });
      } finally {
        res.end();
      }
    },
  );
};
