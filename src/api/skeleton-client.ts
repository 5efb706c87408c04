// The CLI's side of POST /v1/skeletons/:name (src/api/routes/skeletons.ts) for `jailyard
// --host URL skel create NAME --oci-archive FILE`: the archive file is streamed as the body.

import { createReadStream, statSync } from 'node:fs';
import { basename } from 'node:path';
import { request, type Dispatcher } from 'undici';
import { JailyardError } from '../errors.ts';
import type { SkeletonVersion } from '../skeleton/registry.ts';
import { answerJson, targetOf, unreachable, type RemoteOptions } from './client.ts';

export async function createSkeletonRemote(
  url: string,
  name: string,
  file: string,
  q: { ref?: string; maxSize?: string },
  opts: RemoteOptions = {},
): Promise<SkeletonVersion & { name: string }> {
  const st = statSync(file);
  if (!st.isFile())
    throw new JailyardError(
      'JY_ERR_PATH',
      `${file}: over --host the image goes as one archive file (an OCI layout folder: tar it first)`,
      { param: '--oci-archive' },
    );
  const t = targetOf(url, opts);
  const query = new URLSearchParams({ filename: basename(file) });
  if (q.ref !== undefined) query.set('ref', q.ref);
  if (q.maxSize !== undefined) query.set('maxSize', q.maxSize);
  let res: Dispatcher.ResponseData;
  try {
    res = await request(`${t.origin}/v1/skeletons/${encodeURIComponent(name)}?${query}`, {
      method: 'POST',
      dispatcher: t.dispatcher,
      headers: { ...t.headers, 'content-type': 'application/x-tar', 'content-length': String(st.size) },
      body: createReadStream(file),
      // a large image takes its time to send and to unpack
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  } catch (e) {
    throw unreachable(url, e);
  }
  return answerJson<SkeletonVersion & { name: string }>(res);
}
