// Issue 11 item 7 (the tree side): a jail of a skeleton that references a live tree
// (`skel create --from /`) sees only the romounts dirs and its own writable part, for EVERY
// strategy: basejail's /basejail is not a view of the host's whole root, overlay's lower
// layers are the romounts dirs (not the host's /), a full copy holds nothing else of the
// tree. The expected top level comes from the defaults file; marker files the test makes in
// a fresh host dir and in a host user's home must not be reachable; the jail still works.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { binFor, cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { loadDefaults } from '../../src/defaults.ts';

let state: string;
let fake: string;
let marker: string;
let homeMarker: string | undefined;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);
const SECRET = 'JY-LIVEROOT-MARKER';

const defaults = loadDefaults();
const romounts = defaults.skeleton.romounts.linux;
const writable = defaults.skeleton.writable.linux;
/** What the jail itself adds at its top level: devfs, proc, the guest folder's parent, tini. */
const JAIL_OWN = ['dev', 'proc', 'run', 'sys', '.jailyard'];

const jyBin = binFor(() => state);

/** Runs argv in the jail; its exit code (0 = ok). */
function jexec(jail: string, ...argv: string[]): number {
  try {
    jyBin('exec', jail, ...argv);
    return 0;
  } catch (e) {
    return (e as { status?: number }).status ?? -1;
  }
}

/** The names `ls -A DIR` lists inside the jail. */
function lsIn(jail: string, dir: string): string[] {
  return jyBin('exec', jail, 'ls', '-A', dir).split('\n').filter(Boolean).sort();
}

const topOf = (list: string[]): string[] => [...new Set(list.map((r) => r.split('/')[0]!))];

/** Entries of `list` directly below `parent` ("usr" -> bin, sbin, ...). */
const below = (list: string[], parent: string): string[] => [
  ...new Set(list.filter((r) => r.startsWith(`${parent}/`)).map((r) => r.slice(parent.length + 1).split('/')[0]!)),
];

/** A small live tree for the full strategy (a copy of the host's /usr is gigabytes): sh, id,
 * ls, cat, sleep, grep, readlink, setpriv and their libraries, an /etc with accounts, and dirs that are not listed. */
function fakeRoot(dir: string): void {
  const progs = [
    '/usr/bin/dash',
    '/usr/bin/id',
    '/usr/bin/ls',
    '/usr/bin/cat',
    '/usr/bin/sleep',
    '/usr/bin/grep',
    '/usr/bin/readlink',
    '/usr/bin/setpriv',
  ];
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
  for (const d of ['etc', 'tmp', 'run', 'root', 'boot', 'work/src', 'home/alice', 'srv', 'farm'])
    mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(
    join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n',
  );
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nalice:x:1000:\nnogroup:x:65534:\n');
  writeFileSync(join(dir, 'work/src/notes'), `${SECRET} work\n`);
  writeFileSync(join(dir, 'home/alice/.profile'), `${SECRET} home\n`);
  writeFileSync(join(dir, 'boot/vmlinuz'), `${SECRET} boot\n`);
  writeFileSync(join(dir, 'container_info.json'), `${SECRET} top\n`);
  writeFileSync(join(dir, 'usr/bin/listed'), 'a listed dir is copied\n');
}

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-fs-liveroot-'));
  // a fresh host dir at the top of the live root, and a file in a host user's home
  marker = mkdtempSync('/jy-liveroot-marker-');
  writeFileSync(join(marker, 'secret'), `${SECRET} host\n`);
  const user = existsSync('/home') ? readdirSync('/home').find((n) => !n.startsWith('.')) : undefined;
  if (user) {
    homeMarker = join('/home', user, `${basename(marker)}.txt`);
    writeFileSync(homeMarker, `${SECRET} home\n`);
  }
  fake = mkdtempSync(join(tmpdir(), 'jy-fs-liveroot-fake-'));
  fakeRoot(fake);
  let r = await jy('skel', 'create', 'host', '--from', '/');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('skel', 'create', 'fake', '--from', fake);
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await jy('remove', '-l', 'test=fs-liveroot');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
  rmSync(fake, { recursive: true, force: true });
  rmSync(marker, { recursive: true, force: true });
  if (homeMarker) rmSync(homeMarker, { force: true });
});

async function startJail(name: string, params: string[]): Promise<void> {
  let r = await jy('create', name, ...params, 'persist', 'meta.test=fs-liveroot');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', name);
  assert.equal(r.code, 0, r.stderr);
}

/** Nothing of the host's tree beyond the allowed names, and the markers not reachable. */
function assertOnlyListed(jail: string, allowedTop: string[], views: string[]): void {
  const top = lsIn(jail, '/');
  const extra = top.filter((n) => !allowedTop.includes(n));
  assert.deepEqual(extra, [], `the jail's / lists only romounts, writable and its own dirs (got ${top.join(' ')})`);
  const host = readdirSync('/');
  const leaked = host.filter((n) => top.includes(n) && !allowedTop.includes(n));
  assert.deepEqual(leaked, []);
  const paths = [`/${basename(marker)}/secret`, state, ...(homeMarker ? [homeMarker] : [])];
  for (const view of views) {
    // the shell's own test: a missing program must not pass for a missing path
    for (const p of paths)
      assert.equal(
        jyBin('exec', jail, 'sh', '-c', 'test -e "$1" && echo yes || echo no', 'sh', `${view}${p}`),
        'no\n',
        `${view}${p} is reachable in ${jail}`,
      );
  }
  assert.equal(
    jyBin(
      'exec',
      jail,
      'sh',
      '-c',
      `grep -rsl ${SECRET} /etc /root /home /usr/local /opt /srv /mnt /basejail/home; echo end`,
    ),
    'end\n',
  );
}

/** The jail works: a shell, python, apt, id, a program run as nobody. */
function assertWorks(jail: string, full = false): void {
  assert.equal(jyBin('exec', jail, 'sh', '-c', 'echo ok > /tmp/a && cat /tmp/a'), 'ok\n');
  assert.equal(jyBin('exec', jail, 'id', '-u').trim(), '0');
  assert.equal(jyBin('exec', '-U', 'nobody', jail, 'id', '-un').trim(), 'nobody');
  if (full) return;
  assert.equal(jexec(jail, 'python3', '-c', '1'), 0);
  assert.match(jyBin('exec', jail, 'apt-get', '--version'), /^apt /);
}

const thin = ['nullfs', 'basejail', 'overlay'] as const;
for (const userns of [false, true]) {
  for (const s of thin) {
    const name = `lr-${s}${userns ? '-u' : ''}`;
    test(`${name}: a --from / jail shows only romounts + writable dirs${userns ? ' (user namespace)' : ''}`, async () => {
      await startJail(name, ['skeleton=host', `skeleton.strategy=${s}`, ...(userns ? ['userns'] : [])]);
      const allowed = [...topOf(romounts), ...topOf(writable), ...JAIL_OWN, ...(s === 'basejail' ? ['basejail'] : [])];
      assertOnlyListed(name, allowed, s === 'basejail' ? ['', '/basejail'] : ['']);
      const usr = lsIn(name, '/usr');
      assert.deepEqual(
        usr.filter((n) => ![...below(romounts, 'usr'), ...below(writable, 'usr')].includes(n)),
        [],
        `/usr: ${usr.join(' ')}`,
      );
      if (s === 'basejail') {
        const base = lsIn(name, '/basejail');
        assert.deepEqual(
          base.filter((n) => !topOf(romounts).includes(n)),
          [],
          `/basejail: ${base.join(' ')}`,
        );
        assert.deepEqual(
          lsIn(name, '/basejail/usr').filter((n) => !below(romounts, 'usr').includes(n)),
          [],
        );
        assert.equal(jyBin('exec', name, 'readlink', '/usr/bin'), '../basejail/usr/bin\n');
      }
      // romounts stay read-only (nullfs, basejail) or copy-on-write of the jail's own (overlay)
      const w = jexec(name, 'sh', '-c', 'echo x > /usr/bin/jy-liveroot-probe');
      if (s === 'overlay') {
        assert.equal(w, 0);
        assert.equal(existsSync('/usr/bin/jy-liveroot-probe'), false, 'a jail write reached the host /usr/bin');
      } else assert.notEqual(w, 0);
      assertWorks(name);
    });
  }
}

test('lr-overlay-disk: with limits.disk the overlay jail of a live tree has no writable space outside its image', async () => {
  await startJail('lr-overlay-disk', ['skeleton=host', 'skeleton.strategy=overlay', 'limits.disk=32M']);
  // lost+found: the image's own ext4
  assertOnlyListed('lr-overlay-disk', [...topOf(romounts), ...topOf(writable), ...JAIL_OWN, 'lost+found'], ['']);
  assert.notEqual(
    jexec('lr-overlay-disk', 'sh', '-c', 'head -c 1048576 /dev/zero > /usr/bin/jy-liveroot-probe'),
    0,
    '/usr/bin is read-only',
  );
  assert.notEqual(
    jexec('lr-overlay-disk', 'sh', '-c', 'head -c 41943040 /dev/zero > /tmp/big; rc=$?; rm -f /tmp/big; exit $rc'),
    0,
    'the image is the limit',
  );
  assertWorks('lr-overlay-disk');
});

test('lr-full: a full copy of a live tree holds only its romounts and writable dirs', async () => {
  await startJail('lr-full', ['skeleton=fake', 'skeleton.strategy=full']);
  const root = join(state, 'jails', 'lr-full', 'root');
  const allowed = [...topOf(romounts), ...topOf(writable), ...JAIL_OWN];
  assertOnlyListed('lr-full', allowed, ['']);
  for (const n of ['work', 'boot', 'farm', 'container_info.json'])
    assert.equal(existsSync(join(root, n)), false, `${n} copied`);
  assert.deepEqual(readdirSync(join(root, 'home')), [], 'home is seeded empty');
  assert.equal(existsSync(join(root, 'usr/bin/listed')), true);
  assert.equal(jyBin('exec', 'lr-full', 'readlink', '/bin'), 'usr/bin\n');
  assertWorks('lr-full', true);
});
