// Red-team run 4: the copies of a jail's files (snapshot, clone, rollback: src/portable/tree.ts)
// decided how to copy a file from the walk's lstat, then copied the size they found when they
// started (copyFileSync: copy_file_range, which writes holes as data; the small sparse way
// read to the end; cp(1) the size it found). Whoever writes the tree meanwhile (a jail sharing
// it, SECURITY.md "A jail's processes against host-side steps") could make a 4 KiB file 1 TiB
// long by ftruncate between the lstat and the copy: host root then wrote zeros until the
// disk was full (the space check had counted 4 KiB), or read a terabyte of holes for hours. A
// copy now holds at most the size lstat saw, reads the holes of a large file not at all
// (native/jy-sparse copy: SEEK_DATA), and writes no zero block of a sparse one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statfsSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSame } from '../../src/skeleton/pinned.ts';
import { copyExact, copyOpenFile, treeSize } from '../../src/portable/tree.ts';

const MiB = 1 << 20;
const TiB = 2 ** 40;

let work: string;
/** A 64 MiB tmpfs: a copy that writes zeros for a grown file fills it (ENOSPC) at once. */
let small: string;

before(() => {
  work = mkdtempSync(join(tmpdir(), 'jy-rt4-bound-'));
  small = join(work, 'small-fs');
  mkdirSync(small);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0700', 'jy-rt4-bound', small]);
});

after(() => {
  execFileSync('umount', [small]);
  rmSync(work, { recursive: true, force: true });
});

const used = (dir: string): number => {
  const s = statfsSync(dir);
  return (s.blocks - s.bfree) * s.bsize;
};

/** lstat, open as the walk does, then let `grow` change the file, then copy it to `to`. */
function copyAfter(file: string, to: string, grow: () => void): void {
  const seen = lstatSync(file);
  const fd = openSame(file, seen, constants.O_RDONLY | constants.O_NONBLOCK);
  assert.ok(fd !== undefined);
  try {
    grow();
    copyOpenFile(fd, file, seen, to, 'var/f');
  } finally {
    closeSync(fd);
  }
}

for (const kind of ['a 4 KiB file', 'a 512 KiB sparse file', 'a 4 MiB sparse file'] as const) {
  test(`${kind} made 1 TiB long between the walk's lstat and the copy: copied at the size it had, quickly, no disk filled`, {
    timeout: 60_000,
  }, (t) => {
    const file = join(work, 'f');
    const size = kind === 'a 4 KiB file' ? 4096 : kind === 'a 512 KiB sparse file' ? 512 * 1024 : 4 * MiB;
    writeFileSync(file, Buffer.alloc(4096, 'j'));
    truncateSync(file, size);
    const to = join(small, 'copy');
    t.after(() => {
      rmSync(to, { force: true });
      rmSync(file, { force: true });
    });
    const before = used(small);
    const t0 = Date.now();
    copyAfter(file, to, () => truncateSync(file, TiB));
    const ms = Date.now() - t0;
    assert.equal(statSync(to).size, size, 'the copy has the size lstat saw');
    assert.ok(ms < 10_000, `the copy took ${ms} ms`);
    assert.ok(used(small) - before <= 1 * MiB, `the copy used ${used(small) - before} bytes of the destination`);
    assert.equal(
      execFileSync('head', ['-c', '4096', to], { encoding: 'latin1' }),
      'j'.repeat(4096),
      'the data is copied',
    );
  });
}

test('a large file that gains data after the lstat: the copy stops at the size lstat saw', (t) => {
  const file = join(work, 'g');
  writeFileSync(file, Buffer.alloc(2 * MiB, 'a'));
  const to = join(small, 'copy-g');
  t.after(() => {
    rmSync(to, { force: true });
    rmSync(file, { force: true });
  });
  copyAfter(file, to, () => writeFileSync(file, Buffer.alloc(16 * MiB, 'b'), { flag: 'a' }));
  assert.equal(statSync(to).size, 2 * MiB);
  execFileSync('cmp', ['-n', String(2 * MiB), '--', file, to]);
});

test('copyExact raced by a writer making a file 1 TiB long and small again: never more than the destination can spare', {
  timeout: 60_000,
}, async (t) => {
  const src = join(work, 'part');
  mkdirSync(join(src, 'var'), { recursive: true });
  const files = Array.from({ length: 16 }, (_, i) => join(src, 'var', `f${i}`));
  for (const f of files) writeFileSync(f, Buffer.alloc(4096, 'j'));
  t.after(() => rmSync(src, { recursive: true, force: true }));
  const writer = spawn(
    'python3',
    [
      '-c',
      `import os, sys
fs = sys.argv[1:]
print('go', flush=True)
while True:
    for f in fs:
        os.truncate(f, ${TiB})
        os.truncate(f, 4096)`,
      ...files,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const gone = new Promise((r) => writer.once('exit', r));
  try {
    await new Promise<void>((resolve, reject) => {
      writer.stdout.once('data', () => resolve());
      writer.once('exit', (code) => reject(new Error(`writer exited ${code}`)));
    });
    let copies = 0;
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      const dest = join(small, `c${copies++}`);
      copyExact(src, dest);
      for (const name of readdirSync(join(dest, 'var'))) {
        // the size lstat saw (4 KiB, or 1 TiB of holes), never zeros written as data
        const st = statSync(join(dest, 'var', name));
        assert.ok(st.size === 4096 || st.size === TiB, `${name}: ${st.size} bytes`);
        assert.ok(st.blocks * 512 <= 64 * 1024, `${name}: ${st.blocks * 512} bytes allocated for 4 KiB of data`);
      }
      rmSync(dest, { recursive: true, force: true });
    }
    assert.ok(copies >= 3, `copies made: ${copies}`);
  } finally {
    writer.kill('SIGKILL');
    await gone;
  }
});

test('the space check (treeSize) raced by a writer swapping a directory for a link to a host folder never counts the host folder', {
  timeout: 60_000,
}, async (t) => {
  const src = join(work, 'part2');
  const host = join(work, 'host-big');
  mkdirSync(host);
  // the host folder: 2000 entries a walk through the link would count
  for (let i = 0; i < 2000; i++) writeFileSync(join(host, `h${i}`), '');
  const pairs = 16;
  for (let i = 0; i < pairs; i++) {
    mkdirSync(join(src, `d${i}`), { recursive: true });
    writeFileSync(join(src, `d${i}`, 'f'), 'jail');
    symlinkSync(host, join(src, `l${i}`));
  }
  t.after(() => {
    rmSync(src, { recursive: true, force: true });
    rmSync(host, { recursive: true, force: true });
  });
  const own = 1 + pairs * 3;
  const swapper = spawn(
    'python3',
    [
      '-c',
      `import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1]
pairs = [(os.path.join(d, 'd%d' % i).encode(), os.path.join(d, 'l%d' % i).encode()) for i in range(${pairs})]
print('go', flush=True)
while True:
    for a, b in pairs:
        libc.renameat2(-100, a, -100, b, 2)`,
      src,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const gone = new Promise((r) => swapper.once('exit', r));
  let most = 0;
  let walks = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      swapper.stdout.once('data', () => resolve());
      swapper.once('exit', (code) => reject(new Error(`swapper exited ${code}`)));
    });
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      most = Math.max(most, treeSize(src).entries);
      walks++;
    }
  } finally {
    swapper.kill('SIGKILL');
    await gone;
  }
  assert.ok(walks > 3, `walks: ${walks}`);
  // a directory seen twice as the names swap is the jail's own; the host folder would add 2000
  assert.ok(most < 2 * own, `a walk counted ${most} entries; the tree has ${own}`);
});
