// Issue 17 "Export / import": the archive reader (src/portable/archive.ts) on generated tar
// streams: entry paths built from a small alphabet that includes "..", ".", empty and absolute
// components and jailyard's part names; every entry type; link targets that point at the
// host, climb out or name earlier entries; sizes larger than declared. Oracle per archive:
// the reader either accepts it or refuses it with JY_ERR_ARCHIVE (nothing else: no crash, no
// other error), and in both cases nothing outside the staging folder changed (a victim folder
// beside it and its parent's listing stay as they were), and what it made is only below the
// staging folder. An accepted archive holds no hard link to a host file. Sparse entries (GNU
// tar's PAX 1.0 format, as export writes a file with holes) come with generated maps: regions
// in and out of order, overlapping, beyond the size, not adding up to the entry, huge sizes,
// records that are not numbers; an accepted sparse file takes no more disk than its data.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync as writeFile } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import fc from 'fast-check';
import { Header } from 'tar';
import { PaxWith, sparseHeader } from '../../src/portable/sparse-tar.ts';
import { JailyardError } from '../../src/errors.ts';
import { PART_NAMES } from '../../src/portable/parts.ts';
import { readArchive } from '../../src/portable/archive.ts';
import { budget } from './harness.ts';

let dir: string;
let victim: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'jy-fuzz-archive-'));
  victim = join(dir, 'victim');
  mkdirSync(victim);
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

type Kind = 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'FIFO' | 'Sparse';

interface Entry {
  path: string;
  type: Kind;
  linkpath: string;
  body: string;
  extra: number;
  sparse: SparseMap;
}

/** A generated sparse entry: its map's regions, the file's real size, the data stored (an
 * offset from the regions' sum), records replaced by other text. */
interface SparseMap {
  regions: [number, number][];
  realSize: number;
  dataDelta: number;
  count: number | undefined;
  record: [string, string] | undefined;
}

const TiB = 2 ** 40;
const offsetArb = fc.oneof(fc.nat(70_000), fc.constantFrom(0, 4096, 1 << 20, 16 << 20, TiB, 2 ** 53 - 1));
/** A map as export writes it: regions in order, apart, within the size, data adding up. */
const validSparseArb: fc.Arbitrary<SparseMap> = fc
  .tuple(fc.array(fc.tuple(fc.nat(50_000), fc.integer({ min: 1, max: 2000 })), { maxLength: 3 }), fc.nat(50_000))
  .map(([pieces, tail]) => {
    let at = 0;
    const regions: [number, number][] = pieces.map(([gap, len]) => {
      const r: [number, number] = [at + gap, len];
      at += gap + len;
      return r;
    });
    return { regions, realSize: at + tail, dataDelta: 0, count: undefined, record: undefined };
  });
const anySparseArb: fc.Arbitrary<SparseMap> = fc.record({
  regions: fc.array(fc.tuple(offsetArb, fc.oneof(fc.nat(5000), fc.constantFrom(0, 4096, 2 ** 31))), {
    maxLength: 5,
  }),
  realSize: fc.oneof(fc.nat(100_000), fc.constantFrom(0, 16 << 20, TiB, 2 ** 53)),
  dataDelta: fc.constantFrom(0, 0, 0, -1, 1, 512),
  count: fc.option(fc.constantFrom(0, 1, 7, 65_537, 10 ** 9), { nil: undefined, freq: 5 }),
  record: fc.option(
    fc.tuple(
      fc.constantFrom('GNU.sparse.realsize', 'GNU.sparse.major', 'GNU.sparse.minor', 'GNU.sparse.name'),
      fc.constantFrom('', 'x', '-1', '1e3', '0', '2', '../../victim/f', '/etc/passwd', 'part/root/y'),
    ),
    { nil: undefined, freq: 4 },
  ),
});
const sparseArb = fc.oneof({ arbitrary: validSparseArb, weight: 3 }, { arbitrary: anySparseArb, weight: 2 });

const component = fc.constantFrom(
  'part',
  'root',
  'cow',
  'etc',
  'upper',
  'work',
  'rw',
  'overlay',
  'skeleton',
  'disk.img',
  'x',
  'y',
  '..',
  '.',
  '',
  'victim',
);
const pathArb = fc.oneof(
  // mostly below a real part, so the deeper rules are reached
  fc.array(component, { minLength: 0, maxLength: 4 }).map((c) => ['part', 'root', ...c].join('/')),
  fc.array(component, { minLength: 1, maxLength: 5 }).map((c) => c.join('/')),
  fc.array(component, { minLength: 1, maxLength: 3 }).map((c) => `/${c.join('/')}`),
  fc.constantFrom('part/root/', 'part/cow/', 'part/cow/etc/', 'part/cow/etc/upper/', 'skeleton/', 'part/rw/'),
);
const entryArb: fc.Arbitrary<Entry> = fc.record({
  path: pathArb,
  type: fc.constantFrom<Kind>(
    'File',
    'Directory',
    'Directory',
    'SymbolicLink',
    'Link',
    'CharacterDevice',
    'FIFO',
    'Sparse',
    'Sparse',
  ),
  linkpath: fc.oneof(
    fc.constantFrom('/', '/etc/passwd', '../..', '../../../victim', 'x', 'part/root/x', 'part/root/a', '..'),
    pathArb,
  ),
  body: fc.string({ maxLength: 40 }),
  extra: fc.constantFrom(0, 0, 0, 1, 600),
  sparse: sparseArb,
});

const pad512 = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);

/** A sparse entry as export writes one (pax records, the map padded to a block, the data). */
function encodeSparse(e: Entry): Buffer {
  const m = e.sparse;
  const s = sparseHeader(e.path.replace(/\/+$/, '') || 'f', m.realSize);
  const records = m.record ? { ...s.records, [m.record[0]]: m.record[1] } : s.records;
  const map = `${m.count ?? m.regions.length}\n${m.regions.map(([o, l]) => `${o}\n${l}\n`).join('')}`;
  const sum = m.regions.reduce((n, [, l]) => n + l, 0);
  // data the size the map adds up to (plus or minus), bounded: a huge region is simply short
  const data = Buffer.alloc(Math.max(0, Math.min(sum, 20_000) + m.dataDelta), 0x41);
  const body = Buffer.concat([pad512(Buffer.from(map, 'latin1')), data]);
  const fields = { path: s.path, size: body.length, uid: 0, gid: 0, mtime: new Date(0) };
  const h = new Header({ ...fields, type: 'File', mode: 0o644 });
  h.encode();
  return Buffer.concat([new PaxWith(fields, records).encode(), h.block as Buffer, pad512(body)]);
}

function encode(e: Entry): Buffer {
  if (e.type === 'Sparse') return encodeSparse(e);
  const withBody = e.type === 'File';
  const b = Buffer.from(withBody ? e.body : '');
  const h = new Header({
    path: e.path,
    type: e.type,
    mode: e.type === 'Directory' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    // a header may claim more than its body holds: the reader must not trust it
    size: withBody ? b.length + e.extra : 0,
    mtime: new Date(0),
    ...(e.type === 'SymbolicLink' || e.type === 'Link' ? { linkpath: e.linkpath } : {}),
  });
  h.encode();
  const parts = [h.block as Buffer];
  if (withBody) {
    const body = Buffer.concat([b, Buffer.alloc(e.extra)]);
    parts.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  return Buffer.concat(parts);
}

function archive(file: string, entries: Entry[], declaredBytes: number): void {
  const manifest = Buffer.from(JSON.stringify({ format: 'jailyard-export', version: 1, bytes: declaredBytes }));
  const h = new Header({
    path: 'jailyard-export.json',
    type: 'File',
    mode: 0o644,
    size: manifest.length,
    mtime: new Date(0),
  });
  h.encode();
  const tar = Buffer.concat([
    h.block as Buffer,
    manifest,
    Buffer.alloc((512 - (manifest.length % 512)) % 512),
    ...entries.map(encode),
    Buffer.alloc(1024),
  ]);
  writeFile(file, zstdCompressSync(tar));
}

/** The most disk a file below `root` takes (bytes allocated): holes must stay holes. */
function mostAllocated(root: string): number {
  let most = 0;
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (st.isFile()) most = Math.max(most, st.blocks * 512);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
  };
  walk(root);
  return most;
}

/** The inodes of every file below `root` (lstat: links are not followed). */
function inodes(root: string): Set<number> {
  const out = new Set<number>();
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (st.isFile()) out.add(st.ino);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
  };
  walk(root);
  return out;
}

test('fuzz the archive reader: accepted or refused with JY_ERR_ARCHIVE, never a write outside its staging folder', {
  timeout: 600_000,
}, async () => {
  let run = 0;
  let accepted = 0;
  let acceptedSparse = 0;
  const passwd = statSync('/etc/passwd').ino;
  const before = readdirSync(dir).sort();
  await fc.assert(
    fc.asyncProperty(
      fc.array(entryArb, { minLength: 1, maxLength: 12 }),
      fc.constantFrom(0, 100, 1 << 20),
      async (entries, declared) => {
        const file = join(dir, `a${run}.tar.zst`);
        const staging = join(dir, `s${run++}`);
        mkdirSync(staging, { mode: 0o700 });
        archive(file, entries, declared);
        try {
          await readArchive(file, staging, PART_NAMES, {
            onManifest: (m) => ({ bytes: (m as { bytes: number }).bytes, entries: 100 }),
          });
          if (entries.some((e) => e.type === 'Sparse')) acceptedSparse++;
          accepted++;
          // no hard link to a host file (the same inode as /etc/passwd)
          assert.equal(inodes(staging).has(passwd), false, 'a hard link to a host file');
          // a sparse entry stores at most ~20 KB of data here: its file takes no more disk
          assert.ok(mostAllocated(staging) <= 1 << 20, 'a file takes more disk than its data');
        } catch (e) {
          assert.ok(e instanceof JailyardError, `not a JailyardError: ${String(e)}`);
          assert.equal(e.code, 'JY_ERR_ARCHIVE', e.message);
        } finally {
          assert.deepEqual(readdirSync(victim), [], 'nothing written into the victim folder');
          assert.deepEqual(
            readdirSync(dir)
              .filter((n) => !/^(a|s)\d+(\.tar\.zst)?$/.test(n))
              .sort(),
            before,
            'nothing made beside the staging folder',
          );
          rmSync(staging, { recursive: true, force: true });
          rmSync(file, { force: true });
        }
      },
    ),
    { numRuns: budget(300, 20_000) },
  );
  assert.ok(accepted > 0, 'some generated archives are valid (the generator reaches the writing paths)');
  assert.ok(acceptedSparse > 0, 'some archives with sparse entries are valid (the sparse writer is reached)');
});
