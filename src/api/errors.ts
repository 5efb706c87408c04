// Every error leaves the API as JSON { code, message, jail?, param?, key?, ... } with the
// JailyardError's HTTP status; fastify's own errors are mapped to jailyard codes.

import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { JailyardError, isJailyardError } from '../errors.ts';

/** "body/params/x must be ..." → the field a validation error is about. */
function fieldOf(e: FastifyError): string | undefined {
  const v = e.validation?.[0];
  if (!v) return undefined;
  const p = v.params as { missingProperty?: string; additionalProperty?: string } | undefined;
  const path = v.instancePath.replace(/^\//, '').replaceAll('/', '.');
  const field = [path, p?.missingProperty ?? p?.additionalProperty].filter(Boolean).join('.');
  return field || e.validationContext;
}

export function toJailyardError(e: unknown): JailyardError {
  if (isJailyardError(e)) return e;
  const fe = e as FastifyError;
  if (fe.validation) {
    const field = fieldOf(fe);
    return new JailyardError('JY_ERR_USAGE', fe.message, field ? { param: field } : {});
  }
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new JailyardError('JY_ERR_BODY_TOO_LARGE', fe.message, { step: 'request body' });
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new JailyardError('JY_ERR_USAGE', fe.message, { step: 'request' });
  }
  return new JailyardError('JY_ERR_INTERNAL', e instanceof Error ? e.message : String(e), {}, { cause: e });
}

export function sendError(reply: FastifyReply, e: JailyardError): FastifyReply {
  return reply.code(e.httpStatus).type('application/json; charset=utf-8').send(e.toJSON());
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const je = toJailyardError(error);
    if (je.code === 'JY_ERR_INTERNAL') request.log.error({ err: error }, 'internal error');
    return sendError(reply, je);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new JailyardError('JY_ERR_ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`, {
        step: 'route',
      }),
    ),
  );
}
