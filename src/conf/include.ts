// `.include "pattern";` on the real filesystem: the pattern is relative to the including
// file and may be a glob(3) pattern. A literal name must exist; a glob may match nothing
// (which is why jail.conf(5) writes optional files as `jail[.]conf`).

import { globSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { JailyardError, type SourcePosition } from '../errors.ts';
import type { IncludedFile, IncludeLoader } from './parser.ts';

const GLOB_MAGIC = /[*?[]/;

export const fsIncludeLoader: IncludeLoader = (
  pattern: string,
  fromFile: string,
  pos: SourcePosition,
): IncludedFile[] => {
  const full = isAbsolute(pattern) ? pattern : join(dirname(fromFile), pattern);
  const files = GLOB_MAGIC.test(pattern) ? globSync(full).sort() : [full];
  const out: IncludedFile[] = [];
  for (const file of files) {
    try {
      if (statSync(file).isDirectory()) continue;
      out.push({ file, text: readFileSync(file, 'utf8') });
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
      throw new JailyardError('JY_ERR_CONF_INCLUDE', `cannot include "${file}": ${why}`, { pos }, { cause: e });
    }
  }
  return out;
};
