// export / import: a jail that wrote files (and deleted one of its skeleton's) goes to an
// archive, is imported into a second state folder (another host's, for jailyard) and starts
// there with its files, meta and env; a missing or different skeleton is refused and says
// what to do; crafted archives (.. paths, absolute paths, links out, entries below a symlink,
// huge sizes) are refused and leave nothing, on the host or in the state folder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import { Header } from 'tar';
import { cliFor, runBin } from '../helpers/cli.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';
import { miniTree } from '../helpers/mini-skeleton.ts';

let A: string;
let B: string;
let baseline: SystemSnapshot;
const jyA = cliFor(() => A);
const jyB = cliFor(() => B);

function sh(state: string, jail: string, script: string): string {
  const r = runBin(state, ['exec', jail, '/bin/sh', '-c', script]);
  assert.equal(r.code, 0, `${jail}: ${script}: ${r.stderr}`);
  return r.stdout;
}

/** What a refused import must not leave: a jail, a staging folder. */
function assertNothingImported(state: string): void {
  const left = existsSync(state) ? readdirSync(state).filter((n) => n.startsWith('.import-')) : [];
  assert.deepEqual(left, [], 'no staging folder left');
  const jails = join(state, 'jails');
  assert.deepEqual(existsSync(jails) ? readdirSync(jails) : [], [], 'no jail folder left');
}

before(async () => {
  baseline = snapshot();
  A = mkdtempSync(join(tmpdir(), 'jy-export-a-'));
  B = mkdtempSync(join(tmpdir(), 'jy-export-b-'));
  miniTree(join(A, 'src'));
  const r = await jyA('skel', 'create', 'mini', '--copy', join(A, 'src'));
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await jyA('remove', 'ex1');
  await jyB('remove', 'im1');
  assertNoLeaks(baseline, A);
  assertNoLeaks(baseline, B);
  rmSync(A, { recursive: true, force: true });
  rmSync(B, { recursive: true, force: true });
});

test('export a jail that wrote files, import it into another state folder, start it: files, meta and env are there', {
  timeout: 120_000,
}, async () => {
  let r = await jyA(
    'create',
    'ex1',
    'skeleton=mini',
    'persist',
    'ip4.addr=198.51.100.231/24',
    'meta.app=web',
    'env.color=blue',
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await jyA('start', 'ex1')).code, 0);
  // its own file, a changed config file (copy-on-write /etc), a deleted skeleton file
  // and a folder of the skeleton's removed and made again (overlayfs marks it opaque)
  sh(
    A,
    'ex1',
    'echo data > /root/data.txt && echo app > /etc/app.conf && rm /etc/passwd && mkdir -p /var/log/app && rm -r /etc/sub && mkdir /etc/sub && echo b > /etc/sub/b.conf',
  );
  // a running jail is refused (its files change under the copy)
  r = await jyA('export', 'ex1', '-o', join(A, 'ex1.tar.zst'));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /running.*stop it first, or pass --restart/);
  assert.equal(existsSync(join(A, 'ex1.tar.zst')), false);
  // --restart: stopped for the export, running again after it
  r = await jyA('export', 'ex1', '-o', join(A, 'ex1.tar.zst'), '--restart');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /ex1: started again/);
  assert.equal((await jyA('stop', 'ex1')).code, 0);
  r = await jyA('export', 'ex1', '-o', join(A, 'ex1-full.tar.zst'), '--full', '--json');
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as { skeleton: { name: string; version: number; included: boolean } };
  assert.deepEqual([summary.skeleton.name, summary.skeleton.version, summary.skeleton.included], ['mini', 1, true]);

  // B has no skeleton mini: refused, says what to do, nothing made
  r = await jyB('import', join(A, 'ex1.tar.zst'), '--name', 'im1', 'ip4.addr=198.51.100.232/24');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /skeleton mini@1 \(digest [0-9a-f]{64}\) is not on this host.*--full/);
  assertNothingImported(B);

  // B's mini@1 is another tree: a digest mismatch, refused
  miniTree(join(B, 'src'), { 'etc/motd': 'another tree\n' });
  assert.equal((await jyB('skel', 'create', 'mini', '--copy', join(B, 'src'))).code, 0);
  r = await jyB('import', join(A, 'ex1.tar.zst'), '--name', 'im1', 'ip4.addr=198.51.100.232/24');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /skeleton mini@1 here has digest [0-9a-f]{64}, the archive's has [0-9a-f]{64}/);
  assert.equal(existsSync(join(B, 'jails')) ? readdirSync(join(B, 'jails')).length : 0, 0);

  // what a killed import left (its process is gone) is removed by the next one
  const dead = spawnSync('true').pid!;
  mkdirSync(join(B, `.import-${dead}-0badc0de/part`), { recursive: true });
  // the --full archive carries the tree: B gets it as mini@2 (same digest as A's mini@1)
  // its labels (meta app=web, env color=blue) are the exporter's: refused without --trust,
  // naming them, nothing made (they would put it in this host's pools and selectors)
  r = await jyB('import', join(A, 'ex1-full.tar.zst'), '--name', 'im1', 'ip4.addr=198.51.100.232/24');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /refused: its meta\/env carry the labels app, color/);
  assertNothingImported(B);
  r = await jyB(
    'import',
    join(A, 'ex1-full.tar.zst'),
    '--name',
    'im1',
    'ip4.addr=198.51.100.232/24',
    '--start',
    '--trust',
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /im1: skeleton mini@2 made from the archive/);
  assert.equal(existsSync(join(B, `.import-${dead}-0badc0de`)), false, "a dead import's folder is gone");
  assert.equal(sh(B, 'im1', 'cat /root/data.txt /etc/app.conf'), 'data\napp\n');
  assert.equal(sh(B, 'im1', 'ls /etc/passwd 2>/dev/null || echo gone'), 'gone\n', 'the deleted file stays deleted');
  assert.equal(sh(B, 'im1', 'ls -d /var/log/app'), '/var/log/app\n');
  assert.equal(sh(B, 'im1', 'ls /etc/sub'), 'b.conf\n', "the remade folder hides the skeleton's files (opaque)");
  assert.match(sh(B, 'im1', 'cat /run/jailyard/env'), /color=blue/);
  assert.equal(sh(B, 'im1', 'hostname').trim(), 'im1', 'its own name');
  r = await jyB('ls', '--json', '-j', 'im1', 'name', 'meta', 'ip4.addr', 'skeleton');
  assert.match(r.stdout, /app=web/);
  assert.match(r.stdout, /198\.51\.100\.232/);
  // a second import of the same name: refused by create, nothing changed
  r = await jyB('import', join(A, 'ex1-full.tar.zst'), '--name', 'im1');
  assert.equal(r.code, 1);
  assert.deepEqual(
    readdirSync(B).filter((n) => n.startsWith('.import-')),
    [],
  );
  assert.equal((await jyB('stop', 'im1')).code, 0);
});

// --- crafted archives -----------------------------------------------------------------

interface Crafted {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice';
  linkpath?: string;
  body?: string;
  size?: number;
}

function block(h: Crafted): Buffer {
  const size = h.size ?? (h.body !== undefined ? Buffer.byteLength(h.body) : 0);
  const header = new Header({
    path: h.path,
    type: h.type ?? 'File',
    mode: h.type === 'Directory' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    size,
    mtime: new Date(),
    ...(h.linkpath !== undefined ? { linkpath: h.linkpath } : {}),
  });
  header.encode();
  const parts = [header.block as Buffer];
  if (h.body !== undefined) {
    const b = Buffer.from(h.body);
    parts.push(b, Buffer.alloc((512 - (b.length % 512)) % 512));
  }
  return Buffer.concat(parts);
}

/** A zstd tar with a valid manifest first (no skeleton), then `entries`. */
function craft(file: string, entries: Crafted[], manifest: Record<string, unknown> = {}): string {
  const m = JSON.stringify({
    format: 'jailyard-export',
    version: 1,
    jail: 'evil',
    conf: 'evil {\n\tpersist;\n\tpath = /nonexistent/evil;\n}\n',
    meta: '',
    env: '',
    skeleton: null,
    pin: null,
    parts: ['root'],
    bytes: 1 << 20,
    entries: 100,
    createdAt: '',
    host: 'elsewhere',
    notes: [],
    ...manifest,
  });
  const tar = Buffer.concat([
    block({ path: 'jailyard-export.json', body: m }),
    ...entries.map(block),
    Buffer.alloc(1024),
  ]);
  writeFileSync(file, zstdCompressSync(tar));
  return file;
}

test('crafted archives are refused with a clear error and leave nothing', { timeout: 60_000 }, async () => {
  const victim = join(A, 'victim');
  mkdirSync(victim);
  const dir = { path: 'part/root/', type: 'Directory' } as const;
  const cases: [string, Crafted[], RegExp, Record<string, unknown>?][] = [
    ['dotdot', [dir, { path: 'part/root/../../../victim/pwned', body: 'x' }], /has an empty, "\." or "\.\." component/],
    ['absolute', [dir, { path: `${victim}/pwned`, body: 'x' }], /has an absolute path/],
    [
      'through a symlink',
      [
        dir,
        { path: 'part/root/evil', type: 'SymbolicLink', linkpath: victim },
        { path: 'part/root/evil/pwned', body: 'x' },
      ],
      /not below a directory the archive made first/,
    ],
    [
      'absolute hard link',
      [dir, { path: 'part/root/h', type: 'Link', linkpath: '/etc/passwd' }],
      /hard link "part\/root\/h" -> "\/etc\/passwd" does not name a file earlier/,
    ],
    [
      'symlink climbing out',
      [dir, { path: 'part/root/up', type: 'SymbolicLink', linkpath: '../../../../victim' }],
      /climbs out of part\/root/,
    ],
    ['outside the parts', [{ path: 'etc/passwd', body: 'x' }], /outside the archive's parts/],
    [
      'the root a link',
      [{ path: 'part/root', type: 'SymbolicLink', linkpath: '/' }],
      /entry "part\/root" must be a directory: it is where jailyard mounts or copies from, never a link/,
    ],
    [
      'a layer a link',
      [
        { path: 'part/cow/', type: 'Directory' },
        { path: 'part/cow/etc', type: 'SymbolicLink', linkpath: victim },
      ],
      /entry "part\/cow\/etc" must be a directory/,
      { parts: ['cow'] },
    ],
    [
      'an rwmounts source a link',
      [
        { path: 'part/rw/', type: 'Directory' },
        { path: 'part/rw/data', type: 'SymbolicLink', linkpath: victim },
      ],
      /part\/rw\/data is bound into the jail and must be a directory, not a link/,
      { parts: ['rw'], conf: 'evil {\n\tpersist;\n\tskeleton.rwmounts = data;\n}\n' },
    ],
    ['a device', [dir, { path: 'part/root/sda', type: 'CharacterDevice' }], /is a CharacterDevice/],
    ['huge', [dir, { path: 'part/root/big', size: 2 ** 40 }], /more than|more file bytes than its manifest declares/],
    [
      'more than declared',
      [dir, { path: 'part/root/a', body: 'x'.repeat(2000) }],
      /more file bytes than its manifest declares \(100\)/,
      { bytes: 100 },
    ],
    ['not ours', [dir], /its manifest is not a jailyard-export manifest/, { format: 'tar' }],
    ['an include', [dir], /its config has an \.include/, { conf: '.include "/etc/jail.conf";\nevil { persist; }\n' }],
  ];
  for (const [what, entries, message, manifest] of cases) {
    const file = craft(join(A, `${what.replace(/ /g, '-')}.tar.zst`), entries, manifest);
    const r = await jyB('import', file, '--trust');
    assert.equal(r.code, 1, `${what}: refused`);
    assert.match(r.stderr, message, `${what}: ${r.stderr}`);
    assert.match(r.stderr, /nothing was imported/, what);
    assert.deepEqual(readdirSync(victim), [], `${what}: nothing written outside`);
    assert.equal(existsSync('/nonexistent/evil'), false);
    assert.deepEqual(
      readdirSync(B).filter((n) => n.startsWith('.import-')),
      [],
      `${what}: no staging folder left`,
    );
    assert.equal((await jyB('ls', '-j', 'evil')).code, 1, `${what}: no jail`);
  }
  // a well-formed archive whose config reaches the host (path, exec.* on the host) is refused
  // without --trust, naming the parameters
  const hostly = craft(join(A, 'hostly.tar.zst'), [dir], {
    conf: 'evil {\n\tpersist;\n\texec.prestart = "touch /tmp/pwned";\n}\n',
  });
  const r = await jyB('import', hostly);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /sets exec\.prestart, which act on this host/);
  // what the archive takes of this host's other jails: their address (a shared network
  // stack: their loopback services and ports) and its labels (load balancer pools,
  // selectors) are refused without --trust, naming them (red-team run of 2026-12-04)
  assert.equal((await jyB('create', 'addrowner', 'skeleton=mini', 'ip4.addr=198.51.100.233/24')).code, 0);
  const addr = craft(join(A, 'addr.tar.zst'), [dir], {
    conf: 'evil {\n\tpersist;\n\tip4.addr = 198.51.100.233/24;\n}\n',
  });
  let t = await jyB('import', addr);
  assert.equal(t.code, 1);
  assert.match(t.stderr, /takes the address 198\.51\.100\.233 \(jail addrowner\) of this host/);
  assert.equal((await jyB('remove', 'addrowner')).code, 0);
  const labelled = craft(join(A, 'labels.tar.zst'), [dir], {
    conf: 'evil {\n\tpersist;\n}\n',
    meta: 'app=www\nport=80',
    env: 'tier=front',
  });
  t = await jyB('import', labelled);
  assert.equal(t.code, 1);
  assert.match(t.stderr, /its meta\/env carry the labels (?=.*app)(?=.*port)(?=.*tier).*load balancers/);
  // the operator's own values for them are fine as far as labels go (it is refused later,
  // here, only for what any crafted archive without a skeleton is)
  t = await jyB('import', labelled, 'meta.app=other', 'meta.port=81', 'env=');
  assert.doesNotMatch(t.stderr, /carry the labels/);
  assert.equal((await jyB('ls', '-j', 'evil')).code === 1 || (await jyB('remove', 'evil')).code === 0, true);
  // nouserns would give the jail the host's root where the defaults map it away
  const nouserns = craft(join(A, 'nouserns.tar.zst'), [dir], { conf: 'evil {\n\tpersist;\n\tnouserns;\n}\n' });
  const u = await jyB('import', nouserns);
  assert.equal(u.code, 1);
  assert.match(u.stderr, /sets userns, which act on this host or widen the jail's rights/);
  // parameters that reach host files, ports or the host's kernel state: a skeleton list names
  // directories of the skeleton, the host's own for one made from / (audit: romounts = root
  // bound the host's /root into the jail); each is refused without --trust, naming it
  for (const [param, line] of [
    ['skeleton.romounts', 'skeleton.romounts = usr/bin, root, etc/ssh;'],
    ['skeleton.cow', 'skeleton.cow = etc, root;'],
    ['skeleton.root', 'skeleton.root = /;'],
    ['expose', 'expose = "tcp:18080:80";'],
    ['ip4', 'ip4 = inherit;'],
    ['devfs_ruleset', 'devfs_ruleset = 0;'],
    ['enforce_statfs', 'enforce_statfs = 0;'],
    ['children.max', 'children.max = 5;'],
    ['zfs.dataset', 'zfs.dataset = "tank/host";'],
  ] as const) {
    const f = craft(join(A, `reach-${param}.tar.zst`), [dir], { conf: `evil {\n\tpersist;\n\t${line}\n}\n` });
    const x = await jyB('import', f);
    assert.equal(x.code, 1, `${param}: refused`);
    assert.match(x.stderr, new RegExp(`sets ${param.replace('.', '\\.')}, which act on this host`), x.stderr);
    assert.equal((await jyB('ls', '-j', 'evil')).code, 1, `${param}: no jail`);
  }
  // a disk image (limits.disk) is a file system the host's kernel would mount: a crafted
  // one is input to the kernel's ext4 parser, so it needs --trust (audit)
  const disk = craft(join(A, 'disk.tar.zst'), [{ path: 'part/disk.img', body: 'not really ext4' }], {
    conf: 'evil {\n\tpersist;\n}\n',
    parts: ['disk.img'],
  });
  const d = await jyB('import', disk);
  assert.equal(d.code, 1);
  assert.match(d.stderr, /carries a disk image \(limits\.disk\).*--trust/);
  assert.equal((await jyB('ls', '-j', 'evil')).code, 1, 'no jail');
  // a file that is no archive at all
  writeFileSync(join(A, 'junk.tar.zst'), 'not zstd at all');
  const j = await jyB('import', join(A, 'junk.tar.zst'));
  assert.equal(j.code, 1);
  assert.match(j.stderr, /not a zstd-compressed jailyard export/);
});

test('over --host: export streams from the daemon, import sends the archive, clone and snapshots work', {
  timeout: 120_000,
}, async () => {
  const { openStore } = await import('../../src/store/sqlite.ts');
  const { createLocalService } = await import('../../src/runtime/service.ts');
  const { skeletonHooks } = await import('../../src/skeleton/hooks.ts');
  const { startDaemon } = await import('../../src/api/daemon.ts');
  const store = openStore(B);
  const daemon = await startDaemon({
    store,
    service: createLocalService({ store, stateDir: B, skeletons: skeletonHooks() }),
    socketPath: join(B, 'api.sock'),
  });
  const host = `unix://${join(B, 'api.sock')}`;
  try {
    // im1 (imported by the first test) is stopped
    let r = await jyB('--host', host, 'export', 'im1', '-o', join(A, 'remote.tar.zst'));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(A, 'remote.tar.zst')));
    // a refusal is the daemon's error, and no file is left
    r = await jyB('--host', host, 'export', 'nope', '-o', join(A, 'nope.tar.zst'));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /nope.*not found/);
    assert.equal(existsSync(join(A, 'nope.tar.zst')), false);
    // its labels (app, color) are im1's: the operator's values, given here, take their place
    r = await jyB(
      '--host',
      host,
      'import',
      join(A, 'remote.tar.zst'),
      '--name',
      'im3',
      'ip4.addr=198.51.100.233/24',
      'meta=app=web3',
      'env=color=green',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /im3: skeleton mini@2 \(same digest\)/);
    assert.equal(existsSync(join(B, 'jails/im3/root/root/data.txt')), true);
    assert.deepEqual(
      readdirSync(B).filter((n) => n.startsWith('.upload-') || n.startsWith('.import-')),
      [],
      'no spooled upload left',
    );
    // a crafted archive over --host: refused, nothing left
    const evil = craft(join(A, 'remote-evil.tar.zst'), [
      { path: 'part/root/', type: 'Directory' },
      { path: 'part/root/../../x', body: 'x' },
    ]);
    r = await jyB('--host', host, 'import', evil, '--trust');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refused.*nothing was imported/);
    assert.deepEqual(
      readdirSync(B).filter((n) => n.startsWith('.upload-') || n.startsWith('.import-')),
      [],
    );
    r = await jyB('--host', host, 'clone', 'im3', 'im4', 'ip4.addr=198.51.100.234/24', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { params: Record<string, unknown> }).params['host.hostname'], 'im4');
    r = await jyB('--host', host, 'snapshot', 'create', 'im4', 'one');
    assert.equal(r.code, 0, r.stderr);
    r = await jyB('--host', host, 'snapshot', 'list', 'im4', '--json');
    assert.deepEqual(
      (JSON.parse(r.stdout) as { name: string }[]).map((s) => s.name),
      ['one'],
    );
    rmSync(join(B, 'jails/im4/root/root/data.txt'));
    r = await jyB('--host', host, 'snapshot', 'rollback', 'im4', 'one');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(join(B, 'jails/im4/root/root/data.txt')), true, 'rolled back through the daemon');
    r = await jyB('--host', host, 'snapshot', 'remove', 'im4', 'one');
    assert.equal(r.code, 0, r.stderr);
    r = await jyB('--host', host, 'snapshot', 'remove', 'im4', 'one');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no snapshot "one"/);
    r = await jyB('--host', host, 'remove', 'im3', 'im4');
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await daemon.close();
    store.close();
  }
});

test("hostReaching: a skeleton list equal to the default, or empty, is a new jail's own; any other is refused without --trust", async () => {
  const { hostReaching } = await import('../../src/portable/import.ts');
  const { currentPlatform, loadDefaults } = await import('../../src/defaults.ts');
  const d = loadDefaults();
  const p = currentPlatform();
  assert.deepEqual(
    hostReaching({
      'skeleton.romounts': d.skeleton.romounts[p],
      'skeleton.rwmounts': d.skeleton.rwmounts[p],
      'skeleton.cow': [''],
      ip4: 'new',
      devfs_ruleset: 4,
      enforce_statfs: 2,
      'children.max': 0,
      persist: true,
    }),
    [],
  );
  assert.deepEqual(hostReaching({ 'skeleton.romounts': [...d.skeleton.romounts[p], 'root'] }), ['skeleton.romounts']);
  assert.deepEqual(hostReaching({ 'skeleton.rwmounts': ['usr/bin'] }), ['skeleton.rwmounts']);
});
