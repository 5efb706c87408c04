// The CLI's side of the export, import, clone and snapshot routes (src/api/routes/portable.ts)
// for --host: an export is streamed from the daemon into a file (a temp file renamed when the
// whole archive is there), an import streams the file to the daemon.

import { createReadStream, createWriteStream, renameSync, rmSync, statSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { request, type Dispatcher } from 'undici';
import { JailyardError } from '../errors.ts';
import { answerJson, targetOf, unreachable, type RemoteOptions } from './client.ts';

const enc = encodeURIComponent;

async function send(
  url: string,
  opts: RemoteOptions,
  method: Dispatcher.HttpMethod,
  path: string,
  body?: { json: unknown } | { file: string },
): Promise<Dispatcher.ResponseData> {
  const t = targetOf(url, opts);
  try {
    return await request(t.origin + path, {
      method,
      dispatcher: t.dispatcher,
      headers: {
        ...t.headers,
        ...(body && 'json' in body ? { 'content-type': 'application/json' } : {}),
        ...(body && 'file' in body
          ? { 'content-type': 'application/zstd', 'content-length': String(statSync(body.file).size) }
          : {}),
      },
      ...(body && 'json' in body ? { body: JSON.stringify(body.json) } : {}),
      ...(body && 'file' in body ? { body: createReadStream(body.file) } : {}),
      // an archive of a large jail takes its time
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  } catch (e) {
    if (e instanceof JailyardError) throw e;
    throw unreachable(url, e);
  }
}

/** GET /v1/jails/:name/export into `file`. */
export async function exportRemote(
  url: string,
  name: string,
  file: string,
  q: { full?: boolean; restart?: boolean },
  opts: RemoteOptions = {},
): Promise<{ bytes: number }> {
  const query = new URLSearchParams({ ...(q.full ? { full: '1' } : {}), ...(q.restart ? { restart: '1' } : {}) });
  const res = await send(url, opts, 'GET', `/v1/jails/${enc(name)}/export?${query}`);
  if (res.statusCode !== 200) return answerJson(res);
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    // a daemon that cannot finish an archive breaks the connection: the pipeline fails
    await pipeline(res.body, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return { bytes: statSync(file).size };
}

/** POST /v1/import with the archive as the body. */
export async function importRemote<T>(
  url: string,
  file: string,
  q: { name?: string; trust?: boolean; maxSize?: string; start?: boolean; words: string[] },
  opts: RemoteOptions = {},
): Promise<T> {
  const query = new URLSearchParams();
  if (q.name) query.set('name', q.name);
  if (q.trust) query.set('trust', '1');
  if (q.start) query.set('start', '1');
  if (q.maxSize) query.set('maxSize', q.maxSize);
  for (const w of q.words) query.append('param', w);
  return answerJson(await send(url, opts, 'POST', `/v1/import?${query}`, { file }));
}

/** POST /v1/jails/:name/clone. */
export async function cloneRemote<T>(
  url: string,
  name: string,
  body: { name: string; params: string[]; restart?: boolean; start?: boolean },
  opts: RemoteOptions = {},
): Promise<T> {
  return answerJson(await send(url, opts, 'POST', `/v1/jails/${enc(name)}/clone`, { json: body }));
}

/** The snapshot routes: list, create, rollback, remove. */
export async function snapshotRemote<T>(
  url: string,
  op: 'list' | 'create' | 'rollback' | 'remove',
  jail: string,
  snap: { name?: string; restart?: boolean },
  opts: RemoteOptions = {},
): Promise<T> {
  const base = `/v1/jails/${enc(jail)}/snapshots`;
  if (op === 'list') return answerJson(await send(url, opts, 'GET', base));
  if (op === 'create')
    return answerJson(
      await send(url, opts, 'POST', base, {
        json: { ...(snap.name ? { name: snap.name } : {}), ...(snap.restart ? { restart: true } : {}) },
      }),
    );
  const one = `${base}/${enc(snap.name ?? '')}`;
  if (op === 'rollback') return answerJson(await send(url, opts, 'POST', `${one}/rollback`, { json: {} }));
  return answerJson(await send(url, opts, 'DELETE', one));
}
