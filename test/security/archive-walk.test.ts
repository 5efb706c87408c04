// Red-team run 4: `export` walked the jail's tree by path (lstat, readdir and open of
// part/root/a/b/c, each looked up again from the top), unlike snapshot and clone, whose walk
// holds each directory open (skeleton/pinned.ts). A writer sharing the tree (another
// jail with a `mount` of it, a local user who reaches a jail's `path`: SECURITY.md, "A jail's
// processes against host-side steps") that swaps a directory for a link to a host folder
// between the readdir and the lstat of its entries made host root pack the host's file into
// the archive (import then hands it to any jail); one that swaps a file for a FIFO between the
// lstat and the open made the open block for ever (O_RDONLY without O_NONBLOCK): the export,
// and the daemon serving it (a synchronous open blocks its event loop), hung.
// The export runs in a child process here, so a hang is a failure and not a stuck test run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

const PAIRS = 32;
const ROOT = join(import.meta.dirname, '../..');

/** python3 swapping DIR/dN with DIR/lN (a link to a host folder) and DIR/fN with DIR/pN (a
 * FIFO) until killed. */
const SWAPPER = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1]
n = int(sys.argv[2])
pairs = []
for i in range(n):
    for a, b in (('d%d' % i, 'l%d' % i), ('f%d' % i, 'p%d' % i)):
        pairs.append((os.path.join(d, a).encode(), os.path.join(d, b).encode()))
print('go', flush=True)
while True:
    for a, b in pairs:
        libc.renameat2(-100, a, -100, b, 2)
`;

/** Exports SRC over and over for MS milliseconds (a child process); prints JSON
 * {exports, leaked, notes}. */
const EXPORTER = `
import { writeArchive } from ${JSON.stringify(join(ROOT, 'src/portable/archive.ts'))};
import { readFileSync, rmSync } from 'node:fs';
import { zstdDecompressSync } from 'node:zlib';
const [src, out, ms] = process.argv.slice(-3);
let exports = 0, leaked = 0;
const notes = new Set();
const until = Date.now() + Number(ms);
while (Date.now() < until) {
  const file = out + '/a' + exports + '.tar.zst';
  const r = await writeArchive(file, { test: 1 }, [{ prefix: 'part/root', path: src }]);
  for (const n of r.notes) notes.add(n.replace(/[0-9]+/g, 'N'));
  if (zstdDecompressSync(readFileSync(file)).includes('HOST SECRET')) leaked++;
  rmSync(file);
  exports++;
}
console.log(JSON.stringify({ exports, leaked, notes: [...notes] }));
`;

test('an export raced by a writer swapping directories for links to a host folder and files for FIFOs: no host file in the archive, no hang', {
  timeout: 90_000,
}, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'jy-rt4-archive-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const host = join(work, 'host');
  mkdirSync(host);
  writeFileSync(join(host, 'secret'), 'HOST SECRET\n', { mode: 0o600 });
  const src = join(work, 'part');
  const dir = join(src, 'tmp');
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < PAIRS; i++) {
    mkdirSync(join(dir, `d${i}`));
    writeFileSync(join(dir, `d${i}`, 'secret'), 'jail\n');
    symlinkSync(host, join(dir, `l${i}`));
    writeFileSync(join(dir, `f${i}`), 'jail\n');
    execFileSync('mkfifo', [join(dir, `p${i}`)]);
  }
  const out = join(work, 'out');
  mkdirSync(out);

  const swapper = spawn('python3', ['-c', SWAPPER, dir, String(PAIRS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const swapperGone = new Promise((r) => swapper.once('exit', r));
  try {
    await new Promise<void>((resolve, reject) => {
      swapper.stdout.once('data', () => resolve());
      swapper.once('exit', (code) => reject(new Error(`swapper exited ${code}`)));
    });
    const exporter = spawn(process.execPath, ['--input-type=module', '-e', EXPORTER, src, out, '3000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    exporter.stdout.on('data', (b) => (stdout += b));
    exporter.stderr.on('data', (b) => (stderr += b));
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      exporter.kill('SIGKILL');
    }, 30_000);
    const code = await new Promise((r) => exporter.once('exit', r));
    clearTimeout(timer);
    assert.equal(hung, false, 'an export hung (an open of a FIFO swapped in for a file blocks for ever)');
    assert.equal(code, 0, `the exporter failed: ${stderr}`);
    const r = JSON.parse(stdout) as { exports: number; leaked: number; notes: string[] };
    console.log(`# ${r.exports} exports raced; notes: ${r.notes.join(' | ')}`);
    assert.ok(r.exports >= 3, `exports made: ${r.exports}`);
    assert.equal(r.leaked, 0, `${r.leaked} of ${r.exports} archives hold the host's file`);
  } finally {
    swapper.kill('SIGKILL');
    await swapperGone;
  }
});
