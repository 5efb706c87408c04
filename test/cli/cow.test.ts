// Copy-on-write config dirs (`skeleton.cow`) for thin jails: the skeleton version's seed of
// the dir is shared read-only, the jail keeps only what it changes (an overlay mounted while
// it runs). With real mounts: writes land in the jail's upper layer and nowhere else, the
// host's and the skeleton's trees stay untouched, a stopped jail has nothing mounted, and an
// upgrade merges through the overlay. Nothing is left behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDefaults } from '../../src/defaults.ts';
import { binFor, cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);

const jyBin = binFor(() => state);

function tree(dir: string, files: Record<string, string>): string {
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  return dir;
}

/** Allocated bytes of a folder (du -s). */
function du(path: string): number {
  return Number(execFileSync('du', ['-s', '-B1', path], { encoding: 'utf8' }).split('\t')[0]);
}

before(() => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-cli-cow-'));
});

after(async () => {
  await jy('remove', '-l', 'test=cow');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('a host-root thin jail with a copy-on-write /etc: small on disk, writes stay its own', async () => {
  let r = await jy('skel', 'create', 'host', '--from', '/');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('create', 'cow1', 'skeleton=host', 'skeleton.cow=etc', 'persist', 'meta.test=cow');
  assert.equal(r.code, 0, r.stderr);
  const jailDir = join(state, 'jails/cow1');
  const etc = join(jailDir, 'root/etc');
  assert.deepEqual(readdirSync(etc), [], 'nothing of /etc is copied into the jail');
  assert.ok(
    du(jailDir) < 1024 * 1024,
    `a thin jail with a copy-on-write /etc takes < 1 MiB (took ${du(jailDir)} bytes)`,
  );

  r = await jy('start', 'cow1');
  assert.equal(r.code, 0, r.stderr);
  // the jail sees the skeleton's /etc (the host's, as snapshotted by skel create)...
  assert.equal(jyBin('exec', 'cow1', 'cat', '/etc/hostname'), readFileSync('/etc/hostname', 'utf8'));
  // ...without what the seed rules skip
  assert.equal(
    jyBin('exec', 'cow1', 'sh', '-c', 'test -e /etc/machine-id && echo present || echo absent').trim(),
    'absent',
  );
  // and writes its own
  jyBin('exec', 'cow1', 'sh', '-c', 'echo jailed > /etc/jy-cow-test && echo changed >> /etc/hostname');
  assert.equal(jyBin('exec', 'cow1', 'cat', '/etc/jy-cow-test'), 'jailed\n');
  assert.equal(existsSync('/etc/jy-cow-test'), false, "the host's /etc is untouched");
  assert.equal(readFileSync('/etc/hostname', 'utf8').includes('changed'), false);
  const lower = join(state, 'skeletons/host/1/cow/etc/etc');
  assert.equal(existsSync(join(lower, 'jy-cow-test')), false, 'the shared layer is untouched');
  assert.equal(readFileSync(join(lower, 'hostname'), 'utf8').includes('changed'), false);
  const upper = join(jailDir, 'cow/etc/upper');
  assert.equal(readFileSync(join(upper, 'jy-cow-test'), 'utf8'), 'jailed\n', "the jail's change is in its own layer");

  // a second jail shares the layer and does not see the first one's change
  r = await jy('create', 'cow2', 'skeleton=host', 'skeleton.cow=etc', 'persist', 'meta.test=cow');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'cow2');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    jyBin('exec', 'cow2', 'sh', '-c', 'test -e /etc/jy-cow-test && echo present || echo absent').trim(),
    'absent',
  );

  r = await jy('stop', 'cow1', 'cow2');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(etc), [], 'a stopped jail has nothing mounted on its /etc');
  assert.equal(readFileSync(join(upper, 'jy-cow-test'), 'utf8'), 'jailed\n', 'its changes stay, in its layer');
  r = await jy('start', 'cow1');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(jyBin('exec', 'cow1', 'cat', '/etc/jy-cow-test'), 'jailed\n', 'and come back at the next start');
  r = await jy('remove', 'cow1', 'cow2');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(existsSync(jailDir), false);
});

test('skel create makes the shared layers of the default copy-on-write dirs; a create only reads them, or makes a missing one', async () => {
  const src = tree(join(state, 'src-layers'), { 'etc/app.conf': 'a\n', 'var/lib/app/db': 'x\n', 'usr/bin/true': '' });
  let r = await jy('skel', 'create', 'layers', '--copy', src);
  assert.equal(r.code, 0, r.stderr);
  const cow = join(state, 'skeletons/layers/1/cow');
  const dirs = loadDefaults().skeleton.cow?.linux ?? [];
  assert.ok(dirs.length > 0, 'the defaults name copy-on-write dirs');
  // every default dir has its layer (an empty one for a dir the tree lacks), no temp folder
  assert.deepEqual(readdirSync(cow).sort(), dirs.map((d) => encodeURIComponent(d)).sort());
  assert.equal(readFileSync(join(cow, 'etc/etc/app.conf'), 'utf8'), 'a\n');
  // var by the seed rules: its structure, not its files
  assert.ok(statSync(join(cow, 'var/var/lib/app')).isDirectory());
  assert.equal(existsSync(join(cow, 'var/var/lib/app/db')), false);
  const made = statSync(join(cow, 'etc')).ino;
  r = await jy('create', 'lay1', 'skeleton=layers', 'persist', 'meta.test=cow');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(join(cow, 'etc')).ino, made, 'the create used the layer skel create made');
  assert.deepEqual(readdirSync(cow).sort(), dirs.map((d) => encodeURIComponent(d)).sort());
  // a version without them (made by an older jailyard): its first jail's create makes them
  rmSync(cow, { recursive: true });
  r = await jy('create', 'lay2', 'skeleton=layers', 'persist', 'meta.test=cow');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(cow, 'etc/etc/app.conf'), 'utf8'), 'a\n');
  r = await jy('remove', 'lay1', 'lay2');
  assert.equal(r.code, 0, r.stderr);
});

test("upgrade merges a copy-on-write /etc through its overlay: the new version below, the jail's changes on top", async () => {
  const v1 = tree(join(state, 'src1'), {
    'etc/app.conf': 'one\ntwo\nthree\nfour\nfive\n',
    'etc/motd': 'welcome v1\n',
    'etc/hosts': 'localhost\n',
    'etc/gone': 'old\n',
  });
  const v2 = tree(join(state, 'src2'), {
    'etc/app.conf': 'one\ntwo\nthree\nfour\nFIVE\n',
    'etc/motd': 'welcome v2\n',
    'etc/hosts': 'localhost\n',
    'etc/new.conf': 'new\n',
  });
  let r = await jy('skel', 'create', 'base', '--copy', v1);
  assert.equal(r.code, 0, r.stderr);
  r = await jy('create', 'cowup', 'skeleton=base', 'skeleton.cow=etc', 'persist', 'meta.test=cow');
  assert.equal(r.code, 0, r.stderr);
  // the jail (stopped) is changed where its changes live: its upper layer
  const upper = join(state, 'jails/cowup/cow/etc/upper');
  mkdirSync(upper, { recursive: true });
  writeFileSync(join(upper, 'app.conf'), 'ONE\ntwo\nthree\nfour\nfive\n');
  writeFileSync(join(upper, 'motd'), 'our own motd\n');
  r = await jy('skel', 'create', 'base', '--copy', v2);
  assert.equal(r.code, 0, r.stderr);

  r = await jy('upgrade', 'cowup', '--to', 'base@2', '--json');
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.deepEqual([result.from, result.to], [1, 2]);
  assert.deepEqual(
    result.conflicts.map((c: { path: string }) => c.path.replace(/^\/+/, '')),
    ['etc/motd'],
  );
  // nothing stays mounted after the merge
  assert.deepEqual(readdirSync(join(state, 'jails/cowup/root/etc')), []);
  // the jail's layer: the merged file and the conflict's new version; nothing it never changed
  assert.equal(readFileSync(join(upper, 'app.conf'), 'utf8'), 'ONE\ntwo\nthree\nfour\nFIVE\n');
  assert.equal(readFileSync(join(upper, 'motd'), 'utf8'), 'our own motd\n');
  assert.equal(readFileSync(join(upper, 'motd.jailyard-new'), 'utf8'), 'welcome v2\n');
  assert.equal(
    existsSync(join(upper, 'new.conf')),
    false,
    'a file the jail never changed is read from the new layer, not copied',
  );
  assert.equal(existsSync(join(upper, 'hosts')), false);
  // what the jail sees: version 2 where it changed nothing, its own and merged files otherwise
  const view = join(state, 'skeletons/base/2/cow/etc/etc');
  assert.equal(readFileSync(join(view, 'new.conf'), 'utf8'), 'new\n');
  assert.equal(existsSync(join(view, 'gone')), false, 'a file the new version dropped is gone for the jail too');
  r = await jy('ls', '-a', '-j', 'cowup', 'skeleton');
  assert.equal(r.stdout, 'base@2\n');
  r = await jy('remove', 'cowup');
  assert.equal(r.code, 0, r.stderr);
});

test('skeleton.cow names writable dirs only; a bad entry changes nothing', async () => {
  const r = await jy('create', 'cowbad', 'skeleton=base', 'skeleton.cow=usr/bin', 'persist', 'meta.test=cow');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cowbad/);
  assert.match(r.stderr, /skeleton\.cow/);
  assert.match(r.stderr, /usr\/bin.*not in skeleton\.writable/);
  assert.equal(existsSync(join(state, 'jails/cowbad')), false, 'no half-created jail');
  assert.equal((await jy('ls', '-a', '-j', 'cowbad', 'name')).code, 1);
});

test('the copy-on-write dirs are fixed when the jail is made: a later change of the parameter never hides its copied /etc', async () => {
  // a skeleton of the host's root (nothing copied): the jail has the programs it runs (its
  // pid 1 holder is sleep); a tree with only /etc passed only while tini outlived its
  // failed exec long enough to be seen
  let r = await jy('skel', 'create', 'pinbase', '--from', '/');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('create', 'cowpin', 'skeleton=pinbase', 'skeleton.cow=', 'persist', 'meta.test=cow');
  assert.equal(r.code, 0, r.stderr);
  const etc = join(state, 'jails/cowpin/root/etc');
  writeFileSync(join(etc, 'app.conf'), 'edited in the copy\n');
  r = await jy('set', 'cowpin', 'skeleton.cow=etc');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'cowpin');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(etc, 'app.conf'), 'utf8'), 'edited in the copy\n', 'no overlay over the copied /etc');
  r = await jy('remove', 'cowpin');
  assert.equal(r.code, 0, r.stderr);
});
