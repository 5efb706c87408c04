// Red-team run 4: `jailyard upgrade` merges a stopped thin jail's writable part with the new
// skeleton version (src/skeleton/merge.ts) as host root. It checked each directory on the way
// (ensureDirsInRoot: lstat, no link) and then renamed by path: a writer sharing the jail's
// tree (SECURITY.md, "A jail's processes against host-side steps") that swaps `etc` for a
// link to a host folder between the check and the renames made host root move the host's
// `etc/passwd` into the jail's tree (the upgrade's backup) and the skeleton's new one over
// it in the host folder; the jail's side of the merge was read by path too (the host's file
// merged into the jail's). The renames and reads now go through the directories held open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { upgradeWritable } from '../../src/skeleton/merge.ts';

const ROOTS = 48;

/** python3 swapping ROOT/etc with ROOT/etcl (a link to a host folder) in every root. */
const SWAPPER = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pairs = [(os.path.join(r, 'etc').encode(), os.path.join(r, 'etcl').encode()) for r in sys.argv[1:]]
print('go', flush=True)
while True:
    for a, b in pairs:
        libc.renameat2(-100, a, -100, b, 2)
`;

test("an upgrade raced by a writer swapping the jail's etc for a link to a host folder never writes or moves a host file", {
  timeout: 120_000,
}, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'jy-rt4-upgrade-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const host = join(work, 'host-etc');
  mkdirSync(host);
  writeFileSync(join(host, 'passwd'), 'HOST\n', { mode: 0o644 });
  writeFileSync(join(host, 'group'), 'HOSTGROUP\n', { mode: 0o644 });
  const seeds = { old: join(work, 'seed-old'), neu: join(work, 'seed-new') };
  for (const [dir, v] of [
    [seeds.old, 'old'],
    [seeds.neu, 'new'],
  ] as const) {
    mkdirSync(join(dir, 'etc'), { recursive: true });
    writeFileSync(join(dir, 'etc', 'passwd'), `${v}\n`);
    writeFileSync(join(dir, 'etc', 'group'), `${v}\n`);
    writeFileSync(join(dir, 'etc', `only-${v}`), `${v}\n`);
  }
  const roots: string[] = [];
  for (let i = 0; i < ROOTS; i++) {
    const root = join(work, `root${i}`);
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(join(root, 'etc', 'passwd'), 'old\n');
    writeFileSync(join(root, 'etc', 'group'), 'old\n');
    writeFileSync(join(root, 'etc', 'only-old'), 'old\n');
    symlinkSync(host, join(root, 'etcl'));
    roots.push(root);
  }
  const swapper = spawn('python3', ['-c', SWAPPER, ...roots], { stdio: ['ignore', 'pipe', 'inherit'] });
  const gone = new Promise((r) => swapper.once('exit', r));
  let done = 0;
  let refused = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      swapper.stdout.once('data', () => resolve());
      swapper.once('exit', (code) => reject(new Error(`swapper exited ${code}`)));
    });
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      for (const root of roots) {
        try {
          upgradeWritable({ jail: 'rt4up', jailRoot: root, oldSeed: seeds.old, newSeed: seeds.neu, dirs: ['etc'] });
          done++;
        } catch {
          refused++;
        }
      }
    }
  } finally {
    swapper.kill('SIGKILL');
    await gone;
  }
  console.log(`# ${done} upgrades done, ${refused} refused`);
  assert.ok(done + refused > ROOTS, 'the upgrades ran');
  assert.deepEqual(readdirSync(host).sort(), ['group', 'passwd'], 'nothing made or moved in the host folder');
  assert.equal(readFileSync(join(host, 'passwd'), 'utf8'), 'HOST\n', "the host's passwd is its own");
  assert.equal(readFileSync(join(host, 'group'), 'utf8'), 'HOSTGROUP\n', "the host's group is its own");
  // and no jail holds the host's content
  const leaked: string[] = [];
  const walk = (p: string): void => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const q = join(p, e.name);
      if (e.isDirectory()) walk(q);
      else if (e.isFile() && /HOST/.test(readFileSync(q, 'utf8'))) leaked.push(q);
    }
  };
  for (const root of roots) walk(root);
  assert.deepEqual(leaked, [], "no jail's tree holds a host file");
});
