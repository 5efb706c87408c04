// Issue 11 item 11 (disk): `limits.disk` bounds a skeleton jail's writable part. The part is
// an ext4 image (sparse) loop-mounted while the jail runs: writing past the limit fails with
// ENOSPC inside the jail and uses no more host disk than the image; stop frees the loop
// device; after a crash with the image mounted, reconcile clears it and the jail starts again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBin } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;
const MiB = 1024 * 1024;

/** The CLI as a process of its own (a crash point kills it); stdout and stderr together. */
function jy(args: string[], crashAt?: string): { code: number; out: string } {
  const r = runBin(state, args, { env: { ...process.env, ...(crashAt ? { JAILYARD_CRASH_AT: crashAt } : {}) } });
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
}

/** Allocated bytes (du -s) of `path`. */
function du(path: string, exclude?: string): number {
  return Number(
    execFileSync('du', ['-s', '-x', '-B1', ...(exclude ? [`--exclude=${exclude}`] : []), path], {
      encoding: 'utf8',
    }).split('\t')[0],
  );
}

const loopsOf = (image: string): string => execFileSync('losetup', ['-j', image], { encoding: 'utf8' }).trim();

/** The loop devices still on `image` after up to 5 s: the kernel frees an autoclear loop
 * device from a work queue after the unmount, not during it. */
function loopsLeft(image: string): string {
  for (let i = 0; i < 50 && loopsOf(image) !== ''; i++) execFileSync('sleep', ['0.1']);
  return loopsOf(image);
}

before(() => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-fs-disk-'));
  const r = jy(['skel', 'create', 'host', '--from', '/']);
  assert.equal(r.code, 0, r.out);
});

after(() => {
  for (const name of ['disk-nullfs', 'disk-overlay', 'disk-crash']) jy(['remove', name]);
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

for (const strategy of ['nullfs', 'overlay'] as const) {
  test(`${strategy}: writing past limits.disk fails with ENOSPC inside the jail, the host disk is untouched`, () => {
    const name = `disk-${strategy}`;
    let r = jy(['create', name, 'skeleton=host', `skeleton.strategy=${strategy}`, 'persist', 'limits.disk=32M']);
    assert.equal(r.code, 0, r.out);
    const jailDir = join(state, 'jails', name);
    const image = join(jailDir, 'disk.img');
    assert.ok(readdirSync(jailDir).includes('disk.img'));
    r = jy(['start', name]);
    assert.equal(r.code, 0, r.out);
    // write 64 MiB into the jail's writable part: /tmp (root) and /etc
    const w = jy([
      'exec',
      name,
      'sh',
      '-c',
      'dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>&1; echo rc=$?; dd if=/dev/zero of=/etc/jy-more bs=1M count=2 2>&1; echo rc2=$?',
    ]);
    assert.match(w.out, /No space left on device/, w.out);
    assert.match(w.out, /rc=1/);
    assert.match(w.out, /rc2=1/, 'the whole writable part shares the limit');
    assert.ok(du(image) <= 32 * MiB, `the image uses at most its size on the host (${du(image)})`);
    assert.ok(
      du(jailDir, 'disk.img') < MiB,
      `nothing of the jail's writes lands beside the image (${du(jailDir, 'disk.img')})`,
    );
    // the jail can free its space again
    const rm = jy(['exec', name, 'sh', '-c', 'rm /tmp/fill && echo ok > /tmp/small && cat /tmp/small']);
    assert.match(rm.out, /ok/);
    r = jy(['stop', name]);
    assert.equal(r.code, 0, r.out);
    assert.equal(loopsLeft(image), '', 'stop frees the loop device');
    // the content survives a restart (the image is the writable part)
    r = jy(['start', name]);
    assert.equal(r.code, 0, r.out);
    assert.equal(jy(['exec', name, 'cat', '/tmp/small']).out, 'ok\n');
    r = jy(['stop', name]);
    assert.equal(r.code, 0, r.out);
  });
}

test('a crash with the image mounted: reconcile unmounts it, frees the loop device, the jail starts again', () => {
  let r = jy(['create', 'disk-crash', 'skeleton=host', 'persist', 'limits.disk=32M']);
  assert.equal(r.code, 0, r.out);
  const image = join(state, 'jails/disk-crash/disk.img');
  r = jy(['start', 'disk-crash'], 'mounts:done');
  assert.notEqual(r.code, 0, 'the start was killed');
  assert.notEqual(loopsOf(image), '', 'the crash left the image mounted');
  r = jy(['reconcile']);
  assert.equal(r.code, 0, r.out);
  assert.equal(loopsLeft(image), '', 'reconcile freed the loop device');
  r = jy(['start', 'disk-crash']);
  assert.equal(r.code, 0, r.out);
  r = jy(['stop', 'disk-crash']);
  assert.equal(r.code, 0, r.out);
  assert.equal(loopsLeft(image), '');
});

test('an upgrade merges into the image (mounted for the merge, freed after)', () => {
  const image = join(state, 'jails/disk-crash/disk.img');
  let r = jy(['start', 'disk-crash']);
  assert.equal(r.code, 0, r.out);
  r = jy(['exec', 'disk-crash', 'sh', '-c', 'echo mine > /etc/jy-own']);
  assert.equal(r.code, 0, r.out);
  r = jy(['stop', 'disk-crash']);
  assert.equal(r.code, 0, r.out);
  r = jy(['skel', 'create', 'host', '--from', '/']);
  assert.equal(r.code, 0, r.out);
  r = jy(['upgrade', 'disk-crash', '--to', 'host@2']);
  assert.equal(r.code, 0, r.out);
  assert.equal(loopsLeft(image), '', 'the image is unmounted after the merge');
  assert.deepEqual(readdirSync(join(state, 'jails/disk-crash/root')), [], 'nothing was written beside the image');
  r = jy(['start', 'disk-crash']);
  assert.equal(r.code, 0, r.out);
  assert.equal(jy(['exec', 'disk-crash', 'cat', '/etc/jy-own']).out, 'mine\n');
  r = jy(['stop', 'disk-crash']);
  assert.equal(r.code, 0, r.out);
});

test('limits.disk below 16M is refused at create; a value in the defaults file is its default', () => {
  const r = jy(['create', 'disk-small', 'skeleton=host', 'limits.disk=1M']);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /limits\.disk must be at least 16M/);
});
