// matchSkeleton (src/portable/install.ts): the skeleton a --full archive carries is checked
// against its manifest before a version is made of it, and a tree whose manifest had device
// nodes (a debootstrap's /dev: the archive cannot carry them) is made with a note that the
// new version is not the same by digest; a tampered tree is refused and nothing is made.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JailyardError } from '../../src/errors.ts';
import { contentDigest, matchSkeleton } from '../../src/portable/install.ts';
import { buildManifest, formatManifest, type ManifestEntry } from '../../src/skeleton/manifest.ts';
import { listSkeletons, manifestDigest } from '../../src/skeleton/registry.ts';
import { miniTree } from '../helpers/mini-skeleton.ts';

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'jy-skel-match-'));
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

test('a carried tree: made when it matches what its manifest says (devices noted), refused when altered', async () => {
  const tree = miniTree(join(dir, 'tree'));
  const entries = buildManifest(tree);
  // the exporting host's version had /dev/null (a device the archive does not carry)
  const dev: ManifestEntry = { path: 'dev/null', type: 'other', mode: 0o666, uid: 0, gid: 0, size: 0, digest: '' };
  const withDev = [...entries, dev].sort((a, b) => (a.path < b.path ? -1 : 1));
  const ref = {
    name: 'deb',
    version: 3,
    digest: manifestDigest(formatManifest(withDev)),
    kind: 'owned' as const,
    included: true,
    contentDigest: contentDigest(withDev),
  };
  const state = join(dir, 'state');
  const found = await matchSkeleton(state, ref, tree, 'j');
  assert.equal(found.made, true);
  assert.equal(found.version, 1);
  assert.match(
    found.notes.join('\n'),
    /deb@1 made from the archive has digest [0-9a-f]{64}, the exporting host's deb@3 has/,
  );
  // an altered tree: refused, no version made
  writeFileSync(join(tree, 'etc/passwd'), 'root::0:0::/:/bin/sh\n');
  await assert.rejects(
    matchSkeleton(join(dir, 'state2'), ref, tree, 'j'),
    (e: unknown) =>
      e instanceof JailyardError && e.code === 'JY_ERR_SKELETON_MISMATCH' && /damaged or altered/.test(e.message),
  );
  assert.deepEqual(listSkeletons(join(dir, 'state2')), []);
  // without devices the made version has the archive's digest: no note
  const plain = miniTree(join(dir, 'plain'));
  const p = buildManifest(plain);
  const exact = await matchSkeleton(
    join(dir, 'state3'),
    { name: 'p', version: 1, digest: manifestDigest(formatManifest(p)), kind: 'owned', included: true },
    plain,
    'j',
  );
  assert.deepEqual([exact.made, exact.notes], [true, []]);
});
