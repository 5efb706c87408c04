// GET /v1/jails/:name/plan: the mount plan a start of the jail would execute now, as data (what
// `jailyard apply --dry-run` prints): the skeleton's plan for its strategy, then mount,
// mount.fstab, devfs and the guest folder. Read-only: planning reads the skeleton and the
// jail's parameters, it mounts nothing. In cluster mode, for jails of the node that answers.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import { JailyardError } from '../../errors.ts';
import type { JailRecord } from '../../store/types.ts';
import type { ApiContext } from '../context.ts';
import { ErrorBody, NameParams } from '../schemas.ts';

export const planRoutes: FastifyPluginAsyncTypebox<{
  ctx: ApiContext;
  stateDir: string;
  /** The jail's record in this host's own store; undefined for a jail of another node. */
  local: (name: string) => JailRecord | undefined;
}> = async (app, { ctx, stateDir, local }) => {
  app.get(
    '/v1/jails/:name/plan',
    {
      schema: {
        summary: 'The mount plan a start of the jail would execute now (apply --dry-run)',
        params: NameParams,
        response: {
          200: Type.Object({ plan: Type.Unknown({ description: 'MountPlan (src/skeleton/plan.ts)' }) }),
          404: ErrorBody,
          409: ErrorBody,
          500: ErrorBody,
        },
      },
    },
    async (request) => {
      // 404 for a name that is no jail, as everywhere
      const seen = await ctx.service.get(request.params.name);
      const record = local(seen.name);
      if (!record)
        throw new JailyardError(
          'JY_ERR_INVALID_TRANSITION',
          `the jail ${seen.name} is on ${seen.node ? `node ${seen.node}` : 'another node'}: ask that node's API for its plan`,
          { jail: seen.name },
        );
      // loaded at the first request: the daemon's start does not pay for them
      const [{ jailRoot }, { skeletonHooks }, { completePlan }] = await Promise.all([
        import('../../layout.ts'),
        import('../../skeleton/hooks.ts'),
        import('../../runtime/jailplan.ts'),
      ]);
      const root = jailRoot(stateDir, record);
      const base = record.params.skeleton ? skeletonHooks().plan(stateDir, record, root) : undefined;
      return { plan: completePlan(stateDir, record, root, base) };
    },
  );
};
