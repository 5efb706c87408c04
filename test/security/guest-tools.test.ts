// Attacks on the host side of the in-jail jail(8)/jls(8)/sysctl (src/api/guest-tools.ts,
// native/jy-guest.c): a jail's root floods its guest socket, sends arguments beyond the
// limits, names jails that are not its descendants, asks for host-side hooks and other
// parameters that would widen it, and tries to read another jail's env. One test per
// attack; the daemon runs in this process with the real jail(8)/jls(8) front (a "slow"
// jls word holds a request open for the flood). Every attack leaves the host unchanged and
// the jail and the daemon serving.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SecurityHost, toolsDaemon, type ToolsDaemon } from './helpers.ts';
import type { Store } from '../../src/store/types.ts';
import { guestDir } from '../../src/layout.ts';
import { DEFAULT_TOOL_LIMITS, type ToolCommand } from '../../src/api/guest-tools.ts';
import { runJail, runJls } from '../../src/cli/freebsd/index.ts';

describe('in-jail tools under attack', () => {
  let h: SecurityHost;
  let d: ToolsDaemon;
  let store: Store;
  const frontCalls: string[][] = [];
  /** Requests of the slow jls in the front at once, and the most seen. */
  const slow = { now: 0, most: 0 };
  const marker = `/tmp/jy-gtsec-hook-${process.pid}`;

  const run = (jail: string, argv: string[], timeoutMs = 30_000) => d.run(jail, argv, timeoutMs);
  const sh = (jail: string, script: string) => run(jail, ['/bin/sh', '-c', script], 60_000);

  before(async () => {
    h = await SecurityHost.open('gtsec');
    await h.jail('gsp', { params: ['children.max=1', 'env=parent-env'] });
    await h.jail('gsq', { params: ['children.max=1', 'env=sibling-secret', 'meta.m=sibling-meta'] });
    // a child of the sibling, to be named from gsp by name and by jid
    await h.jail('gsq.kid', { params: ['env=nephew-secret'] });
    const jls: ToolCommand = async (argv, io, scope) => {
      frontCalls.push(['jls', ...argv]);
      if (argv[0] === 'slow') {
        slow.most = Math.max(slow.most, ++slow.now);
        await new Promise((r) => setTimeout(r, 600));
        slow.now--;
        return 0;
      }
      return runJls(argv, io, scope);
    };
    const jail: ToolCommand = async (argv, io, scope) => {
      frontCalls.push(['jail', ...argv]);
      return runJail(argv, io, scope);
    };
    d = await toolsDaemon(h, ['gsp', 'gsq'], { jail, jls });
    store = d.store;
  });
  after(async () => {
    await d?.close();
    rmSync(marker, { force: true });
    await h?.close();
  });

  /** The host is as before: the sibling and its child run with their env, nothing else exists. */
  const unchanged = () => {
    assert.equal(store.getJail('gsq')?.state, 'running');
    assert.equal(store.getJail('gsq')?.env, 'sibling-secret');
    assert.equal(store.getJail('gsq.kid')?.state, 'running');
    assert.deepEqual(
      store
        .listJails()
        .map((j) => j.name)
        .sort(),
      ['gsp', 'gsq', 'gsq.kid'],
    );
  };

  test('a flood of requests: a few are served at once, a few wait, the rest get 429; other jails and later requests are served', async () => {
    const { maxRunning, maxWaiting } = DEFAULT_TOOL_LIMITS;
    const before = frontCalls.length;
    const flood = sh(
      'gsp',
      'for i in $(seq 30); do (jls slow >/dev/null 2>/tmp/err.$i; echo "rc=$?") & done; wait; cat /tmp/err.*',
    );
    // meanwhile another jail is served at once (its own socket, its own slots)
    await new Promise((r) => setTimeout(r, 150));
    const t0 = Date.now();
    const other = await run('gsq', ['jls', '-n', 'name']);
    assert.equal(other.code, 0, other.stderr);
    assert.equal(other.stdout, 'name=kid\n');
    assert.ok(Date.now() - t0 < 3000, 'not stuck behind the flood');
    const r = await flood;
    const ok = r.stdout.split('\n').filter((l) => l === 'rc=0').length;
    const failed = r.stdout.split('\n').filter((l) => l === 'rc=1').length;
    assert.equal(ok + failed, 30, r.stdout);
    // requests beyond the slots and the queue are refused at once; a slot freed admits the
    // next one, so how many are served depends on how fast the 30 arrive
    assert.ok(ok >= maxRunning + maxWaiting && failed >= 1, `served ${ok}, refused ${failed}`);
    assert.equal(slow.most, maxRunning, 'never more than maxRunning requests of one jail in the front at once');
    assert.equal(frontCalls.length - before - 1, ok, 'the front ran only for the admitted requests');
    assert.match(r.stdout, /jls: jailyard: too many requests from this jail at once/);
    // the flood is over: the jail is served again
    const again = await run('gsp', ['jls', '-n', 'name']);
    assert.deepEqual([again.code, again.stderr], [0, '']);
    unchanged();
  });

  test('arguments beyond the limits: refused before the front, nothing created', async () => {
    const before = frontCalls.length;
    // three 100 kB arguments (one argument may not pass 128 kB): 300 kB > the 256 kB limit
    let r = await sh(
      'gsp',
      'a=$(head -c 100000 /dev/zero | tr "\\0" a); jail -c name=big persist "env=$a" "env.b=$a" "env.c=$a"',
    );
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `jail: jailyard: the arguments are longer than ${DEFAULT_TOOL_LIMITS.maxBody} bytes\n`);
    r = await sh('gsp', `jail -c name=many persist $(seq -f env.k%g=1 ${DEFAULT_TOOL_LIMITS.maxArgs + 10})`);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `jail: jailyard: too many arguments (at most ${DEFAULT_TOOL_LIMITS.maxArgs})\n`);
    // a raw request that declares a huge body and sends none: refused at once
    r = await run('gsp', [
      '/usr/bin/python3',
      '-c',
      'import socket\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(5)\ns.connect("/run/jailyard/guest.sock")\n' +
        's.sendall(b"POST /tools/jail HTTP/1.1\\r\\nHost: g\\r\\nContent-Length: 99999999999\\r\\n\\r\\n")\n' +
        'print(s.recv(100).decode().split("\\r\\n")[0])',
    ]);
    assert.equal(r.stdout, 'HTTP/1.1 413 Payload Too Large\n', r.stderr);
    assert.equal(frontCalls.length, before, 'the front never ran');
    unchanged();
  });

  test("names that are not the caller's descendants: a sibling, its child by name and by jid, ../x, the caller itself", async () => {
    const kidJid = store.getJail('gsq.kid')!.jid;
    const siblingJid = store.getJail('gsq')!.jid;
    for (const name of ['gsq', 'gsq.kid', '../gsq', '..', 'x/../../gsq', String(kidJid), String(siblingJid), 'gsp']) {
      let r = await run('gsp', ['jail', '-r', name]);
      assert.equal(r.code, 1, `jail -r ${name}: ${r.stdout}`);
      assert.match(r.stderr, /not found/, name);
      r = await run('gsp', ['jail', '-m', `name=${name}`, 'env=pwned']);
      assert.notEqual(r.code, 0, `jail -m name=${name}`);
      r = await run('gsp', ['jls', '-j', name, 'name', 'env']);
      assert.equal(r.code, 1, `jls -j ${name}: ${r.stdout}`);
      assert.equal(r.stdout, '');
    }
    // and a wildcard removes the caller's own (none) only
    const r = await run('gsp', ['jail', '-r', '*']);
    assert.equal(r.stdout, '');
    unchanged();
  });

  test('host-side hooks and parameters that widen the child are refused, naming the parameter; nothing runs on the host', async () => {
    const before = frontCalls.length;
    const cases: [string, string][] = [
      [`exec.prestart=touch ${marker}`, 'exec.prestart'],
      [`exec.poststart=touch ${marker}`, 'exec.poststart'],
      [`exec.prestop=touch ${marker}`, 'exec.prestop'],
      [`exec.poststop=touch ${marker}`, 'exec.poststop'],
      [`exec.created=touch ${marker}`, 'exec.created'],
      [`exec.consolelog=${marker}`, 'exec.consolelog'],
      ['mount.fstab=/etc/fstab', 'mount.fstab'],
      [`mount=/ ${marker} nullfs rw 0 0`, 'mount'],
      ['mount.devfs', 'mount.devfs'],
      ['vnet', 'vnet'],
      ['allow.raw_sockets', 'allow.raw_sockets'],
      ['limits.memory=64G', 'limits.memory'],
      ['skeleton=host', 'skeleton'],
      ['skeleton.rwmounts=/etc', 'skeleton.rwmounts'],
      ['jid=1', 'jid'],
    ];
    for (const [word, param] of cases) {
      const r = await run('gsp', ['jail', '-c', 'name=kid', 'persist', word]);
      assert.deepEqual(
        [r.code, r.stdout, r.stderr],
        [1, '', `jail: jail_set: ${param}: Operation not permitted\n`],
        word,
      );
    }
    assert.equal(frontCalls.length, before, 'refused before the front ran');
    // limits the parent does not have, checked by the service the front acts through
    let r = await run('gsp', ['jail', '-c', 'name=kid', 'persist', 'children.max=5']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /children\.max/);
    r = await run('gsp', ['jail', '-c', 'name=kid', 'persist', 'ip4.addr=198.51.100.199']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /198\.51\.100\.199/);
    // the config file form and host-file options
    for (const argv of [
      ['-f', '/etc/jail.conf', '-c', 'kid'],
      ['-c', 'kid'],
      ['-J', marker, '-c', 'name=kid', 'persist'],
      ['-u', 'root', '-c', 'name=kid', 'persist'],
    ]) {
      r = await run('gsp', ['jail', ...argv]);
      assert.equal(r.code, 1, argv.join(' '));
      assert.match(r.stderr, /Operation not permitted/, argv.join(' '));
    }
    assert.equal(existsSync(marker), false, 'no hook ran on the host');
    unchanged();
    // what a child may be given works: the scope admits it
    r = await run('gsp', ['jail', '-c', 'name=kid', 'persist', 'env=kid-env', 'meta.x=1', 'host.hostname=k']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(store.getJail('gsp.kid')?.env, 'kid-env');
    r = await run('gsp', ['jail', '-r', 'kid']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(store.getJail('gsp.kid'), undefined);
  });

  test("reading another jail's env or any meta: only its own env and its children's env", async () => {
    let r = await run('gsp', ['sysctl', '-n', 'security.jail.env']);
    assert.equal(r.stdout, 'parent-env\n');
    // the guest folder holds its own env only
    r = await sh('gsp', 'cat /run/jailyard/env; echo; ls /run/jailyard; cat /run/jailyard/../jailyard/env');
    assert.doesNotMatch(r.stdout, /sibling|nephew/);
    // jls shows no other jail, by listing or by name, and never meta
    r = await run('gsp', ['jls', '-n']);
    assert.deepEqual([r.code, r.stdout], [0, '']);
    r = await run('gsq', ['jls', '-n', 'name', 'env', 'meta']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'name=kid env=nephew-secret meta=""\n', 'its child: env yes, meta never');
    r = await run('gsq', ['jls', '-j', 'kid', 'meta']);
    assert.notEqual(r.stdout.trim(), 'sibling-meta');
    // the env file the daemon holds for the sibling is out of reach
    assert.equal(readFileSync(join(guestDir(h.state, 'gsq'), 'env'), 'utf8'), 'sibling-secret');
    r = await sh('gsp', `cat ${join(guestDir(h.state, 'gsq'), 'env')} 2>&1; echo rc=$?`);
    assert.doesNotMatch(r.stdout, /sibling-secret/);
    unchanged();
  });

  test("the jail-tree sysctls count the caller's own jail only; the route answers nothing else and sets nothing", async () => {
    const oids = ['security.jail.children.max', 'security.jail.children.cur'];
    let r = await run('gsp', ['sysctl', '-n', ...oids]);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, '1\n0\n', ''], "the sibling's child is not counted");
    r = await run('gsq', ['sysctl', '-n', ...oids]);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, '1\n1\n', '']);
    // a hostile request on the guest socket itself: a host setting to read and to set, and the
    // tree names with a value. The front knows only the two names, read-only.
    const post = [
      'import socket, sys',
      's = socket.socket(socket.AF_UNIX); s.connect("/run/jailyard/guest.sock")',
      'body = b"".join(a.encode() + b"\\0" for a in sys.argv[1:])',
      's.sendall(b"POST /tools/sysctl HTTP/1.1\\r\\nHost: g\\r\\nConnection: close\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body)',
      'out = b""',
      'while True:',
      '    d = s.recv(65536)',
      '    if not d: break',
      '    out += d',
      'sys.stdout.write(out.split(b"\\r\\n\\r\\n", 1)[1].decode())',
    ].join('\n');
    r = await run('gsp', [
      'python3',
      '-c',
      post,
      'security.jail.meta_maxbufsize=1',
      'security.jail.param.meta',
      'security.jail.children.max=100',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^1 0 \d+\n/, 'status 1, nothing on stdout');
    assert.match(r.stdout, /unknown oid 'security\.jail\.meta_maxbufsize'/);
    assert.match(r.stdout, /unknown oid 'security\.jail\.param\.meta'/);
    assert.match(r.stdout, /oid 'security\.jail\.children\.max' is read only/);
    assert.equal(store.getSettings().meta_maxbufsize, 4096);
    assert.equal(store.requireJail('gsp').params['children.max'], 1);
    unchanged();
  });
});
