// /v1/nodes: the cluster's live nodes with their labels, range, capacity, lease and jail
// count (jailyard nodes). On one host the list is empty.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { ApiContext } from '../context.ts';
import { ErrorBody } from '../schemas.ts';

export const NodeViewSchema = Type.Object({
  name: Type.String(),
  labels: Type.Record(Type.String(), Type.String()),
  range: Type.String({ description: "the node's jail address range (IPv4 CIDR)" }),
  capacity: Type.Integer({ description: 'how many jails may be placed on the node' }),
  jails: Type.Integer({ description: 'jails placed on the node now' }),
  lease: Type.Object({
    id: Type.String(),
    ttl: Type.Union([Type.Integer(), Type.Null()], {
      description: 'seconds left before the lease expires unless renewed (-1: gone; null: etcd did not answer)',
    }),
  }),
  api: Type.Optional(Type.String()),
  startedAt: Type.String(),
});

export const nodeRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.get(
    '/v1/nodes',
    {
      schema: {
        summary: "The cluster's live nodes (empty on one host)",
        response: {
          200: Type.Object({ cluster: Type.Boolean(), items: Type.Array(NodeViewSchema) }),
          503: ErrorBody,
        },
      },
    },
    async () => (ctx.nodes ? { cluster: true, items: await ctx.nodes() } : { cluster: false, items: [] }),
  );
};
