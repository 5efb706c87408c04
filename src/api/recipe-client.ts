// The CLI's side of POST /v1/jails/:name/recipe (src/api/routes/recipe.ts) for `jailyard
// --host URL recipe apply`: sends the bundle (recipe texts, CP sources, arguments) and hands
// on the daemon's NDJSON lines as they come: progress, a RUN's output, then the report, or the
// failing step's error (the same JailyardError, with its file:line:col).

import { request, type Dispatcher } from 'undici';
import { JailyardError } from '../errors.ts';
import type { RecipeReport } from '../runtime/recipe.ts';
import { bodyJson, errorFrom, targetOf, unreachable, type RemoteOptions } from './client.ts';

export interface RecipeBundle {
  /** The top recipe (a key of `recipes`). */
  file: string;
  args: Record<string, string>;
  /** Recipe texts by absolute path (the top one and its INCLUDEs). */
  recipes: Record<string, string>;
  /** CP sources by absolute path: their mode and bytes (base64). */
  sources: Record<string, { mode: number; data: string }>;
}

export async function applyRecipeRemote(
  url: string,
  jail: string,
  bundle: RecipeBundle,
  on: { progress(text: string): void; output(text: string): void },
  opts: RemoteOptions = {},
): Promise<RecipeReport> {
  const t = targetOf(url, opts);
  let res: Dispatcher.ResponseData;
  try {
    res = await request(`${t.origin}/v1/jails/${encodeURIComponent(jail)}/recipe`, {
      method: 'POST',
      dispatcher: t.dispatcher,
      headers: { ...t.headers, 'content-type': 'application/json' },
      body: JSON.stringify(bundle),
      // a PKG or a RUN takes its time, and may print nothing meanwhile
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  } catch (e) {
    throw unreachable(url, e);
  }
  if (res.statusCode !== 200) throw errorFrom(res.statusCode, await bodyJson(res));
  let rest = '';
  const decoder = new TextDecoder();
  const handle = (raw: string): RecipeReport | undefined => {
    if (!raw.trim()) return undefined;
    const m = JSON.parse(raw) as { progress?: string; output?: string; report?: RecipeReport; error?: unknown };
    if (m.progress !== undefined) on.progress(m.progress);
    if (m.output !== undefined) on.output(m.output);
    if (m.error !== undefined) throw errorFrom(500, m.error);
    return m.report;
  };
  try {
    for await (const chunk of res.body) {
      rest += decoder.decode(chunk as Buffer, { stream: true });
      let nl = rest.indexOf('\n');
      while (nl >= 0) {
        const report = handle(rest.slice(0, nl));
        rest = rest.slice(nl + 1);
        if (report) return report;
        nl = rest.indexOf('\n');
      }
    }
  } catch (e) {
    if (e instanceof JailyardError) throw e;
    throw unreachable(url, e);
  }
  const report = handle(rest);
  if (report) return report;
  throw new JailyardError(
    'JY_ERR_DAEMON_UNREACHABLE',
    `the daemon at ${url} ended its answer before the recipe's end: what it did is in the jail's state`,
    { jail, step: 'recipe' },
  );
}
