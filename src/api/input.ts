// Request values the routes share: meta/env operations in their accepted forms, If-Match.

import { isJailyardError, JailyardError } from '../errors.ts';
import { checkKeyOps, parseMetaWord, type MetaOp, type MetaParam } from '../meta/ops.ts';
import { parseSelector } from '../meta/selector.ts';

/** What a body may give for meta or env: a whole buffer, or operations as objects or as the
 * CLI's words (`meta.k=v`, `meta.k`, `meta=...`; the `meta.` prefix may be left out). */
export type MetaInput = string | Array<MetaOp | string>;

/** The operations of a body's meta or env; per-key operations are checked (checkKeyOps) here,
 * whatever service the daemon runs over. */
export function toMetaOps(param: MetaParam, input: MetaInput | undefined, jail?: string): MetaOp[] | undefined {
  if (input === undefined) return undefined;
  if (typeof input === 'string') return [{ op: 'replace', value: input }];
  const ops = input.map((item): MetaOp => {
    if (typeof item !== 'string') return item;
    const other = param === 'meta' ? 'env' : 'meta';
    if (item === other || item.startsWith(`${other}.`) || item.startsWith(`${other}=`)) {
      throw new JailyardError('JY_ERR_USAGE', `"${item}" is an ${other} operation, given under ${param}`, { param });
    }
    const word =
      item === param || item.startsWith(`${param}.`) || item.startsWith(`${param}=`) ? item : `${param}.${item}`;
    const parsed = parseMetaWord(word);
    if (!parsed || parsed.param !== param) {
      throw new JailyardError('JY_ERR_USAGE', `"${item}" is not a ${param} operation`, { param });
    }
    return parsed.op;
  });
  checkKeyOps(param, ops, jail);
  return ops;
}

/** `If-Match: 7`, `"7"` or `W/"7"` → 7; absent → undefined. */
export function parseIfMatch(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const text = (Array.isArray(header) ? (header[0] ?? '') : header).trim();
  const m = /^(?:W\/)?"?(\d+)"?$/.exec(text);
  if (!m)
    throw new JailyardError('JY_ERR_USAGE', `If-Match must be a revision number, got "${text}"`, { param: 'If-Match' });
  return Number(m[1]);
}

export function etag(revision: number): string {
  return `"${revision}"`;
}

/** A query's label selector, checked up front so that its error names the query parameter
 * (the column alone is not in the API's error body). */
export function checkSelectorParam(text: string | undefined, param = 'labelSelector'): void {
  if (!text) return;
  try {
    parseSelector(text);
  } catch (e) {
    if (isJailyardError(e)) throw new JailyardError(e.code, e.message, { ...e.place, param }, { cause: e });
    throw e;
  }
}
