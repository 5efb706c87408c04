// Jails without a path (jail(8): the parent's root) and with path=/ (issue #15): on Linux a
// thin nullfs jail on the implicit reference skeleton "host-root" of the host's / (made on
// first use). The host's tree read-only, /tmp, /var/tmp and /run the jail's own, none of
// the host's secrets, the state folder nowhere in the jail; a nested jail without a path
// shares its parent's root. Real namespaces and mounts; nothing left at the end.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JailyardError } from '../../src/errors.ts';
import { HOST_ROOT_SKELETON, jailRoot, skeletonOf } from '../../src/layout.ts';
import { seedWritable } from '../../src/skeleton/writable.ts';
import { cliFor, runBin } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

describe('the root of a jail without a path (pure)', () => {
  test('no path and path=/ run on host-root; a skeleton or a path of its own does not', () => {
    assert.equal(skeletonOf({ name: 'a', params: {} }), HOST_ROOT_SKELETON);
    assert.equal(skeletonOf({ name: 'a', params: { path: '/' } }), HOST_ROOT_SKELETON);
    assert.equal(skeletonOf({ name: 'a', params: { path: '//.' } }), HOST_ROOT_SKELETON);
    assert.equal(skeletonOf({ name: 'a', params: { skeleton: 'deb' } }), 'deb');
    assert.equal(skeletonOf({ name: 'a', params: { path: '/srv/a' } }), undefined);
    assert.equal(skeletonOf({ name: 'a.b', params: {} }), undefined, 'a nested jail takes its parent root as it is');
    assert.equal(jailRoot('/s', { name: 'a', params: {} }), '/s/jails/a/root');
    assert.equal(jailRoot('/s', { name: 'a', params: { path: '/' } }), '/s/jails/a/root');
    assert.equal(jailRoot('/s', { name: 'a.b', params: {} }, '/s/jails/a/root'), '/s/jails/a/root');
    assert.equal(jailRoot('/s', { name: 'a.b', params: { path: '/' } }, '/s/jails/a/root'), '/s/jails/a/root');
    assert.throws(
      () => jailRoot('/s', { name: 'a', params: { path: '/', skeleton: 'deb' } }),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_PATH' && e.place.param === 'path',
      'path=/ with a skeleton would mount onto the host root',
    );
  });

  test('a seed of a live root never takes an excluded folder, not even its name', () => {
    const src = mkdtempSync(join(tmpdir(), 'jy-pathless-src-'));
    const dest = mkdtempSync(join(tmpdir(), 'jy-pathless-dest-'));
    try {
      for (const d of ['var/db/jailyard/jails/secretname/root', 'var/lib/other'])
        mkdirSync(join(src, d), { recursive: true });
      seedWritable(src, dest, ['var'], { rules: { structure: ['var'] }, exclude: [join(src, 'var/db/jailyard')] });
      assert.deepEqual(readdirSync(join(dest, 'var/db')), []);
      assert.deepEqual(readdirSync(join(dest, 'var/lib')), ['other']);
    } finally {
      rmSync(src, { recursive: true, force: true });
      rmSync(dest, { recursive: true, force: true });
    }
  });
});

let state: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);

async function ok(...args: string[]): Promise<string> {
  const r = await jy(...args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** A shell script in the jail, as a process of its own (exec passes its stdio through). */
const sh = async (jail: string, script: string) => runBin(state, ['exec', jail, '/bin/sh', '-c', script]);

describe('jails without a path, for real', { timeout: 120_000 }, () => {
  before(() => {
    baseline = snapshot();
    state = mkdtempSync(join(tmpdir(), 'jy-pathless-'));
  });
  after(async () => {
    for (const j of ['pl.kid', 'pl', 'plroot', 'plpath']) await jy('remove', j);
    try {
      assertNoLeaks(baseline, state);
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });

  test("a jail without a path: the host's tree read-only, its own /tmp, /var/tmp and /run, no secret", async () => {
    await ok('create', 'pl', 'persist', 'children.max=1');
    assert.match(await ok('skel', 'ls'), /host-root\s+1\s/, 'host-root is made on first use');
    await ok('start', 'pl');
    const r = await sh(
      'pl',
      `for f in /tmp/a /var/tmp/b /run/c /root/d /etc/e; do echo x > "$f" || echo "FAIL write $f"; done
       for d in /usr/bin /usr/lib /bin /usr/share; do touch "$d/.jy-pl" 2>/dev/null && echo "BREACH wrote $d"; done
       grep -q '\\$' /etc/shadow && echo "BREACH a password hash in /etc/shadow"
       ls /etc/ssh/ssh_host_* 2>/dev/null && echo "BREACH host keys"
       grep -F '${state}' /proc/self/mountinfo | grep -v ' /run/jailyard ' && echo "BREACH the state folder in mountinfo"
       [ -e '${state}' ] && echo "BREACH the state folder is visible"
       test -c /dev/null || echo "FAIL no /dev/null"
       test -r /proc/self/status || echo "FAIL no /proc"
       true`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '', r.stdout);
    // the writes stayed in the jail's own tree
    assert.ok(!existsSync('/etc/e') && !existsSync('/root/d'));
  });

  test("the mounts step refuses the host's own / as a root, whatever asks", async () => {
    const { mount } = await import('../../src/platform/linux/mounts.ts');
    const ctx = {
      spec: { name: 'plx', params: {} },
      name: 'plx',
      jid: 1,
      path: '/',
      stateDir: join(state, 'jails/plx'),
    };
    const onRoot = () => snapshot().mounts.filter((m) => m === '/' || m === '/proc');
    const before = onRoot();
    await assert.rejects(
      mount(ctx, { root: '/', mkdirs: ['/proc'], symlinks: [], mounts: [] }),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_PATH' && e.place.param === 'path',
    );
    assert.deepEqual(onRoot(), before);
  });

  test('path=/ is the same kind of jail, nothing is mounted on the host root', async () => {
    const before = snapshot().mounts.filter((m) => m === '/' || m.startsWith('/usr') || m.startsWith('/etc'));
    await ok('create', 'plroot', 'path=/', 'persist');
    await ok('start', 'plroot');
    const after = snapshot().mounts.filter((m) => m === '/' || m.startsWith('/usr') || m.startsWith('/etc'));
    assert.deepEqual(after, before);
    const r = await sh('plroot', 'echo ok > /tmp/x && cat /tmp/x && ls /run/jailyard');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ok\n/);
    await ok('remove', 'plroot');
    const refused = await jy('create', 'plbad', 'path=/', `skeleton=${HOST_ROOT_SKELETON}`);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /path/);
  });

  test("a nested jail without a path shares its parent's root", async () => {
    await ok('create', 'pl.kid', 'persist');
    await ok('start', 'pl.kid');
    assert.equal((await sh('pl', 'echo from-parent > /tmp/shared')).code, 0);
    const r = await sh('pl.kid', 'cat /tmp/shared; touch /usr/bin/.jy-kid 2>/dev/null && echo BREACH; true');
    assert.equal(r.stdout, 'from-parent\n', r.stderr);
    await ok('remove', 'pl.kid');
    await ok('remove', 'pl');
    // the skeleton stays for the next jail without a path; it is a reference (no copy of /)
    assert.ok(existsSync(join(state, 'skeletons', HOST_ROOT_SKELETON)));
  });

  test("a path jail's folder keeps only what was there and what the jail wrote", async (t) => {
    // an admin's folder, outside the state folder
    const dir = mkdtempSync(join(tmpdir(), 'jy-pathless-admin-'));
    t.after(async () => {
      await jy('remove', 'plpath'); // nothing mounted in it any more before it goes
      rmSync(dir, { recursive: true, force: true });
    });
    mkdirSync(join(dir, 'etc'), { recursive: true });
    writeFileSync(join(dir, 'keep'), 'mine\n');
    for (const d of ['bin', 'lib', 'lib64', 'sbin']) symlinkSync(`usr/${d}`, join(dir, d));
    const before = readdirSync(dir).sort();
    await ok('create', 'plpath', `path=${dir}`, 'persist', 'mount.devfs', `mount=/usr ${dir}/usr nullfs ro 0 0`);
    await ok('start', 'plpath');
    const r = await sh(
      'plpath',
      'echo hi > /written && mkdir -p /run/own && ls -d /dev/null /proc/self /.jailyard/tini /.jailyard/hold',
    );
    assert.equal(r.code, 0, r.stderr);
    await ok('stop', 'plpath');
    await ok('start', 'plpath');
    await ok('remove', 'plpath');
    // run/ stays: the jail wrote into it; every mount point jailyard made is gone
    assert.deepEqual(readdirSync(dir).sort(), [...before, 'run', 'written'].sort());
    assert.deepEqual(readdirSync(join(dir, 'run')), ['own']);
    // without mount.devfs the stage's minimal /dev has a mount point jailyard made too
    await ok('create', 'plpath', `path=${dir}`, 'persist', `mount=/usr ${dir}/usr nullfs ro 0 0`);
    await ok('start', 'plpath');
    assert.equal((await sh('plpath', 'test -c /dev/null')).code, 0);
    await ok('remove', 'plpath');
    assert.deepEqual(readdirSync(dir).sort(), [...before, 'run', 'written'].sort());
  });
});
