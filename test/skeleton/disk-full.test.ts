// `skel create` on a full disk: the state folder on a 2 MiB tmpfs, a source tree that does
// not fit. The error names the skeleton and the folder (not a bare ENOSPC), nothing of the
// new version is left behind, and a skeleton's earlier versions are untouched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor } from '../helpers/cli.ts';
import { mountTargets } from '../../src/platform/linux/mountinfo.ts';
import { copyFileNoFollow } from '../../src/skeleton/tree.ts';
import { makeSkeleton } from './fixtures.ts';

let disk: string;
let src: string;
let mounted = false;
const state = (): string => join(disk, 'state');
const cli = cliFor(state);

/** Bytes in use on the small disk. */
function used(): number {
  const s = statfsSync(disk);
  return (s.blocks - s.bfree) * s.bsize;
}

before(() => {
  disk = mkdtempSync(join(tmpdir(), 'jy-skel-full-'));
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'jy-skel-full', disk], { encoding: 'utf8' });
  assert.equal(m.status, 0, m.stderr);
  mounted = true;
  src = mkdtempSync(join(tmpdir(), 'jy-skel-full-src-'));
  makeSkeleton(src);
});

after(() => {
  if (mounted) {
    const u = spawnSync('umount', [disk], { encoding: 'utf8' });
    assert.equal(u.status, 0, u.stderr);
    rmdirSync(disk);
  }
  rmSync(src, { recursive: true, force: true });
  assert.deepEqual(
    mountTargets().filter((m) => m.startsWith(disk)),
    [],
  );
});

test('skel create that fills the disk: a clear error naming skeleton and folder, no half-made skeleton', async () => {
  const small = await cli('skel', 'create', 'base', '--copy', src);
  assert.equal(small.code, 0, small.stderr);
  const before = used();
  const listing = readdirSync(join(state(), 'skeletons', 'base')).sort();

  // a file larger than the disk: the copy runs out of space half way
  writeFileSync(join(src, 'usr/big'), Buffer.alloc(3 << 20, 1));
  for (const name of ['big', 'base']) {
    const r = await cli('skel', 'create', name, '--copy', src);
    assert.notEqual(r.code, 0, `skel create ${name} on a full disk fails`);
    assert.match(r.stderr, /JY_ERR_SKELETON_CREATE|no space left/);
    assert.match(r.stderr, new RegExp(`skeleton "${name}"`), r.stderr);
    assert.match(r.stderr, new RegExp(join(state(), 'skeletons', name).replaceAll('/', '\\/')), r.stderr);
    assert.match(r.stderr, /ENOSPC/, r.stderr);
  }
  // nothing of the failed versions: no new skeleton, no temp tree, the old version intact
  assert.equal(existsSync(join(state(), 'skeletons', 'big')), false, 'no half-made skeleton');
  assert.deepEqual(readdirSync(join(state(), 'skeletons', 'base')).sort(), listing);
  const show = await cli('skel', 'show', 'base', '--json');
  assert.equal(show.code, 0, show.stderr);
  assert.equal((JSON.parse(show.stdout) as { version: { version: number } }).version.version, 1);
  assert.ok(used() <= before + 64 * 1024, `space given back: ${used()} used, ${before} before`);

  // with room again, the next version is made as usual
  rmSync(join(src, 'usr/big'));
  const again = await cli('skel', 'create', 'base', '--copy', src);
  assert.equal(again.code, 0, again.stderr);
});

test('a file copy that runs out of space leaves no truncated file behind', () => {
  const big = join(src, 'big');
  writeFileSync(big, Buffer.alloc(3 << 20, 2));
  const dest = join(disk, 'copy');
  assert.throws(() => copyFileNoFollow(big, dest, lstatSync(big)), { code: 'ENOSPC' });
  assert.equal(existsSync(dest), false);
  rmSync(big);
});
