// jailyard skel create NAME --oci-archive FILE: skeletons from container images the test
// builds itself (busybox from the host, no pulls). An OCI layout (directory and tar) with two
// layers, gzip and zstd, the second deleting a file (.wh.) and making a directory opaque
// (.wh..wh..opq) -> a skeleton -> a jail on it runs /bin/sh -c 'echo ok'. A docker save
// archive (uncompressed layers, a layer reached through a symlink). Hostile archives (path
// traversal, absolute names, a symlink then a write or a whiteout through it, hard links to
// /etc/shadow, bad digests, over the size cap) are refused with JY_ERR_IMAGE naming the layer
// and the entry, nothing of the skeleton is left, the host's files are untouched.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binFor, cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { classify, entryParts } from '../../src/skeleton/layers.ts';
import { createSkeleton, type CreateOptions } from '../../src/skeleton/registry.ts';
import { JailyardError } from '../../src/errors.ts';
import { dockerSave, IMAGE_CONFIG, ociLayout, sha256, tar, tarOfFiles, type TarEntry } from './oci-fixtures.ts';

let state: string;
let work: string;
let victim: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);
const jyBin = binFor(() => state);

const BUSYBOX = readFileSync(existsSync('/bin/busybox') ? '/bin/busybox' : '/usr/bin/busybox');

/** Layer 1: a busybox root, a file and a directory layer 2 takes away, a setuid file. */
function base(): TarEntry[] {
  return [
    { name: './', type: '5' },
    { name: 'bin/', type: '5' },
    { name: 'bin/busybox', data: BUSYBOX, mode: 0o755 },
    ...['sh', 'sleep', 'cat', 'ls', 'true'].map((c) => ({ name: `bin/${c}`, type: '2' as const, link: 'busybox' })),
    { name: 'bin/su-test', data: '#!/bin/sh\n', mode: 0o4755 },
    { name: 'etc/', type: '5' },
    { name: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/srv:/bin/sh\n' },
    { name: 'etc/group', data: 'root:x:0:\n' },
    { name: 'etc/doomed', data: 'layer 2 deletes me\n' },
    { name: 'etc/hosts-link', type: '1', link: 'etc/passwd' },
    { name: 'opt/data/', type: '5' },
    { name: 'opt/data/old1', data: 'old\n' },
    { name: 'opt/data/sub/old2', data: 'old\n' },
    { name: 'srv/', type: '5', uid: 33, gid: 33 },
    { name: 'srv/index.html', data: 'v1\n', uid: 33, gid: 33 },
    { name: 'dev/null', type: '3' },
  ];
}

/** Layer 2: deletes etc/doomed, makes opt/data opaque (with a file of its own), adds files. */
function top(): TarEntry[] {
  return [
    { name: 'etc/', type: '5' },
    { name: 'etc/.wh.doomed' },
    { name: 'etc/motd', data: 'from layer 2\n' },
    { name: 'opt/data/', type: '5' },
    { name: 'opt/data/new', data: 'new\n' },
    // a file below a lower directory this layer has no entry for, before the marker
    { name: 'opt/data/sub/kept', data: 'kept\n' },
    { name: 'opt/data/.wh..wh..opq' },
    { name: 'srv/index.html', data: 'v2\n', uid: 33, gid: 33 },
  ];
}

before(() => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-oci-state-'));
  work = mkdtempSync(join(tmpdir(), 'jy-oci-work-'));
  // what hostile archives aim at: a host folder with a file in it
  victim = mkdtempSync(join(tmpdir(), 'jy-oci-victim-'));
  writeFileSync(join(victim, 'keep'), 'host file\n');
});

after(async () => {
  await jy('remove', '-l', 'test=oci');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
  rmSync(victim, { recursive: true, force: true });
});

/** Nothing of a refused skeleton: no version, no temp folder. */
function nothingOf(name: string): void {
  const dir = join(state, 'skeletons', name);
  if (!existsSync(dir)) return;
  assert.deepEqual(
    readdirSync(dir).filter((f) => f !== 'skeleton.json' && !/^\d+$/.test(f)),
    [],
    `no temp folder of ${name} left`,
  );
}

function victimUntouched(): void {
  assert.deepEqual(readdirSync(victim), ['keep'], 'nothing written into the host folder');
  assert.equal(readFileSync(join(victim, 'keep'), 'utf8'), 'host file\n');
}

describe('entry names (pure)', () => {
  test('relative names are split; root, absolute, .. and NUL', () => {
    assert.deepEqual(entryParts('./a//b/'), ['a', 'b']);
    assert.deepEqual(entryParts('./'), []);
    assert.throws(() => entryParts('/etc/passwd'), /absolute/);
    assert.throws(() => entryParts('a/../../etc'), /\.\./);
    assert.throws(() => entryParts('a\0b'), /NUL/);
    assert.throws(() => entryParts(`${'x'.repeat(256)}/y`), /255/);
  });
  test('whiteouts, opaque markers, other AUFS markers', () => {
    assert.deepEqual(classify(['etc', '.wh.passwd']), { kind: 'whiteout', name: 'passwd' });
    assert.deepEqual(classify(['d', '.wh..wh..opq']), { kind: 'opaque' });
    assert.deepEqual(classify(['.wh..wh.plnk']), { kind: 'marker' });
    assert.deepEqual(classify(['etc', 'passwd']), { kind: 'plain' });
    assert.throws(() => classify(['.wh...']), /without a name/);
  });
});

test('an OCI layout (directory): layers in order, whiteouts, opaque dir, owners, setuid, config recorded', async () => {
  const dir = ociLayout(join(work, 'layout'), [
    { tar: tar(base()), compression: 'gzip' },
    { tar: tar(top()), compression: 'zstd' },
  ]);
  const r = await jy('skel', 'create', 'bb', '--oci-archive', dir, '--json');
  assert.equal(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout);
  assert.equal(v.kind, 'owned');
  assert.equal(v.source.type, 'oci-archive');
  const root = join(state, 'skeletons/bb/1/root');
  assert.equal(v.root, root);
  assert.equal(readFileSync(join(root, 'bin/busybox')).equals(BUSYBOX), true);
  assert.equal(readlinkSync(join(root, 'bin/sh')), 'busybox');
  assert.equal(existsSync(join(root, 'etc/doomed')), false, '.wh.doomed deleted the lower file');
  assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'from layer 2\n');
  assert.deepEqual(
    readdirSync(join(root, 'opt/data')).sort(),
    ['new', 'sub'],
    'opaque: lower entries gone, its own kept',
  );
  assert.deepEqual(
    readdirSync(join(root, 'opt/data/sub')),
    ['kept'],
    "the lower sub/old2 is gone, the layer's own file stays",
  );
  assert.equal(readFileSync(join(root, 'srv/index.html'), 'utf8'), 'v2\n');
  assert.equal(statSync(join(root, 'srv/index.html')).uid, 33);
  assert.equal(statSync(join(root, 'bin/su-test')).mode & 0o7777, 0o4755, 'setuid kept');
  assert.equal(statSync(join(root, 'etc/hosts-link')).ino, statSync(join(root, 'etc/passwd')).ino, 'hard link');
  assert.equal(existsSync(join(root, 'dev/null')), false, 'no device node made');
  assert.equal(statSync(root).mode & 0o777, 0o755);
  assert.equal(existsSync(join(state, 'skeletons/bb/1/archive')), false);
  // recorded: the image's config and digests
  assert.deepEqual(v.image.config.cmd, IMAGE_CONFIG.Cmd);
  assert.deepEqual(v.image.config.env, IMAGE_CONFIG.Env);
  assert.equal(v.image.config.workingDir, '/srv');
  assert.deepEqual(v.image.config.exposedPorts, ['8080/tcp']);
  assert.equal(v.image.format, 'oci');
  assert.equal(v.image.ref, 'latest');
  assert.equal(v.image.layers.length, 2);
  assert.equal(v.image.layers[1].compression, 'zstd');
  assert.equal(v.image.layers[0].diffId, sha256(tar(base())));
  assert.match(r.stderr, /note: layer 1 .*dev\/null: CharacterDevice not made/);
  const show = await jy('skel', 'show', 'bb');
  assert.match(show.stdout, /image: +oci latest/);
  assert.match(show.stdout, /cmd: +\["\/bin\/sh","-c","echo ok"\]/);
  assert.match(show.stdout, /ports: +8080\/tcp/);
  assert.match(show.stdout, /env: +GREETING=hello/);
  const ls = await jy('skel', 'ls');
  assert.match(ls.stdout, /bb\s+1\s+1\s+owned\s+oci-archive .*layout \(latest\)/);
  const verify = await jy('skel', 'show', 'bb', '--verify');
  assert.match(verify.stdout, /verify: +ok/);
});

test('a jail on the image skeleton runs /bin/sh -c "echo ok"', async () => {
  let r = await jy('create', 'oci1', 'skeleton=bb', 'persist', 'meta.test=oci');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'oci1');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(jyBin('exec', 'oci1', '/bin/sh', '-c', 'echo ok'), 'ok\n');
  assert.equal(jyBin('exec', 'oci1', '/bin/cat', '/etc/motd'), 'from layer 2\n');
  r = await jy('remove', 'oci1');
  assert.equal(r.code, 0, r.stderr);
});

test('the same layout as a tar file, and a docker save archive (uncompressed layers, a shared layer through a symlink)', async () => {
  const dir = join(work, 'layout');
  const files: Record<string, Buffer> = {};
  const walk = (rel: string): void => {
    for (const f of readdirSync(join(dir, rel))) {
      const p = rel ? `${rel}/${f}` : f;
      if (statSync(join(dir, p)).isDirectory()) walk(p);
      else files[p] = readFileSync(join(dir, p));
    }
  };
  walk('');
  writeFileSync(join(work, 'image.tar'), tarOfFiles(files));
  let r = await jy('skel', 'create', 'bb', '--oci-archive', join(work, 'image.tar'));
  assert.equal(r.code, 0, r.stderr);
  const a = readFileSync(join(state, 'skeletons/bb/1/manifest.tsv'));
  const b = readFileSync(join(state, 'skeletons/bb/2/manifest.tsv'));
  assert.equal(sha256(a), sha256(b), 'the same image gives the same skeleton digest');

  writeFileSync(join(work, 'docker.tar'), dockerSave([tar(base()), tar(top())]));
  r = await jy('skel', 'create', 'dk', '--oci-archive', join(work, 'docker.tar'), '--json');
  assert.equal(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout);
  assert.equal(v.image.format, 'docker-save');
  assert.equal(v.image.ref, 'busybox:test');
  const root = join(state, 'skeletons/dk/1/root');
  assert.deepEqual(readdirSync(join(root, 'opt/data')).sort(), ['new', 'sub']);
  assert.equal(existsSync(join(root, 'etc/doomed')), false);
  assert.equal(sha256(readFileSync(join(state, 'skeletons/dk/1/manifest.tsv'))), sha256(a));
  // --ref picks by tag; a wrong one is refused
  r = await jy('skel', 'create', 'dk', '--oci-archive', join(work, 'docker.tar'), '--ref', 'nope');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no image named "nope".*busybox:test/s);
  nothingOf('dk');
});

/** Makes an image of `layers` (uncompressed tars), tries it, expects JY_ERR_IMAGE matching
 * `why`, and checks nothing is left and the host folder is untouched. */
async function refused(name: string, layers: Buffer[], why: RegExp, opts: CreateOptions = {}): Promise<void> {
  const dir = ociLayout(
    join(work, `bad-${name}`),
    layers.map((t) => ({ tar: t, compression: 'none' as const })),
  );
  await assert.rejects(createSkeleton(state, name, { type: 'oci-archive', path: dir }, opts), (e: unknown) => {
    assert.ok(e instanceof JailyardError, `${name}: ${(e as Error).stack}`);
    assert.equal(e.code, 'JY_ERR_IMAGE', `${name}: ${e.message}`);
    assert.match(e.message, why, name);
    return true;
  });
  assert.equal(existsSync(join(state, 'skeletons', name)), false, `${name}: nothing of the skeleton is left`);
  victimUntouched();
}

describe('hostile archives are refused, nothing is left', () => {
  test('path traversal and absolute names', async () => {
    const up = '../'.repeat(12);
    await refused(
      'trav',
      [tar([{ name: `${up}${victim.slice(1)}/evil`, data: 'x' }])],
      /layer 1 .*entry ".*evil".*"\.\."/,
    );
    await refused('abs', [tar([{ name: `${victim}/evil`, data: 'x' }])], /entry ".*evil".*absolute/);
  });
  test('a symlink to a host folder, then a write through it (same layer and next layer)', async () => {
    const link: TarEntry = { name: 'a', type: '2', link: victim };
    await refused('sym1', [tar([link, { name: 'a/evil', data: 'x' }])], /entry "a\/evil": "a" is a symlink/);
    await refused(
      'sym2',
      [tar([link]), tar([{ name: 'a/keep', data: 'overwritten' }])],
      /layer 2 .*entry "a\/keep": "a" is a symlink/,
    );
    // a relative one that leads out, and a directory entry through it
    await refused(
      'sym3',
      [
        tar([
          { name: 'b', type: '2', link: '../../../../../../..' },
          { name: 'b/tmp/', type: '5' },
        ]),
      ],
      /"b" is a symlink/,
    );
  });
  test('a whiteout through a symlink does not delete the host file', async () => {
    const link: TarEntry = { name: 'a', type: '2', link: victim };
    await refused(
      'wh',
      [tar([link]), tar([{ name: 'a/.wh.keep' }])],
      /layer 2 .*entry "a\/\.wh\.keep": "a" is a symlink/,
    );
    await refused('opq', [tar([link]), tar([{ name: 'a/.wh..wh..opq' }])], /"a" is a symlink/);
    await refused('whup', [tar([{ name: '.wh...' }])], /without a name/);
  });
  test('hard links to /etc/shadow', async () => {
    const shadow = existsSync('/etc/shadow') ? statSync('/etc/shadow') : undefined;
    await refused(
      'hl1',
      [tar([{ name: 'x', type: '1', link: '/etc/shadow' }])],
      /entry "x": a hard link to "\/etc\/shadow": an absolute name/,
    );
    await refused('hl2', [tar([{ name: 'x', type: '1', link: '../../../../../../etc/shadow' }])], /hard link .*"\.\."/);
    // through a symlink inside the tree
    await refused(
      'hl3',
      [
        tar([
          { name: 'e', type: '2', link: '/etc' },
          { name: 'x', type: '1', link: 'e/shadow' },
        ]),
      ],
      /"e" is a symlink/,
    );
    if (shadow) assert.equal(statSync('/etc/shadow').nlink, shadow.nlink, "the host's /etc/shadow got no link");
  });
  test('bad digests: a layer blob changed after its manifest, a diff_id that does not match', async () => {
    const dir = ociLayout(join(work, 'bad-digest'), [{ tar: tar(base()) }, { tar: tar(top()) }], {
      tamper: (blobs) => {
        blobs[1] = Buffer.concat([blobs[1]!.subarray(0, -1), Buffer.from([blobs[1]!.at(-1)! ^ 1])]);
      },
    });
    let r = await jy('skel', 'create', 'dig', '--oci-archive', dir);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /--oci-archive.*layer 2: digest mismatch: the descriptor says sha256:[0-9a-f]{64}, the blob is sha256:/,
    );
    assert.equal(existsSync(join(state, 'skeletons/dig')), false);
    // docker save: a layer that is not what the config's diff_ids say
    const cfg = { rootfs: { type: 'layers', diff_ids: [sha256('something else')] } };
    writeFileSync(join(work, 'bad-diff.tar'), dockerSave([tar(base())], 'busybox:test', cfg));
    r = await jy('skel', 'create', 'dig', '--oci-archive', join(work, 'bad-diff.tar'));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /layer 1 .*digest mismatch: the config's diff_id is/s);
    assert.equal(existsSync(join(state, 'skeletons/dig')), false);
  });
  test('over the size cap, and a header that claims more than the archive holds', async () => {
    await refused(
      'big',
      [tar([{ name: 'big', data: Buffer.alloc(64 * 1024) }])],
      /entry "big": 65536 bytes would take the image over 1024 bytes/,
      { imageLimits: { maxBytes: 1024 } },
    );
    await refused('trunc', [tar([{ name: 'liar', data: 'x', size: 8 * 1024 ** 3 - 1 }]).subarray(0, 1024)], /layer 1/);
  });
  test('a failed create of a new version keeps the earlier versions as they were', async () => {
    const before = readFileSync(join(state, 'skeletons/bb/skeleton.json'), 'utf8');
    const dir = ociLayout(join(work, 'bad-v3'), [
      { tar: tar([...base(), { name: 'bin/x', type: '1', link: '/etc/shadow' }]) },
    ]);
    const r = await jy('skel', 'create', 'bb', '--oci-archive', dir);
    assert.equal(r.code, 1);
    assert.equal(readFileSync(join(state, 'skeletons/bb/skeleton.json'), 'utf8'), before);
    nothingOf('bb');
    assert.deepEqual(readdirSync(join(state, 'skeletons/bb')).sort(), ['1', '2', 'skeleton.json']);
    assert.ok(lstatSync(join(state, 'skeletons/bb/1/root')).isDirectory());
  });
});

test('deleting what holds symlinks to host folders (whiteout, opaque dir, a symlink replaced by a directory) leaves the host alone', async () => {
  const dir = ociLayout(join(work, 'links'), [
    {
      tar: tar([
        { name: 'd/', type: '5' },
        { name: 'd/out', type: '2', link: victim },
        { name: 'd/file', type: '2', link: join(victim, 'keep') },
        { name: 'e/', type: '5' },
        { name: 'e/out', type: '2', link: victim },
        { name: 's', type: '2', link: victim },
      ]),
    },
    {
      tar: tar([
        { name: 'd/.wh..wh..opq' },
        { name: '.wh.e' },
        { name: 's/', type: '5' },
        { name: 's/new', data: 'in the tree\n' },
      ]),
    },
  ]);
  const r = await jy('skel', 'create', 'links', '--oci-archive', dir);
  assert.equal(r.code, 0, r.stderr);
  const root = join(state, 'skeletons/links/1/root');
  assert.deepEqual(readdirSync(join(root, 'd')), []);
  assert.equal(existsSync(join(root, 'e')), false);
  assert.ok(lstatSync(join(root, 's')).isDirectory(), 'the symlink was replaced by a directory');
  assert.equal(readFileSync(join(root, 's/new'), 'utf8'), 'in the tree\n');
  victimUntouched();
});

test('a hostile outer archive or image folder: names with .., links out of it', async () => {
  const out = join(work, 'outer');
  mkdirSync(out, { recursive: true });
  const cases: [string, Buffer, RegExp][] = [
    ['dotdot', tar([{ name: '../evil', data: 'x' }]), /bad file name "\.\.\/evil"/],
    ['abs', tar([{ name: `${victim}/evil`, data: 'x' }]), /absolute/],
    [
      'linkout',
      tar([{ name: 'index.json', type: '2', link: '../../../../etc/passwd' }]),
      /"index\.json" links out of the archive/,
    ],
    ['linkabs', tar([{ name: 'manifest.json', type: '2', link: '/etc/passwd' }]), /links out of the archive/],
  ];
  for (const [name, bytes, why] of cases) {
    writeFileSync(join(out, `${name}.tar`), bytes);
    const r = await jy('skel', 'create', `outer-${name}`, '--oci-archive', join(out, `${name}.tar`));
    assert.equal(r.code, 1, name);
    assert.match(r.stderr, why, name);
    assert.equal(existsSync(join(state, 'skeletons', `outer-${name}`)), false, name);
  }
  // a folder whose index.json is a symlink to a host file
  const folder = join(out, 'folder');
  mkdirSync(folder);
  symlinkSync('/etc/hostname', join(folder, 'index.json'));
  const r = await jy('skel', 'create', 'outer-folder', '--oci-archive', folder);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /"index\.json" leads out of the image directory/);
  victimUntouched();
});

test('not an image: a plain folder, a missing file', async () => {
  mkdirSync(join(work, 'empty'), { recursive: true });
  let r = await jy('skel', 'create', 'none', '--oci-archive', join(work, 'empty'));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /neither an OCI image layout .* nor a docker save archive/);
  r = await jy('skel', 'create', 'none', '--oci-archive', join(work, 'missing.tar'));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /missing\.tar is neither an image directory nor an archive file/);
  assert.equal(existsSync(join(state, 'skeletons/none')), false);
});
