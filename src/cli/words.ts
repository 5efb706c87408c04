// The words after a jail name on the command line: param=value, bare booleans, meta/env key
// operations, in order — the same language as jail(8)'s command line.

import type { Params } from '../conf/spec.ts';
import type { MetaOp } from '../meta/ops.ts';
import { parseParamAssignment } from '../conf/params.ts';

export interface ParsedWords {
  params: Params;
  meta: MetaOp[];
  env: MetaOp[];
}

export function parseWords(words: string[], jail: string | undefined): ParsedWords {
  const out: ParsedWords = { params: {}, meta: [], env: [] };
  for (const word of words) {
    const a = parseParamAssignment(word, jail);
    if (a.kind === 'meta') out[a.param].push(a.op);
    else out.params[a.name] = a.value;
  }
  return out;
}
