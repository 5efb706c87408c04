// Sparse files in export archives: GNU tar's "PAX format, version 1.0" sparse entries (GNU
// tar manual, "Storing Sparse Files" / "Sparse Formats"), which node-tar neither writes nor
// reads (its pax parser drops GNU.sparse.* keys). GNU tar (`tar -xf`, `--sparse` not needed
// to read) and libarchive read them; a tar without sparse support extracts the entry as a
// file named .../GNUSparseFile.0/NAME holding the map and the data, never as NAME.
//
// An entry is a regular file ('0') whose pax header carries
//   GNU.sparse.major=1  GNU.sparse.minor=0  GNU.sparse.name=NAME  GNU.sparse.realsize=SIZE
// and whose data is the map (decimal numbers, one a line: the count, then OFFSET and LENGTH
// of each region; NUL-padded to a 512-byte block), then the regions' bytes one after another.
// The header's own name is DIR/GNUSparseFile.0/BASE and its size that of map and data. A file
// that ends in a hole has a last region (SIZE, 0), as GNU tar writes it.
//
// Reading treats the map as hostile: bounded in count and length, numbers only, regions in
// order, not overlapping, inside SIZE, and map and data exactly the entry's size.

import { posix } from 'node:path';
import { Pax } from 'tar';
import type { DataRegion } from '../platform/linux/sparse.ts';

const BLOCK = 512;
/** A file with holes at least this large is stored sparse (a smaller one is read whole:
 * cheaper than finding its holes). */
export const SPARSE_MIN = 1 << 20;
/** The most data regions written for one file (the last then takes the rest of the file,
 * holes as zeros); the reader accepts this many and a final (SIZE, 0). */
export const MAX_SPARSE_REGIONS = 1 << 16;
/** The longest number of the map: a safe integer. */
const MAX_DIGITS = 16;

/** A pax header with extra records (GNU.sparse.*) after node-tar's own, encoded by node-tar. */
export class PaxWith extends Pax {
  readonly #extra: [string, string][];

  constructor(fields: ConstructorParameters<typeof Pax>[0], extra: Record<string, string>) {
    super(fields);
    this.#extra = Object.entries(extra);
  }

  override encodeBody(): string {
    // node-tar's encodeField writes `LEN key=value\n` for whatever property it is given
    const records = this.#extra.map(([k, v]) => {
      Object.defineProperty(this, k, { value: v, configurable: true });
      try {
        return this.encodeField(k as keyof Pax);
      } finally {
        delete (this as Record<string, unknown>)[k];
      }
    });
    return super.encodeBody() + records.join('');
  }
}

/** The entry name and pax records of a sparse entry for `name` (the real path in the archive). */
export function sparseHeader(name: string, realSize: number): { path: string; records: Record<string, string> } {
  return {
    path: posix.join(posix.dirname(name), 'GNUSparseFile.0', posix.basename(name)),
    records: {
      'GNU.sparse.major': '1',
      'GNU.sparse.minor': '0',
      'GNU.sparse.name': name,
      'GNU.sparse.realsize': String(realSize),
    },
  };
}

/** The map of `regions` (of a file of `size` bytes), NUL-padded to a block. */
export function encodeSparseMap(regions: readonly DataRegion[], size: number): Buffer {
  const all = [...regions];
  const last = all.at(-1);
  if (!last || last.offset + last.length < size) all.push({ offset: size, length: 0 });
  const text = `${all.length}\n${all.map((r) => `${r.offset}\n${r.length}\n`).join('')}`;
  const out = Buffer.alloc(Math.ceil(text.length / BLOCK) * BLOCK);
  out.write(text, 'latin1');
  return out;
}

/** The bytes a sparse entry takes (map and data), to compare with the file's size. */
export function sparseStored(regions: readonly DataRegion[], size: number): number {
  return encodeSparseMap(regions, size).length + regions.reduce((n, r) => n + r.length, 0);
}

export interface SparseInfo {
  name: string;
  realSize: number;
}

/**
 * The sparse description in a pax header's text (what node-tar's parser emits as 'meta'):
 * undefined when it has no GNU.sparse.* record; a string (why) when it has some but not a
 * version 1.0 description this reader takes.
 */
export function sparseOfPax(text: string): SparseInfo | string | undefined {
  const b = Buffer.from(text, 'utf8');
  const rec = new Map<string, string>();
  let pos = 0;
  while (pos < b.length) {
    const sp = b.indexOf(0x20, pos);
    const len = sp > pos && sp - pos <= 20 ? Number(b.toString('latin1', pos, sp)) : Number.NaN;
    if (!Number.isSafeInteger(len) || len <= sp - pos + 1 || pos + len > b.length || b[pos + len - 1] !== 0x0a) break;
    const kv = b.subarray(sp + 1, pos + len - 1);
    const eq = kv.indexOf(0x3d);
    if (eq > 0) rec.set(kv.toString('utf8', 0, eq), kv.toString('utf8', eq + 1));
    pos += len;
  }
  const sparse = [...rec.keys()].filter((k) => k.startsWith('GNU.sparse.'));
  if (sparse.length === 0) return pos < b.length && text.includes('GNU.sparse.') ? 'a damaged pax header' : undefined;
  if (rec.get('GNU.sparse.major') !== '1' || rec.get('GNU.sparse.minor') !== '0')
    return 'a sparse format other than GNU PAX 1.0';
  const name = rec.get('GNU.sparse.name');
  const size = rec.get('GNU.sparse.realsize') ?? '';
  const realSize = /^\d{1,16}$/.test(size) ? Number(size) : Number.NaN;
  if (!name || !Number.isSafeInteger(realSize)) return 'a sparse entry without a name or a size';
  return { name, realSize };
}

/**
 * The data of a sparse entry (map, then regions), as it streams in: `write(buf, pos)` gets
 * each piece of region data at its offset, in increasing order. Throws (a message for the
 * archive's refusal) on a map that is not a well-formed one of this entry.
 */
export class SparseSink {
  readonly #entrySize: number;
  readonly #realSize: number;
  readonly #write: (buf: Buffer, pos: number) => void;
  /** The map's text so far; undefined once the map is read. */
  #text: string | undefined = '';
  #regions: DataRegion[] = [];
  /** Bytes of the entry consumed. */
  #seen = 0;
  /** Where the data starts in the entry (the map's blocks). */
  #dataStart = 0;
  #region = 0;
  #inRegion = 0;

  constructor(entrySize: number, realSize: number, write: (buf: Buffer, pos: number) => void) {
    this.#entrySize = entrySize;
    this.#realSize = realSize;
    this.#write = write;
  }

  /** The map's numbers, once all are in `#text`; undefined while more are needed. */
  #parseMap(): { numbers: number[]; end: number } | undefined {
    const text = this.#text ?? '';
    const numbers: number[] = [];
    let at = 0;
    for (;;) {
      const nl = text.indexOf('\n', at);
      if (nl < 0) {
        if (text.length - at > MAX_DIGITS) throw new Error('its sparse map has a number too long');
        return undefined;
      }
      const s = text.slice(at, nl);
      if (!/^\d{1,16}$/.test(s) || !Number.isSafeInteger(Number(s)))
        throw new Error('its sparse map holds something other than numbers');
      numbers.push(Number(s));
      at = nl + 1;
      if (numbers[0]! > MAX_SPARSE_REGIONS + 1)
        throw new Error(`its sparse map has more than ${MAX_SPARSE_REGIONS + 1} regions`);
      if (numbers.length === 1 + 2 * numbers[0]!) return { numbers, end: at };
    }
  }

  #takeMap(): void {
    const parsed = this.#parseMap();
    if (!parsed) return;
    const { numbers, end: mapEnd } = parsed;
    let end = 0;
    let data = 0;
    for (let i = 1; i < numbers.length; i += 2) {
      const offset = numbers[i]!;
      const length = numbers[i + 1]!;
      if (offset < end || offset + length > this.#realSize)
        throw new Error('its sparse map has regions out of order, overlapping or beyond the size');
      this.#regions.push({ offset, length });
      end = offset + length;
      data += length;
    }
    this.#dataStart = Math.ceil(mapEnd / BLOCK) * BLOCK;
    if (this.#dataStart + data !== this.#entrySize)
      throw new Error("its sparse map's regions do not add up to the entry's size");
    this.#text = undefined;
  }

  write(chunk: Buffer): void {
    let c = chunk;
    if (this.#text !== undefined) {
      // the map is text in the first blocks: ASCII digits and newlines
      const room = (1 + 2 * (MAX_SPARSE_REGIONS + 1)) * (MAX_DIGITS + 1) - this.#text.length;
      const take = c.subarray(0, Math.max(0, Math.min(c.length, room)));
      this.#text += take.toString('latin1');
      this.#takeMap();
      if (this.#text !== undefined) {
        if (take.length < c.length) throw new Error('its sparse map is too long');
        this.#seen += c.length;
        return;
      }
      // what of this chunk is past the map's blocks is data
      const before = this.#seen;
      this.#seen += c.length;
      c = c.subarray(Math.min(c.length, Math.max(0, this.#dataStart - before)));
    } else if (this.#seen < this.#dataStart) {
      const skip = Math.min(c.length, this.#dataStart - this.#seen);
      this.#seen += c.length;
      c = c.subarray(skip);
    } else this.#seen += c.length;
    while (c.length > 0) {
      const r = this.#regions[this.#region];
      if (!r) throw new Error('more data than its sparse map has regions for');
      const n = Math.min(c.length, r.length - this.#inRegion);
      if (n > 0) this.#write(c.subarray(0, n), r.offset + this.#inRegion);
      this.#inRegion += n;
      c = c.subarray(n);
      if (this.#inRegion === r.length) {
        this.#region++;
        this.#inRegion = 0;
      }
    }
  }

  /** At the entry's end: the map was whole (the data is, the parser counts the entry's size). */
  end(): void {
    if (this.#text !== undefined) throw new Error('its sparse map ends early');
  }
}
