// Host-side walks of a tree someone else writes meanwhile (a user-namespace jail's start
// moving its tree into its uid range; snapshot, clone and export copies), raced by a writer
// that swaps a file for a symlink to a host file (renameat2 RENAME_EXCHANGE) as fast as it
// can. Audit: the range shift chmod'ed the host file to the jail file's 6777 at the first
// try, and 4 snapshots in 10 held the host file's content. The host file must stay as it was,
// and no copy may hold its content. (The writer is a local user who reaches a jail's `path`,
// or another jail sharing the tree.) Plus the mechanism itself: a directory held open keeps
// its entries when its name is swapped for a link; an entry swapped for a link is not opened.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSame, PinnedDir } from '../../src/skeleton/pinned.ts';
import { shiftOwnership } from '../../src/platform/linux/userns.ts';
import { copyExact } from '../../src/portable/tree.ts';

const PAIRS = 64;

/** python3 swapping DIR/fN and DIR/sN (a link to the victim) until killed. */
const SWAPPER = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1]
n = int(sys.argv[2])
pairs = [(os.path.join(d, 'f%d' % i).encode(), os.path.join(d, 's%d' % i).encode()) for i in range(n)]
print('go', flush=True)
while True:
    for a, b in pairs:
        libc.renameat2(-100, a, -100, b, 2)
`;

/** A tree DIR with PAIRS files fN (uid 1000, mode 6777, "jail") and links sN -> victim. */
function raceTree(dir: string, victim: string): void {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < PAIRS; i++) {
    const f = join(dir, `f${i}`);
    writeFileSync(f, 'jail\n');
    chownSync(f, 1000, 1000);
    chmodSync(f, 0o6777);
    symlinkSync(victim, join(dir, `s${i}`));
  }
}

async function racing<T>(dir: string, body: () => T): Promise<T> {
  const swapper = spawn('python3', ['-c', SWAPPER, dir, String(PAIRS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      swapper.stdout.once('data', () => resolve());
      swapper.once('exit', (code) => reject(new Error(`swapper exited ${code}`)));
    });
    return body();
  } finally {
    swapper.kill('SIGKILL');
    await new Promise((r) =>
      swapper.exitCode !== null || swapper.signalCode !== null ? r(0) : swapper.once('exit', r),
    );
  }
}

function hostFile(t: { after(fn: () => void): void }): { work: string; victim: string; before: string } {
  const work = mkdtempSync(join(tmpdir(), 'jy-walkrace-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const victim = join(work, 'host-secret');
  writeFileSync(victim, 'host secret\n', { mode: 0o600 });
  const st = statSync(victim);
  return { work, victim, before: `${st.mode} ${st.uid} ${st.gid}` };
}

test("a userns start's shift, raced by a writer swapping files for links to a host file: the host file keeps its mode and owner", async (t) => {
  const { work, victim, before } = hostFile(t);
  const tree = join(work, 'root');
  raceTree(join(tree, 'tmp'), victim);
  const range = { slot: 7, base: 0x40000000 + 7 * 65536, count: 65536 };
  const area = { first: 0x40000000, size: 65536, slots: 16 };
  let shifted = 0;
  const until = Date.now() + 2500;
  for (let round = 0; round < 3 || Date.now() < until; round++) {
    shifted += await racing(join(tree, 'tmp'), () => shiftOwnership([tree], range, new Set(), area).shifted);
    // the writer stopped: its files back to the host's ids for the next round
    for (const name of readdirSync(join(tree, 'tmp'))) {
      const p = join(tree, 'tmp', name);
      if (!lstatSync(p).isSymbolicLink()) {
        chownSync(p, 1000, 1000);
        chmodSync(p, 0o6777);
      }
    }
  }
  assert.ok(shifted > 0, 'the walk shifted the jail files it could');
  const st = statSync(victim);
  assert.equal(`${st.mode} ${st.uid} ${st.gid}`, before, 'the host file is as it was');
});

test('a copy (snapshot, clone, export) raced the same way never holds the host file', async (t) => {
  const { work, victim } = hostFile(t);
  const src = join(work, 'part');
  raceTree(join(src, 'tmp'), victim);
  const leaked: string[] = [];
  let copies = 0;
  await racing(join(src, 'tmp'), () => {
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      const dest = join(work, `copy-${copies++}`);
      copyExact(src, dest);
      for (const name of readdirSync(join(dest, 'tmp'))) {
        const p = join(dest, 'tmp', name);
        if (!lstatSync(p).isSymbolicLink() && readFileSync(p, 'utf8') !== 'jail\n') leaked.push(p);
      }
      rmSync(dest, { recursive: true, force: true });
    }
  });
  assert.ok(copies > 3, `copies made: ${copies}`);
  assert.deepEqual(leaked, [], 'no copy holds the host file');
});

test('the mechanism: a directory held open keeps its entries when its name becomes a link; a swapped entry is not opened', (t) => {
  const { work, victim } = hostFile(t);
  const dir = join(work, 'd');
  mkdirSync(dir);
  writeFileSync(join(dir, 'own'), 'jail\n');
  const pinned = PinnedDir.open(dir, lstatSync(dir));
  assert.ok(pinned);
  t.after(() => pinned.close());
  // the writer moves the directory away and puts a link to the host's folder in its place
  renameSync(dir, join(work, 'moved'));
  symlinkSync(work, dir);
  assert.deepEqual(pinned.names(), ['own']);
  assert.equal(readFileSync(pinned.entry('own'), 'utf8'), 'jail\n');
  // a file lstat'ed, then swapped for a link to the host file: not opened
  const f = join(work, 'moved', 'own');
  const seen = lstatSync(f);
  rmSync(f);
  symlinkSync(victim, f);
  assert.equal(openSame(f, seen), undefined);
});
