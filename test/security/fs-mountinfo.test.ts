// Issue 11 item 13 (mount side): the jail's /proc/self/mountinfo names no host path of
// jailyard's state folder, for every strategy. Overlays get their layers as "." (jy-mount's
// new-mount-API overlay), a root in the state folder is an overlay of itself (mount root "/"
// instead of <state>/jails/J/root), a disk-limited jail's root is its own filesystem.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { binFor, cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let mini: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);
const GUEST = '/run/jailyard';

const jyBin = binFor(() => state);

/** A tiny root for the full strategy (a copy of the host root would be gigabytes): sh, cat,
 * sleep (the jail's holder), their libraries, an /etc with root and nobody. */
function tinyRoot(dir: string): void {
  const progs = ['/usr/bin/dash', '/usr/bin/cat', '/usr/bin/sleep'];
  const files = new Set<string>([...progs, '/usr/lib64/ld-linux-x86-64.so.2']);
  for (const prog of progs) {
    const out = execFileSync('ldd', [prog], { encoding: 'utf8' });
    for (const m of out.matchAll(/(\/[^\s]+\.so[^\s]*)/g)) files.add(m[1]!.replace(/^\/(lib|lib64)\//, '/usr/$1/'));
  }
  for (const f of files) {
    mkdirSync(join(dir, dirname(f)), { recursive: true });
    copyFileSync(f, join(dir, f));
  }
  symlinkSync('dash', join(dir, 'usr/bin/sh'));
  for (const l of ['bin', 'lib', 'lib64']) symlinkSync(`usr/${l}`, join(dir, l));
  for (const d of ['etc', 'tmp', 'run', 'proc', 'dev', 'root']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(
    join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n',
  );
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
}

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-fs-mountinfo-'));
  mini = mkdtempSync(join(tmpdir(), 'jy-fs-mountinfo-mini-'));
  tinyRoot(mini);
  let r = await jy('skel', 'create', 'host', '--from', '/');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('skel', 'create', 'mini', '--copy', mini);
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await jy('remove', '-l', 'test=fs-mountinfo');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
  rmSync(mini, { recursive: true, force: true });
});

const cases: { name: string; params: string[] }[] = [
  { name: 'mi-nullfs', params: ['skeleton=host', 'skeleton.strategy=nullfs'] },
  { name: 'mi-basejail', params: ['skeleton=host', 'skeleton.strategy=basejail'] },
  { name: 'mi-overlay', params: ['skeleton=host', 'skeleton.strategy=overlay'] },
  { name: 'mi-full', params: ['skeleton=mini', 'skeleton.strategy=full'] },
  { name: 'mi-disk', params: ['skeleton=host', 'skeleton.strategy=nullfs', 'limits.disk=32M'] },
];

/** The jail's mountinfo lines that name a path of the state folder. */
async function leaks(name: string): Promise<string[]> {
  const info = jyBin('exec', name, 'cat', '/proc/self/mountinfo');
  assert.ok(info.includes(' / / ') || info.split('\n')[0]!.includes(' / '), info);
  return info.split('\n').filter((l) => l.includes(state) || l.includes('/jails/') || l.includes('/skeletons/'));
}

for (const c of cases) {
  test(`${c.name}: no state path in the jail's /proc/self/mountinfo`, async () => {
    let r = await jy('create', c.name, ...c.params, 'persist', 'meta.test=fs-mountinfo');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('start', c.name);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await leaks(c.name), []);
    const overlays = jyBin('exec', c.name, 'cat', '/proc/self/mountinfo')
      .split('\n')
      .filter((l) => l.includes(' - overlay '));
    for (const l of overlays)
      assert.doesNotMatch(l, /(lowerdir|upperdir|workdir)\+?=\//, `overlay layers name no path: ${l}`);
    // the jail still works on its root: writes, renames, hard links
    assert.equal(jyBin('exec', c.name, 'sh', '-c', 'echo ok > /tmp/a && cat /tmp/a'), 'ok\n');
    assert.ok(existsSync(join(state, 'jails', c.name)));
  });
}

test('the guest folder (/run/jailyard) is a tmpfs of its own: its mount root is "/", and the env in it follows every change', async () => {
  const name = 'mi-guest';
  let r = await jy('create', name, 'skeleton=host', 'persist', 'meta.test=fs-mountinfo', 'env.colour=red');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', name);
  assert.equal(r.code, 0, r.stderr);
  const line = jyBin('exec', name, 'cat', '/proc/self/mountinfo')
    .split('\n')
    .find((l) => l.split(' ')[4] === GUEST);
  assert.ok(line, 'the guest folder is mounted at /run/jailyard');
  const f = line.split(' ');
  assert.equal(f[3], '/', `its mount root shows no host folder: ${line}`);
  assert.match(line, / - tmpfs jailyard-guest /, line);
  assert.match(f[5]!, /^ro,/, `read-only in the jail: ${line}`);
  assert.equal(jyBin('exec', name, 'cat', `${GUEST}/env`), 'colour=red');
  // changed while it runs: the jail reads the new value at once
  r = await jy('set', name, 'env.colour=blue');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(jyBin('exec', name, 'cat', `${GUEST}/env`), 'colour=blue');
  // changed while it is stopped, and the change made while it ran: both kept by the next start
  r = await jy('stop', name);
  assert.equal(r.code, 0, r.stderr);
  r = await jy('set', name, 'env.size=large');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', name);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(jyBin('exec', name, 'cat', `${GUEST}/env`), 'size=large\ncolour=blue');
  // an env as large as a raised meta_maxbufsize allows fits (the jail cannot write there:
  // the tmpfs has no cap of its own)
  r = await jy('sysctl', 'meta_maxbufsize=1048576');
  assert.equal(r.code, 0, r.stderr);
  try {
    const part = 'x'.repeat(100_000);
    r = await jy('set', name, `env.a=${part}`, `env.b=${part}`, `env.c=${part}`);
    assert.equal(r.code, 0, r.stderr);
    const bytes = Number(jyBin('exec', name, 'wc', '-c', `${GUEST}/env`).trim().split(' ')[0]);
    assert.ok(bytes > 300_000, `the jail reads the whole env: ${bytes} bytes`);
  } finally {
    await jy('sysctl', 'meta_maxbufsize=4096');
  }
  r = await jy('remove', name);
  assert.equal(r.code, 0, r.stderr);
});
