// /ui: the web dashboard's static files (docs/ui.md). They are built at install time
// (scripts/bundle-ui.ts, run by scripts/build-dist.sh) into dist/ui and hold no data: the
// page reads everything through the API with the same authorization as any client, so they
// are the only routes a TCP client may fetch without the bearer token (route config
// `public`). Served with a strict Content-Security-Policy (no inline script or style, no
// other origin), one fixed set of file names, and each file's content type.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { JailyardError } from '../errors.ts';

/** Where the build puts the dashboard (the same place from src/, dist/ and the bundle). */
export const UI_DIR = fileURLToPath(new URL('../../dist/ui/', import.meta.url));

export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
};

/** A file name the dashboard may have: one level, lower-case, a known extension. */
const FILE_RE = /^[a-z0-9][a-z0-9_-]{0,63}\.(html|js|css|svg|png)$/;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without the API's bearer token (the dashboard's static files only). */
    public?: boolean;
  }
}

/** The dashboard's own policy (nosniff, no framing and no referrer are every answer's:
 * app.ts). */
function secure(reply: FastifyReply): FastifyReply {
  return reply.header('content-security-policy', UI_CSP).header('cache-control', 'no-cache');
}

export const uiRoutes: FastifyPluginAsync<{ dir?: string }> = async (app, opts) => {
  const dir = opts.dir ?? UI_DIR;
  const config = { public: true };
  const send = async (reply: FastifyReply, name: string): Promise<FastifyReply> => {
    const m = FILE_RE.exec(name);
    let body: Buffer | undefined;
    if (m) {
      try {
        body = await readFile(join(dir, name));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    if (!body) {
      if (name === 'index.html')
        throw new JailyardError(
          'JY_ERR_ROUTE_NOT_FOUND',
          `the dashboard is not built (no ${join(dir, 'index.html')}): run npm run build`,
          { step: 'ui' },
        );
      throw new JailyardError('JY_ERR_ROUTE_NOT_FOUND', `no dashboard file "${name}"`, { step: 'ui' });
    }
    return secure(reply).type(TYPES[m![1]!]!).send(body);
  };
  // (the router ignores trailing slashes: /ui and /ui/ are one route; relative URLs need /ui/)
  app.get('/ui', { config, schema: { hide: true } }, async (request, reply) => {
    if (!request.url.startsWith('/ui/')) return secure(reply).redirect('/ui/', 302);
    return send(reply, 'index.html');
  });
  app.get<{ Params: { '*': string } }>('/ui/*', { config, schema: { hide: true } }, async (request, reply) =>
    send(reply, request.params['*'] || 'index.html'),
  );
};
