// Export keeps a sparse file's holes: a jail's 1 GiB file with a few data regions is stored as
// a GNU tar sparse entry (PAX 1.0: its data regions only), not as 1 GiB of zeros that zstd
// makes small but export had to read (~2 s per GiB) and import to scan. The archive's tar
// stream is checked as written (its size, GNU tar lists and extracts it sparse, byte-exact),
// the import is sparse and byte-exact. Sparse entries are hostile input on import: maps out
// of order, overlapping, beyond the size, too long, not numbers, or not adding up to the
// entry are refused and leave nothing; an archive GNU tar made (tar --posix --sparse) reads.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { Header } from 'tar';
import { JailyardError } from '../../src/errors.ts';
import { readArchive } from '../../src/portable/archive.ts';
import { PaxWith, sparseHeader } from '../../src/portable/sparse-tar.ts';
import { assertSparseCopy, findFile, SecurityHost } from './helpers.ts';

const KiB = 1024;
const MiB = 1 << 20;
const GiB = 1 << 30;
/** Where the jail writes text marks into its sparse file (the rest is holes, but below). */
const MARKS = [0, 300 * MiB + 17, GiB - 16];
/** 64 KiB of random bytes in the middle of the file. */
const RANDOM_AT = 700 * MiB;

let h: SecurityHost;
let work: string;

before(async () => {
  h = await SecurityHost.open('left-xsparse');
  work = mkdtempSync(join(tmpdir(), 'jy-left-xsparse-work-'));
});

after(async () => {
  rmSync(work, { recursive: true, force: true });
  await h.close();
});

function sha(path: string, offset: number, length: number): string {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(length);
    assert.equal(readSync(fd, b, 0, length, offset), length);
    return createHash('sha256').update(b).digest('hex');
  } finally {
    closeSync(fd);
  }
}

/** Size 1 GiB, next to no blocks, and the same bytes as `reference`, the random region too. */
function assertSparseExport(path: string, reference: string, what: string): void {
  assertSparseCopy(path, reference, GiB, 512 * KiB, what);
  assert.equal(sha(path, RANDOM_AT, 64 * KiB), sha(reference, RANDOM_AT, 64 * KiB), `${what}: the random region`);
}

test('export stores a 1 GiB sparse file as its data regions; GNU tar and import read it back sparse, byte-exact', {
  timeout: 300_000,
}, async () => {
  await h.jail('lfsp1');
  const marks = MARKS.map((o) => `printf 'mark@${o}' | dd of=/var/sparse bs=1 seek=${o} conv=notrunc 2>/dev/null`);
  const r = await h.sh(
    'lfsp1',
    [
      `truncate -s ${GiB} /var/sparse`,
      ...marks,
      `head -c 65536 /dev/urandom | dd of=/var/sparse bs=65536 seek=${RANDOM_AT / (64 * KiB)} conv=notrunc 2>/dev/null`,
    ].join(' && '),
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await h.jy('stop', 'lfsp1')).code, 0);
  const original = findFile(h.jailDir('lfsp1'), 'sparse');
  assert.ok(statSync(original).blocks * 512 <= 512 * KiB, 'the jail wrote a sparse file');
  const reference = join(work, 'reference');
  execFileSync('cp', ['--sparse=always', '--', original, reference]);

  const archive = join(work, 'lfsp1.tar.zst');
  let c = await h.jy('export', 'lfsp1', '-o', archive);
  assert.equal(c.code, 0, c.stderr);
  assert.doesNotMatch(c.stderr, /note:/);
  // what export wrote: the tar stream holds the data regions, not 1 GiB of zeros (zstd would
  // hide those in the archive's size; the stream's size shows them)
  let stream: Buffer;
  try {
    stream = zstdDecompressSync(readFileSync(archive), { maxOutputLength: 16 * MiB });
  } catch (e) {
    assert.fail(`the archive's tar stream is larger than 16 MiB: the holes were stored (${(e as Error).message})`);
  }
  assert.ok(stream.length < 4 * MiB, `tar stream of ${stream.length} bytes`);
  const tarFile = join(work, 'lfsp1.tar');
  writeFileSync(tarFile, stream);
  // a standard archive: GNU tar lists the file by its name and size, and extracts it sparse
  const listing = execFileSync('tar', ['-tvf', tarFile], { encoding: 'utf8' });
  const line = listing.split('\n').find((l) => l.endsWith('/sparse'));
  assert.ok(line, `GNU tar lists the file by its name:\n${listing}`);
  assert.match(line, new RegExp(` ${GiB} `), line);
  assert.doesNotMatch(listing, /GNUSparseFile/);
  const gnu = join(work, 'gnu');
  mkdirSync(gnu);
  execFileSync('tar', ['-C', gnu, '-xf', tarFile]);
  assertSparseExport(findFile(gnu, 'sparse'), reference, 'GNU tar -x');

  c = await h.jy('import', archive, '--name', 'lfsp2', 'meta.sectest=1');
  assert.equal(c.code, 0, c.stderr);
  h.jails.add('lfsp2');
  assertSparseExport(findFile(h.jailDir('lfsp2'), 'sparse'), reference, 'import');
  // the imported jail reads its file as the first one wrote it
  assert.equal((await h.jy('start', 'lfsp2')).code, 0);
  const back = await h.sh('lfsp2', `dd if=/var/sparse bs=1 skip=${MARKS[1]} count=14 2>/dev/null`);
  assert.equal(back.stdout, `mark@${MARKS[1]}`);
  assert.equal((await h.jy('stop', 'lfsp2')).code, 0);
});

// ---- hostile sparse entries, read by the archive reader itself (no jail) ----

const BLOCK = 512;
const padTo = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((BLOCK - (b.length % BLOCK)) % BLOCK)]);

function entry(path: string, type: 'File' | 'Directory', body: Buffer = Buffer.alloc(0)): Buffer {
  const hd = new Header({ path, type, size: body.length, mode: 0o644, uid: 0, gid: 0, mtime: new Date(0) });
  hd.encode();
  return Buffer.concat([hd.block as Buffer, padTo(body)]);
}

/** A sparse entry for part/root/f of `realSize`: `map` (text) padded, then `data`. */
function sparseEntry(map: string, data: Buffer, realSize: number, records?: Record<string, string>): Buffer {
  const s = sparseHeader('part/root/f', realSize);
  const body = Buffer.concat([padTo(Buffer.from(map, 'latin1')), data]);
  const fields = { path: s.path, size: body.length, uid: 0, gid: 0, mtime: new Date(0) };
  const hd = new Header({ ...fields, type: 'File', mode: 0o644 });
  hd.encode();
  return Buffer.concat([new PaxWith(fields, records ?? s.records).encode(), hd.block as Buffer, padTo(body)]);
}

function archiveOf(...entries: Buffer[]): string {
  const file = join(work, `hostile-${Math.random().toString(36).slice(2)}.tar.zst`);
  const manifest = entry('jailyard-export.json', 'File', Buffer.from('{}'));
  writeFileSync(
    file,
    zstdCompressSync(Buffer.concat([manifest, entry('part/root/', 'Directory'), ...entries, Buffer.alloc(1024)])),
  );
  return file;
}

async function read(file: string): Promise<{ staging: string }> {
  const staging = mkdtempSync(join(work, 'staging-'));
  await readArchive(file, staging, ['root'], { onManifest: () => ({ bytes: 2 ** 40, entries: 100 }) });
  return { staging };
}

test('a sparse entry: regions at their offsets, holes stay holes; a hostile map is refused', async () => {
  const data = Buffer.from('AAAABBBBBB');
  const ok = await read(archiveOf(sparseEntry(`2\n4096\n4\n${8 * MiB}\n6\n`, data, 16 * MiB)));
  const f = join(ok.staging, 'part/root/f');
  assert.equal(statSync(f).size, 16 * MiB);
  assert.ok(statSync(f).blocks * 512 <= 64 * KiB);
  const b = Buffer.alloc(6);
  const fd = openSync(f, 'r');
  readSync(fd, b, 0, 4, 4096);
  assert.equal(b.subarray(0, 4).toString(), 'AAAA');
  readSync(fd, b, 0, 6, 8 * MiB);
  assert.equal(b.toString(), 'BBBBBB');
  closeSync(fd);

  const cases: { what: string; archive: string; why: RegExp }[] = [
    {
      what: 'regions out of order',
      archive: archiveOf(sparseEntry(`2\n4096\n4\n100\n6\n`, data, 16 * MiB)),
      why: /out of order, overlapping or beyond/,
    },
    {
      what: 'overlapping regions',
      archive: archiveOf(sparseEntry(`2\n4096\n4\n4098\n6\n`, data, 16 * MiB)),
      why: /out of order, overlapping or beyond/,
    },
    {
      what: 'a region beyond the size',
      archive: archiveOf(sparseEntry(`2\n4096\n4\n${16 * MiB - 2}\n6\n`, data, 16 * MiB)),
      why: /out of order, overlapping or beyond/,
    },
    {
      what: 'regions that do not add up to the entry',
      archive: archiveOf(sparseEntry(`2\n4096\n4\n${8 * MiB}\n5\n`, data, 16 * MiB)),
      why: /do not add up/,
    },
    {
      what: 'a map that is not numbers',
      archive: archiveOf(sparseEntry(`2\n4096\n-4\n${8 * MiB}\n6\n`, data, 16 * MiB)),
      why: /other than numbers/,
    },
    {
      what: 'a map of too many regions',
      archive: archiveOf(sparseEntry(`99999999\n0\n1\n`, data, 16 * MiB)),
      why: /more than \d+ regions/,
    },
    {
      what: 'a map longer than any well-formed one',
      archive: archiveOf(sparseEntry(`${'0'.repeat(4 * MiB)}`, data, 16 * MiB)),
      why: /number too long|too long/,
    },
    {
      what: 'another sparse format (GNU PAX 0.1)',
      archive: archiveOf(
        sparseEntry(`1\n0\n10\n`, data, 16 * MiB, {
          'GNU.sparse.major': '0',
          'GNU.sparse.minor': '1',
          'GNU.sparse.name': 'part/root/f',
          'GNU.sparse.realsize': String(16 * MiB),
        }),
      ),
      why: /sparse format other than GNU PAX 1\.0/,
    },
    {
      what: 'a sparse name outside the parts',
      archive: archiveOf(
        sparseEntry(`1\n0\n10\n`, data, 16 * MiB, {
          ...sparseHeader('part/root/f', 16 * MiB).records,
          'GNU.sparse.name': '../../etc/f',
        }),
      ),
      why: /component|outside/,
    },
  ];
  for (const c of cases) {
    const staging = mkdtempSync(join(work, 'staging-'));
    await assert.rejects(
      readArchive(c.archive, staging, ['root'], { onManifest: () => ({ bytes: 2 ** 40, entries: 100 }) }),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_ARCHIVE' && c.why.test(e.message),
      c.what,
    );
  }
});

test('an archive GNU tar made with sparse entries (tar --posix --sparse) reads, holes kept', async () => {
  const src = join(work, 'gnu-src');
  mkdirSync(join(src, 'part/root'), { recursive: true });
  writeFileSync(join(src, 'jailyard-export.json'), '{}');
  const f = join(src, 'part/root/big');
  execFileSync('truncate', ['-s', String(GiB), f]);
  execFileSync('sh', ['-c', `printf middle | dd of="$1" bs=1 seek=${512 * MiB + 3} conv=notrunc 2>/dev/null`, 'sh', f]);
  const tarFile = join(work, 'gnu.tar');
  execFileSync('tar', ['--posix', '--sparse', '-C', src, '-cf', tarFile, 'jailyard-export.json', 'part/root']);
  const archive = join(work, 'gnu.tar.zst');
  writeFileSync(archive, zstdCompressSync(readFileSync(tarFile)));
  const { staging } = await read(archive);
  const got = join(staging, 'part/root/big');
  assert.equal(statSync(got).size, GiB);
  assert.ok(statSync(got).blocks * 512 <= 64 * KiB);
  execFileSync('cmp', ['--', f, got]);
});
