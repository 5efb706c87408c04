// Where a file's data is, its holes unread: lseek(2)'s SEEK_DATA and SEEK_HOLE, which Node
// has no API for, by native/jy-sparse.c on the descriptor the caller opened (stdin; no path
// is resolved again). Export (src/portable/archive.ts) stores a sparse file's data regions
// only.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { JailyardError } from '../../errors.ts';
import { JY_SPARSE } from './native.ts';

/** A run of data: `length` bytes at `offset`. */
export interface DataRegion {
  offset: number;
  length: number;
}

/**
 * The data regions of the open file `fd` below `size`, in order, at most `max` of them (the
 * last then reaches to `size`, holes and all: the work is bounded however many holes the file
 * has). A filesystem without SEEK_DATA gives one region, the whole file. The descriptor's
 * offset moves (read it with positions).
 */
export function dataRegions(fd: number, size: number, max: number): DataRegion[] {
  if (!existsSync(JY_SPARSE))
    throw new JailyardError(
      'JY_ERR_PLATFORM',
      `missing ${JY_SPARSE}: run npm install (or bash scripts/build-native.sh; needs gcc and libc6-dev)`,
    );
  const r = spawnSync(JY_SPARSE, ['map', String(size), String(max)], {
    stdio: [fd, 'pipe', 'pipe'],
    encoding: 'latin1',
    maxBuffer: max * 48 + 4096,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error((r.stderr || `jy-sparse: exit ${r.status ?? r.signal}`).trim());
  const out: DataRegion[] = [];
  let end = 0;
  for (const line of r.stdout.split('\n')) {
    if (line === '') continue;
    const m = /^(\d+) (\d+)$/.exec(line);
    const offset = Number(m?.[1]);
    const length = Number(m?.[2]);
    if (!m || !Number.isSafeInteger(offset + length) || offset < end || offset + length > size || length === 0)
      throw new Error(`jy-sparse: unexpected output: ${JSON.stringify(line)}`);
    out.push({ offset, length });
    end = offset + length;
  }
  if (out.length > max) throw new Error(`jy-sparse: more than ${max} regions`);
  return out;
}
