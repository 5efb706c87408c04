// /metrics (Prometheus), /openapi.json (the API's own description), /v1/version.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { ApiContext } from '../context.ts';
import type { ApiMetrics } from '../metrics.ts';

export const systemRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext; metrics: ApiMetrics }> = async (
  app,
  { ctx, metrics },
) => {
  app.get('/metrics', { schema: { summary: 'Prometheus metrics', hide: false } }, async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get(
    '/v1/version',
    {
      schema: {
        summary: 'Daemon version and current revision',
        response: { 200: Type.Object({ name: Type.String(), revision: Type.Integer() }) },
      },
    },
    async () => ({ name: 'jailyard', revision: ctx.events.currentRevision() }),
  );
};
