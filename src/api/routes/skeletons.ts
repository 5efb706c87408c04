// /v1/skeletons: the skeletons of this host's state folder and their versions (jailyard skel
// ls). In cluster mode, the skeletons of the node that answers (each node has its own).

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import { ErrorBody } from '../schemas.ts';

export const SkeletonViewSchema = Type.Object({
  name: Type.String(),
  versions: Type.Array(
    Type.Object({
      version: Type.Integer(),
      kind: Type.Union([Type.Literal('reference'), Type.Literal('owned')]),
      source: Type.String({ description: 'what it was made from: "from PATH", "copy PATH", "debootstrap SUITE"' }),
      createdAt: Type.String(),
      entries: Type.Integer(),
      bytes: Type.Integer(),
    }),
  ),
});

export const skeletonRoutes: FastifyPluginAsyncTypebox<{ stateDir: string }> = async (app, { stateDir }) => {
  app.get(
    '/v1/skeletons',
    {
      schema: {
        summary: "The skeletons of this host's (this node's) state folder, with their versions",
        response: { 200: Type.Object({ items: Type.Array(SkeletonViewSchema) }), 500: ErrorBody },
      },
    },
    async () => {
      // loaded at the first request: the daemon's start does not pay for it
      const { listSkeletons } = await import('../../skeleton/registry.ts');
      return {
        items: listSkeletons(stateDir).map((s) => ({
          name: s.name,
          versions: s.versions.map((v) => ({
            version: v.version,
            kind: v.kind,
            source:
              v.source.type === 'debootstrap' ? `debootstrap ${v.source.suite}` : `${v.source.type} ${v.source.path}`,
            createdAt: v.createdAt,
            entries: v.entries,
            bytes: v.bytes,
          })),
        })),
      };
    },
  );
};
