// Issue 11 item 8: a setuid program the jailed root plants in its tree never runs as root for
// a local user of the host. Every mount of the jail's plan is nosuid,nodev in the host's view
// (the root's self-bind, copy-on-write and overlay layers, binds); the jail itself still
// honours setuid (its own mount namespace). Directories jailyard makes on the way to a jail's
// `path` are 0700, so a stopped jail's tree (plain files on the host) is out of reach too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binFor, cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let outer: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);

const jyBin = binFor(() => state);

/** Runs `prog -p -c 'echo euid=...'` as the host's nobody (from a shell of nobody's). */
function asNobody(prog: string): { code: number | null; out: string } {
  // through a shell: setpriv's own execve still passes path checks a plain user fails
  const script = '"$0" -p -c \'echo euid=$(id -u)\'';
  const r = spawnSync(
    'setpriv',
    ['--reuid', '65534', '--regid', '65534', '--clear-groups', '/bin/sh', '-c', script, prog],
    { encoding: 'utf8' },
  );
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

before(() => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-fs-suid-'));
  // a world-readable place for path= jails, as /srv/jails would be
  outer = mkdtempSync(join(tmpdir(), 'jy-fs-suid-path-'));
  chmodSync(outer, 0o755);
});

after(async () => {
  await jy('remove', '-l', 'test=fs-suid');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
  rmSync(outer, { recursive: true, force: true });
});

const mountOptions = (target: string): string | undefined =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => f[4] === target)?.[5];

for (const strategy of ['nullfs', 'overlay'] as const) {
  test(`${strategy}: a setuid-root copy planted by the jailed root gives a local user no euid 0`, async () => {
    const name = `suid-${strategy}`;
    const root = join(outer, 'jails', name);
    let r = await jy('skel', 'create', `host-${strategy}`, '--from', '/');
    assert.equal(r.code, 0, r.stderr);
    r = await jy(
      'create',
      name,
      `skeleton=host-${strategy}`,
      `skeleton.strategy=${strategy}`,
      `path=${root}`,
      'persist',
      'meta.test=fs-suid',
    );
    assert.equal(r.code, 0, r.stderr);
    r = await jy('start', name);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lstatSync(join(outer, 'jails')).mode & 0o777, 0o700, 'the directory made on the way to path is 0700');
    assert.equal(lstatSync(root).mode & 0o777, 0o755, "the jail's root stays 0755 (its own users walk through it)");

    // the jailed root plants setuid-root shells in its writable root and in /etc
    jyBin('exec', name, 'sh', '-c', 'for d in /tmp /etc; do cp /bin/sh $d/jy-suid && chmod 4755 $d/jy-suid; done');
    assert.equal(lstatSync(join(root, 'tmp/jy-suid')).mode & 0o7777, 0o4755, 'the planted copy is setuid root');
    // inside the jail, setuid is honoured (FreeBSD semantics)
    assert.match(jyBin('exec', '-U', 'nobody', name, '/tmp/jy-suid', '-p', '-c', 'echo euid=$(id -u)'), /euid=0/);

    // a local user who reaches the tree (the admin made the parent world-readable) gets no root
    chmodSync(join(outer, 'jails'), 0o755);
    try {
      for (const rel of ['tmp/jy-suid', 'etc/jy-suid']) {
        const got = asNobody(join(root, rel));
        assert.equal(got.code, 0, got.out);
        assert.match(got.out, /euid=65534/, `${rel} runs as nobody on the host`);
      }
      for (const target of strategy === 'nullfs' ? [root, join(root, 'etc')] : [root]) {
        const opts = mountOptions(target) ?? '';
        assert.match(opts, /\bnosuid\b/, `${target} nosuid in the host's view (${opts})`);
        assert.match(opts, /\bnodev\b/, `${target} nodev in the host's view (${opts})`);
      }
    } finally {
      chmodSync(join(outer, 'jails'), 0o700);
    }

    r = await jy('stop', name);
    assert.equal(r.code, 0, r.stderr);
    // stopped: the planted file is a plain host file, but out of a local user's reach
    const got = asNobody(join(root, 'tmp/jy-suid'));
    assert.notEqual(got.code, 0, got.out);
    assert.match(got.out, /Permission denied/);
  });
}

test('a path whose every folder above lets local users pass is refused at start, naming the folders; closing one is enough', async () => {
  // audit: path=/srv/pub/r7 with /srv/pub 0755 (made by the admin): a local user ran the
  // stopped jail's setuid-root copy as root, wrote into its tree, and raced host walks of it
  const open = join(outer, 'pub');
  mkdirSync(open, { mode: 0o755 });
  chmodSync(open, 0o755);
  chmodSync(outer, 0o755);
  const root = join(open, 'r7');
  let r = await jy('skel', 'create', 'host-open', '--from', '/');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('create', 'open-path', 'skeleton=host-open', `path=${root}`, 'persist', 'meta.test=fs-suid');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'open-path');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /parameter "path".*reachable by the host's local users/);
  assert.match(r.stderr, new RegExp(`chmod 700 ${open}`));
  assert.match((await jy('ls', '-a', '-n', '-j', 'open-path', 'state')).stdout, /state=stopped/);
  chmodSync(open, 0o700);
  r = await jy('start', 'open-path');
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await jy('stop', 'open-path')).code, 0);
  chmodSync(outer, 0o700);
});

test("jailyard's state folders are 0700", async () => {
  const fresh = join(state, 'nested-state');
  const r = await cliFor(() => fresh)('skel', 'create', 'h', '--from', '/');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(lstatSync(fresh).mode & 0o777, 0o700);
  assert.equal(lstatSync(join(state, 'jails')).mode & 0o777, 0o700);
  rmSync(fresh, { recursive: true, force: true });
});
