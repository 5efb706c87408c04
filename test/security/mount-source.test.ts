// A `mount` line whose source lies in another jail's tree: that jail writes it, so a symlink
// it makes there must never lead the host's bind to a host path (audit: `ln -s /victim
// /srv/share` in jail A gave jail B the host's /victim read-write). The source is resolved
// inside A's root, as A sees it, and jy-mount opens it with no symlink followed (one made
// after jailyard resolved the path fails the mount instead).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JY_MOUNT } from '../../src/platform/linux/native.ts';
import { cliFor, hostCgroupsOf, runBin } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let victim: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);
const rootOf = (name: string) => join(state, 'jails', name, 'root');

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-mountsrc-'));
  victim = mkdtempSync(join(tmpdir(), 'jy-mountsrc-victim-'));
  writeFileSync(join(victim, 'secret'), 'host\n');
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
});

after(async () => {
  for (const name of ['ms2', 'ms3', 'ms1']) await jy('stop', name);
  for (const name of ['ms2', 'ms3', 'ms1']) await jy('remove', name);
  assertNoLeaks(baseline, state);
  assert.deepEqual(readdirSync(victim), ['secret'], 'nothing written in the host folder');
  rmSync(state, { recursive: true, force: true });
  rmSync(victim, { recursive: true, force: true });
});

test("a source in another jail's tree is read as that jail sees it: its symlink to a host path leads inside it", {
  timeout: 120_000,
}, async () => {
  assert.equal((await jy('create', 'ms1', 'skeleton=host', 'persist')).code, 0);
  assert.equal((await jy('start', 'ms1')).code, 0);
  // ms1 makes /srv/share a link to the host folder's path, with a folder of its own at that
  // path inside its root, and /srv/inner a relative link to a folder of its own
  const inside = [
    `mkdir -p /srv/real ${victim}`,
    'echo mine > /srv/real/f',
    `echo jail > ${victim}/jailfile`,
    'ln -s real /srv/inner',
    `ln -s ${victim} /srv/share`,
  ].join(' && ');
  assert.equal((await jy('exec', 'ms1', '/bin/sh', '-c', inside)).code, 0);

  const share = `${rootOf('ms1')}/srv/share ${rootOf('ms2')}/mnt/share nullfs rw 0 0`;
  assert.equal((await jy('create', 'ms2', 'skeleton=host', 'persist', `mount=${share}`)).code, 0);
  const s = await jy('start', 'ms2');
  assert.equal(s.code, 0, s.stderr);
  // exec hands the program the real stdout: a process of its own to read it
  const seen = runBin(state, ['exec', 'ms2', '/bin/sh', '-c', 'ls /mnt/share; echo x > /mnt/share/written']);
  assert.equal(seen.code, 0, seen.stderr);
  assert.equal(seen.stdout, 'jailfile\n', "ms1's own folder at that path, never the host's");
  assert.equal(readFileSync(join(rootOf('ms1'), victim, 'written'), 'utf8'), 'x\n');

  // a relative link inside the tree still works as ms1 reads it
  const inner = `${rootOf('ms1')}/srv/inner ${rootOf('ms3')}/mnt/inner nullfs ro 0 0`;
  assert.equal((await jy('create', 'ms3', 'skeleton=host', 'persist', `mount=${inner}`)).code, 0);
  assert.equal((await jy('start', 'ms3')).code, 0);
  assert.equal(runBin(state, ['exec', 'ms3', 'cat', '/mnt/inner/f']).stdout, 'mine\n');
  // none of these jails sets limits.procs: each has the default (defaults.json), so a fork bomb
  // in one stays in it
  const cgroup = hostCgroupsOf(state, 'ms3');
  const pids = /^\d+:pids:(.+)$/m.exec(cgroup)?.[1];
  if (pids) assert.equal(readFileSync(`/sys/fs/cgroup/pids${pids}/pids.max`, 'utf8').trim(), '4096');
  else assert.equal(readFileSync(`/sys/fs/cgroup${/^0::(.+)$/m.exec(cgroup)![1]}/pids.max`, 'utf8').trim(), '4096');
});

test('jy-mount r: a symlink on the way below ROOT fails the mount (ELOOP), a plain path mounts', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jy-mountsrc-r-'));
  t.after(() => {
    spawnSync('umount', [join(dir, 'target')]);
    rmSync(dir, { recursive: true, force: true });
  });
  mkdirSync(join(dir, 'root/plain'), { recursive: true });
  mkdirSync(join(dir, 'target'));
  symlinkSync(victim, join(dir, 'root/link'));
  const bind = (source: string) =>
    spawnSync(JY_MOUNT, ['r', join(dir, 'root'), 'm', source, join(dir, 'target'), '', '4096', ''], {
      encoding: 'utf8',
    });
  const bad = bind(join(dir, 'root/link'));
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /link inside .*root: Too many levels of symbolic links/);
  assert.equal(bad.stdout, 'done 0\n');
  const mounted = () => readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${join(dir, 'target')} `);
  assert.equal(mounted(), false);
  const outside = bind(victim);
  assert.equal(outside.status, 1, 'a source not below ROOT is refused');
  const good = bind(join(dir, 'root/plain'));
  assert.equal(good.status, 0, good.stderr);
  assert.equal(good.stdout, 'done 2\n');
  assert.equal(mounted(), true);
});
