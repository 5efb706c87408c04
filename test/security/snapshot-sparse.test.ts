// Red-team run 2 (MODERATE): a jail's sparse file (`truncate -s 200M /var/sparse`, 0 bytes in
// the jail) became 200 MB of host disk at the next snapshot (copy_file_range writes the holes
// as data): `truncate -s 10T` would fill the host's disk through a host-side step. Copies of a
// jail's files (snapshot create, rollback, clone; import of an export) keep the holes, a copy
// the destination has no room for is refused before anything is written (JY_ERR_NO_SPACE,
// naming the jail), and the sparse way of copying reads the descriptor the walk checked, so
// a file swapped for a link to a host file is never copied.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JailyardError } from '../../src/errors.ts';
import { openSame } from '../../src/skeleton/pinned.ts';
import { checkSpace, copyExact, copyOpenFile } from '../../src/portable/tree.ts';
import { assertSparseCopy, findFile, SecurityHost } from './helpers.ts';

const MiB = 1 << 20;
const GiB = 1 << 30;
/** Where the jail writes into its sparse file (the rest is holes). */
const MARKS = [0, 300 * MiB + 17, GiB - 16];

let h: SecurityHost;
let work: string;

before(async () => {
  h = await SecurityHost.open('sparse');
  work = mkdtempSync(join(tmpdir(), 'jy-sparse-work-'));
});

after(async () => {
  rmSync(work, { recursive: true, force: true });
  await h.close();
});

/** Allocated bytes of a tree (du: what the host's disk pays). */
const du = (path: string): number =>
  Number(execFileSync('du', ['-s', '-B1', path], { encoding: 'utf8' }).split('\t')[0]);

test('a 1 GiB sparse file of a jail costs next to nothing on the host: snapshot, clone, rollback, export/import', {
  timeout: 300_000,
}, async () => {
  await h.jail('sp1');
  const marks = MARKS.map((o) => `printf 'mark@${o}' | dd of=/var/sparse bs=1 seek=${o} conv=notrunc 2>/dev/null`);
  const r = await h.sh(
    'sp1',
    [
      `truncate -s ${GiB} /var/sparse`,
      ...marks,
      'truncate -s 300000 /var/small',
      'printf x >> /var/small',
      'du -k /var/sparse',
    ].join(' && '),
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await h.jy('stop', 'sp1')).code, 0);
  const jailDir = h.jailDir('sp1');
  const original = findFile(jailDir, 'sparse');
  assert.ok(statSync(original).blocks * 512 <= 64 * 1024, 'the jail wrote a sparse file');
  const smallOriginal = findFile(jailDir, 'small');
  // the copy must not leave it out: a copy of the real file, made outside the jail's folder
  const reference = join(work, 'reference');
  execFileSync('cp', ['--sparse=always', '--', original, reference]);

  // snapshot create
  let t0 = Date.now();
  let c = await h.jy('snapshot', 'create', 'sp1', 's1');
  const snapMs = Date.now() - t0;
  assert.equal(c.code, 0, c.stderr);
  const snapDir = join(jailDir, 'snapshots', 's1');
  assertSparseCopy(findFile(snapDir, 'sparse'), reference, GiB, 64 * 1024, 'snapshot');
  execFileSync('cmp', ['--', smallOriginal, findFile(snapDir, 'small')]);
  assert.ok(du(snapDir) < 64 * MiB, `the snapshot uses ${du(snapDir)} bytes of host disk`);

  // clone
  t0 = Date.now();
  c = await h.jy('clone', 'sp1', 'sp2');
  const cloneMs = Date.now() - t0;
  assert.equal(c.code, 0, c.stderr);
  h.jails.add('sp2');
  assertSparseCopy(findFile(h.jailDir('sp2'), 'sparse'), reference, GiB, 64 * 1024, 'clone');

  // the jail changes its file, then rolls back
  assert.equal((await h.jy('start', 'sp1')).code, 0);
  assert.equal((await h.sh('sp1', 'rm /var/sparse && echo other > /var/sparse')).code, 0);
  assert.equal((await h.jy('stop', 'sp1')).code, 0);
  t0 = Date.now();
  c = await h.jy('snapshot', 'rollback', 'sp1', 's1');
  const rollbackMs = Date.now() - t0;
  assert.equal(c.code, 0, c.stderr);
  assertSparseCopy(original, reference, GiB, 64 * 1024, 'rollback');
  assert.ok(du(jailDir) < 256 * MiB, `the jail's folder uses ${du(jailDir)} bytes after the rollback`);

  // export (the data regions only: a GNU tar sparse entry, test/security/export-sparse) and import (holes again)
  const archive = join(work, 'sp1.tar.zst');
  t0 = Date.now();
  c = await h.jy('export', 'sp1', '-o', archive);
  const exportMs = Date.now() - t0;
  assert.equal(c.code, 0, c.stderr);
  assert.ok(statSync(archive).size < 8 * MiB, `the archive is ${statSync(archive).size} bytes`);
  t0 = Date.now();
  c = await h.jy('import', archive, '--name', 'sp3', 'meta.sectest=1');
  const importMs = Date.now() - t0;
  assert.equal(c.code, 0, c.stderr);
  h.jails.add('sp3');
  assertSparseCopy(findFile(h.jailDir('sp3'), 'sparse'), reference, GiB, 64 * 1024, 'import');
  console.log(
    `# 1 GiB sparse file: snapshot ${snapMs} ms, clone ${cloneMs} ms, rollback ${rollbackMs} ms, export ${exportMs} ms (archive ${statSync(archive).size} bytes), import ${importMs} ms`,
  );

  // the jail still runs and reads its file as it wrote it
  assert.equal((await h.jy('start', 'sp1')).code, 0);
  const back = await h.sh('sp1', `dd if=/var/sparse bs=1 skip=${MARKS[1]} count=14 2>/dev/null`);
  assert.equal(back.stdout, `mark@${MARKS[1]}`);
  assert.equal((await h.jy('stop', 'sp1')).code, 0);
});

test('a snapshot the disk has no room for is refused before anything is written, naming the jail', {
  timeout: 120_000,
}, async () => {
  await h.jail('sp4');
  // 100 MiB of real data (not holes)
  const r = await h.sh('sp4', 'head -c 104857600 /dev/urandom > /var/full');
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await h.jy('stop', 'sp4')).code, 0);
  // the snapshots folder on a 128 MiB filesystem (64 MiB of it kept free)
  const snaps = join(h.jailDir('sp4'), 'snapshots');
  mkdirSync(snaps, { recursive: true, mode: 0o700 });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128m,mode=0700', 'jy-sparse-test', snaps]);
  try {
    const c = await h.jy('snapshot', 'create', 'sp4', 's1');
    assert.equal(c.code, 1, c.stderr);
    assert.match(c.stderr, /jail "sp4".*not enough space for the snapshot/);
    assert.deepEqual(readdirSync(snaps), [], 'nothing was written');
  } finally {
    execFileSync('umount', [snaps]);
  }
});

test('space is counted as allocated: a 1 GiB sparse tree fits a 128 MiB filesystem, 100 MiB of data does not', (t) => {
  const small = join(work, 'small-fs');
  mkdirSync(small);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128m', 'jy-sparse-test', small]);
  t.after(() => execFileSync('umount', [small]));
  const sparse = join(work, 'tree-sparse');
  mkdirSync(sparse);
  writeFileSync(join(sparse, 'big'), 'head');
  truncateSync(join(sparse, 'big'), GiB);
  checkSpace([{ src: sparse, destDir: small }], 'spx', 'snapshot');
  // and the copy keeps its holes there (a full copy would not fit: ENOSPC)
  copyExact(sparse, join(small, 'copy'));
  assert.equal(statSync(join(small, 'copy', 'big')).size, GiB);
  assert.ok(statSync(join(small, 'copy', 'big')).blocks * 512 <= 64 * 1024);
  const dense = join(work, 'tree-dense');
  mkdirSync(dense);
  writeFileSync(join(dense, 'data'), Buffer.alloc(100 * MiB, 1));
  assert.throws(
    () => checkSpace([{ src: dense, destDir: small }], 'spx', 'clone'),
    (e: unknown) =>
      e instanceof JailyardError &&
      e.code === 'JY_ERR_NO_SPACE' &&
      e.place.jail === 'spx' &&
      /not enough space for the clone/.test(e.message),
  );
});

/** A sparse file: `text` at 0, then holes up to `size`. */
function sparseFile(path: string, text: string, size: number): void {
  writeFileSync(path, text);
  truncateSync(path, size);
}

const head = (path: string, n: number): string => {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(n);
    return b.subarray(0, readSync(fd, b, 0, n, 0)).toString();
  } finally {
    closeSync(fd);
  }
};

test('the sparse copy reads the descriptor the walk checked: a name swapped for a link to a host file meanwhile is not copied', () => {
  const victim = join(work, 'host-secret');
  sparseFile(victim, 'host secret\n', 8 * MiB);
  for (const size of [256 * 1024, 8 * MiB]) {
    // small (copied here) and large (cp(1)) sparse files
    const f = join(work, `jail-file-${size}`);
    sparseFile(f, 'jail\n', size);
    const seen = lstatSync(f);
    const fd = openSame(f, seen, constants.O_RDONLY);
    assert.ok(fd !== undefined);
    try {
      // the writer swaps the name for a link to the host's file after the check
      renameSync(f, `${f}.moved`);
      symlinkSync(victim, f);
      const dest = join(work, `copy-${size}`);
      copyOpenFile(fd, f, seen, dest);
      assert.equal(head(dest, 5), 'jail\n', "the copy holds the jail's file");
      assert.equal(statSync(dest).size, size);
      assert.ok(statSync(dest).blocks * 512 <= 64 * 1024, 'holes kept');
    } finally {
      closeSync(fd);
    }
  }
});

test('a copy raced by a writer swapping sparse files for links to a host file never holds the host file', async () => {
  const victim = join(work, 'host-secret-2');
  sparseFile(victim, 'host secret\n', 4 * MiB);
  const dir = join(work, 'race', 'tmp');
  mkdirSync(dir, { recursive: true });
  const PAIRS = 16;
  for (let i = 0; i < PAIRS; i++) {
    sparseFile(join(dir, `f${i}`), 'jail\n', i % 2 ? 4 * MiB : 128 * 1024);
    symlinkSync(victim, join(dir, `s${i}`));
  }
  const swapper = spawn(
    'python3',
    [
      '-c',
      `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
d, n = sys.argv[1], int(sys.argv[2])
pairs = [(os.path.join(d, 'f%d' % i).encode(), os.path.join(d, 's%d' % i).encode()) for i in range(n)]
print('go', flush=True)
while True:
    for a, b in pairs:
        libc.renameat2(-100, a, -100, b, 2)
`,
      dir,
      String(PAIRS),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const leaked: string[] = [];
  let copies = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      swapper.stdout.once('data', () => resolve());
      swapper.once('exit', (code) => reject(new Error(`swapper exited ${code}`)));
    });
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      const dest = join(work, `race-copy-${copies++}`);
      copyExact(join(work, 'race'), dest);
      for (const name of readdirSync(join(dest, 'tmp'))) {
        const p = join(dest, 'tmp', name);
        if (!lstatSync(p).isSymbolicLink() && head(p, 5) !== 'jail\n') leaked.push(p);
      }
      rmSync(dest, { recursive: true, force: true });
    }
  } finally {
    swapper.kill('SIGKILL');
    await new Promise((r) =>
      swapper.exitCode !== null || swapper.signalCode !== null ? r(0) : swapper.once('exit', r),
    );
  }
  assert.ok(copies > 3, `copies made: ${copies}`);
  assert.deepEqual(leaked, [], 'no copy holds the host file');
  // the host file is as it was
  assert.equal(readFileSync(victim, 'utf8').slice(0, 12), 'host secret\n');
});
