// /v1/skeletons: the skeletons of this host's state folder and their versions (jailyard skel
// ls). In cluster mode, the skeletons of the node that answers (each node has its own).
// POST /v1/skeletons/NAME: `skel create NAME --oci-archive FILE` over --host: the body is the
// image archive (a tar: OCI layout or docker save), spooled to a file in the state folder (at
// most maxSize, default 16G, and the free space less 64 MiB) and built from there by the same
// createSkeleton as the local verb, which reads it as hostile input.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import { randomBytes } from 'node:crypto';
import { createWriteStream, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { JailyardError, isJailyardError } from '../../errors.ts';
import { parseSize } from '../../conf/spec.ts';
import { ErrorBody, NameParams } from '../schemas.ts';

/** The largest archive taken without maxSize (the image limit's default file bytes). */
const DEFAULT_UPLOAD_MAX = 16 * 1024 ** 3;

/** A refused upload up to this size is read (and dropped) before the answer. */
const DRAIN_MAX = 16 * 1024 ** 2;

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

/** The tar reader's own refusals of what is no tar at all, as the image's error. */
async function made<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (!isJailyardError(e) && typeof code === 'string' && code.startsWith('TAR_'))
      throw new JailyardError('JY_ERR_IMAGE', `not an image archive: ${(e as Error).message}`, {
        param: '--oci-archive',
      });
    throw e;
  }
}

export const skeletonRoutes: FastifyPluginAsyncTypebox<{ stateDir: string }> = async (app, { stateDir }) => {
  // the archive comes as it is: the route spools it
  for (const type of ['application/x-tar', 'application/octet-stream'])
    app.addContentTypeParser(type, (_request, payload, done) => done(null, payload));

  app.post(
    '/v1/skeletons/:name',
    {
      schema: {
        summary:
          'Create skeleton NAME (or its next version) from an image archive (the body: an OCI image layout tar or a docker save archive)',
        params: NameParams,
        querystring: Type.Object({
          ref: Type.Optional(Type.String({ minLength: 1, description: 'which image of several (name or tag)' })),
          maxSize: Type.Optional(
            Type.String({ description: "the image's file bytes and the archive's size at most (default 16G)" }),
          ),
          filename: Type.Optional(
            Type.String({ minLength: 1, maxLength: 255, description: "the archive's name on the client (recorded)" }),
          ),
        }),
        response: { 201: Type.Any(), 400: ErrorBody, 409: ErrorBody, 413: ErrorBody, 500: ErrorBody },
      },
    },
    async (request, reply) => {
      const q = request.query;
      const { checkSkeletonName, createSkeleton } = await import('../../skeleton/registry.ts');
      const name = checkSkeletonName(request.params.name);
      const maxBytes = q.maxSize !== undefined ? parseSize(q.maxSize, { param: 'maxSize' }) : undefined;
      // recorded as the source: a name, never a path of this host
      const label = q.filename ?? 'archive';
      if (label.includes('/') || /[\x00-\x1f\x7f]/.test(label))
        throw new JailyardError('JY_ERR_USAGE', 'filename is a file name (no /, no control characters)', {
          param: 'filename',
        });
      const body = request.body as NodeJS.ReadableStream | undefined;
      if (!body || typeof (body as { pipe?: unknown }).pipe !== 'function')
        throw new JailyardError('JY_ERR_USAGE', 'the body must be the image archive, as application/x-tar');
      const s = statfsSync(stateDir);
      const room = Math.min(s.bavail * s.bsize - (64 << 20), maxBytes ?? DEFAULT_UPLOAD_MAX);
      const tooLarge = () =>
        new JailyardError(
          'JY_ERR_BODY_TOO_LARGE',
          `the archive is larger than ${room} bytes (maxSize, or the free space); no skeleton was made`,
          { step: 'request body' },
        );
      // a declared length over the cap: refused, nothing written, and the connection closed
      // after the answer. A body of up to 16 MiB is read and dropped first: closing while
      // the client still sends gave it EPIPE instead of the answer (a CI run); a larger one
      // is not read at all.
      const declared = Number(request.headers['content-length'] ?? Number.NaN);
      if (declared > room) {
        reply.header('connection', 'close');
        if (declared <= DRAIN_MAX) for await (const _ of body) void _;
        throw tooLarge();
      }
      const file = join(stateDir, `.upload-${process.pid}-${randomBytes(4).toString('hex')}.tar`);
      try {
        let n = 0;
        // past the cap the rest of the body is read and dropped (nothing more is written), so
        // the client gets the refusal as an answer and not as a broken connection
        await pipeline(
          body,
          new Transform({
            transform(chunk: Buffer, _enc, cb) {
              n += chunk.length;
              cb(null, n > room ? undefined : chunk);
            },
          }),
          createWriteStream(file, { flags: 'wx', mode: 0o600 }),
        );
        if (n > room) throw tooLarge();
        const v = await made(
          createSkeleton(
            stateDir,
            name,
            { type: 'oci-archive', path: file, ...(q.ref !== undefined ? { ref: q.ref } : {}) },
            {
              ...(maxBytes !== undefined ? { imageLimits: { maxBytes } } : {}),
              recordSource: {
                type: 'oci-archive',
                path: `upload:${label}`,
                ...(q.ref !== undefined ? { ref: q.ref } : {}),
              },
            },
          ),
        );
        reply.code(201);
        return { name, ...v };
      } finally {
        rmSync(file, { force: true });
      }
    },
  );

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
