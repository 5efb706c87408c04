// /v1/ports: the ports the running jails publish (`expose`), as `jailyard ports` lists them,
// from the facts their ports step recorded (src/runtime/published.ts).

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { ApiContext } from '../context.ts';
import { publishedPorts } from '../../runtime/published.ts';
import { checkSelectorParam } from '../input.ts';
import { ErrorBody } from '../schemas.ts';

export const PublishedPortSchema = Type.Object({
  jail: Type.String(),
  proto: Type.Union([Type.Literal('tcp'), Type.Literal('udp')]),
  hostPort: Type.Integer({ description: 'first host port' }),
  hostPortEnd: Type.Integer({ description: 'last host port (= hostPort for one port)' }),
  address: Type.String({ description: "the jail's IPv4 address the ports are forwarded to" }),
  jailPort: Type.Integer(),
  jailPortEnd: Type.Integer(),
});

export const portRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.get(
    '/v1/ports',
    {
      schema: {
        summary:
          'Published ports of the running jails (expose): of one jail with ?jail=NAME, of the jails a label selector matches with ?labelSelector=SEL',
        querystring: Type.Object({ jail: Type.Optional(Type.String()), labelSelector: Type.Optional(Type.String()) }),
        response: { 200: Type.Object({ items: Type.Array(PublishedPortSchema) }), 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (request) => {
      const { jail, labelSelector } = request.query;
      checkSelectorParam(labelSelector);
      // a jail that does not exist is a 404, as GET /v1/jails/NAME answers
      if (jail !== undefined) await ctx.service.get(jail);
      const jails = await ctx.service.list(labelSelector ? { selector: labelSelector } : undefined);
      return { items: publishedPorts(jails, jail) };
    },
  );
};
