// The tools a jail runs inside itself (native/jy-guest.c at /run/jailyard/bin): sysctl's
// security.jail.env, and jail/jls sent to the host over the jexec channel or the daemon's
// guest socket (src/api/guest-tools.ts), run by a front with the calling jail as its root.
// Real jails (a skeleton of the host's root), real sockets, the real client binary.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { execFileSync } from 'node:child_process';
import { basename, join } from 'node:path';
import { SecurityHost } from '../security/helpers.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { createLocalService } from '../../src/runtime/service.ts';
import { loadDriver } from '../../src/platform/index.ts';
import type { Driver } from '../../src/platform/driver.ts';
import type { Store } from '../../src/store/types.ts';
import { startDaemon, type Daemon } from '../../src/api/daemon.ts';
import { guestDir } from '../../src/layout.ts';
import {
  checkJailArgv,
  decodeArgv,
  encodeAnswer,
  openToolsChannel,
  scopedService,
  type ToolFront,
  type ToolScope,
} from '../../src/api/guest-tools.ts';
import type { JailService } from '../../src/runtime/types.ts';
import { runJail, runJls, runSysctl } from '../../src/cli/freebsd/index.ts';
import type { JailRecord } from '../../src/store/types.ts';

const NO_CHANNEL = 'jail: jailyard: no channel to the host (run it under jexec or with jailyard serve running)\n';

/** A front that reports what it was given and what the scoped service shows it. */
function probeFront(calls: { tool: string; argv: string[]; root?: string }[]): ToolFront {
  const probe =
    (tool: string) =>
    async (argv: string[], io: { stdout(t: string): void; stderr(t: string): void }, scope: ToolScope) => {
      calls.push({ tool, argv, ...(scope.root !== undefined ? { root: scope.root } : {}) });
      if (argv[0] === 'status') {
        io.stdout('to stdout\n');
        io.stderr('to stderr\n');
        return Number(argv[1]);
      }
      if (argv[0] === 'list') {
        for (const r of await scope.service.list()) io.stdout(`${r.name} meta=[${r.meta}]\n`);
        return 0;
      }
      if (argv[0] === 'get') {
        try {
          const r = await scope.service.get(argv[1]!);
          io.stdout(`${r.name} env=[${r.env}]\n`);
          return 0;
        } catch (e) {
          io.stderr(`${tool}: ${(e as Error).message}\n`);
          return 1;
        }
      }
      io.stdout(`${tool} ${JSON.stringify(argv)} root=${scope.root}\n`);
      return 0;
    };
  return { jail: probe('jail'), jls: probe('jls'), sysctl: probe('sysctl') };
}

describe('in-jail tools: sysctl, jail and jls through the host', () => {
  let h: SecurityHost;
  let store: Store;
  let driver: Driver;
  let service: ReturnType<typeof createLocalService>;

  /** argv in the jail with the environment jexec gives (plus `env`), output piped. */
  const run = async (jail: string, argv: string[], env: Record<string, string> = {}) => {
    const j = store.requireJail(jail);
    return driver.runInJail(service.contextOf(jail), j.runtime!.create!, argv, {
      stdio: 'pipe',
      timeoutMs: 30_000,
      env,
    });
  };
  const sh = (jail: string, script: string, env: Record<string, string> = {}) =>
    run(jail, ['/bin/sh', '-c', script], env);

  before(async () => {
    h = await SecurityHost.open('gtools');
    await h.jail('gtp', { params: ['children.max=2', 'env=cba', 'meta.secret=secret-meta'] });
    await h.jail('gtq', { params: [] });
    await h.jail('gtp.kid', { start: false, params: ['env=kid-env', 'meta.secret=kid-meta'] });
    store = openStore(h.state);
    driver = await loadDriver({ stateDir: h.state });
    service = createLocalService({ store, stateDir: h.state, driver });
  });
  after(async () => {
    store?.close();
    await h?.close();
  });

  test('sysctl security.jail.env prints the jail its own env, in FreeBSD forms', async () => {
    let r = await run('gtp', ['sysctl', '-n', 'security.jail.env']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'cba\n', '']);
    r = await run('gtp', ['sysctl', 'security.jail.env']);
    assert.deepEqual([r.code, r.stdout], [0, 'security.jail.env: cba\n']);
    r = await run('gtp', ['sysctl', '-e', 'security.jail.env']);
    assert.deepEqual([r.code, r.stdout], [0, 'security.jail.env=cba\n']);
    // an empty env is an empty string: a newline alone
    r = await run('gtq', ['sysctl', '-n', 'security.jail.env']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, '\n', '']);
    // the jail reads it, never writes it
    r = await run('gtp', ['sysctl', 'security.jail.env=x']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "sysctl: oid 'security.jail.env' is read only\n");
    assert.equal((await run('gtp', ['sysctl', '-n', 'security.jail.env'])).stdout, 'cba\n');
  });

  test("any other name goes to the jail's own sysctl", async () => {
    const r = await run('gtp', ['sysctl', '-n', 'kernel.ostype']);
    assert.deepEqual([r.code, r.stdout], [0, 'Linux\n']);
    // both at once: ours in order, the other by the jail's sysctl
    const both = await run('gtp', ['sysctl', '-n', 'security.jail.env', 'kernel.ostype']);
    assert.deepEqual([both.code, both.stdout], [0, 'cba\nLinux\n']);
  });

  test("sysctl security.jail.children.max and .cur: the jail's own, counted by the host through the channel, read-only", async () => {
    const front = { jail: runJail, jls: runJls, sysctl: runSysctl };
    const open = (jail: string) => openToolsChannel({ front, service, jail, guestDir: guestDir(h.state, jail) });
    const p = await open('gtp');
    const q = await open('gtq');
    try {
      // gtp: children.max=2, its child defined but not started: a record, which counts (what
      // children.max bounds), though it is no jail in FreeBSD's sense
      let r = await run('gtp', ['sysctl', '-n', 'security.jail.children.max', 'security.jail.children.cur'], p.env);
      assert.deepEqual([r.code, r.stdout, r.stderr], [0, '2\n1\n', '']);
      r = await run('gtq', ['sysctl', 'security.jail.children.max', 'security.jail.children.cur'], q.env);
      assert.deepEqual([r.code, r.stdout], [0, 'security.jail.children.max: 0\nsecurity.jail.children.cur: 0\n']);
      // in order beside the jail's env and the jail's own sysctl
      r = await run('gtp', ['sysctl', '-n', 'security.jail.env', 'security.jail.children.max', 'kernel.ostype'], p.env);
      assert.deepEqual([r.code, r.stdout], [0, 'cba\n2\nLinux\n']);
      r = await run('gtp', ['sysctl', '-d', 'security.jail.children.cur'], p.env);
      assert.deepEqual([r.code, r.stdout], [0, 'security.jail.children.cur: Current number of child jails\n']);
      // the host sets children.max (jail -m), never the jail
      r = await run('gtp', ['sysctl', 'security.jail.children.max=5'], p.env);
      assert.deepEqual([r.code, r.stderr], [1, "sysctl: oid 'security.jail.children.max' is read only\n"]);
      assert.equal(store.requireJail('gtp').params['children.max'], 2);
      // a child started: counted for its parent only, once
      await service.start(['gtp.kid']);
      try {
        r = await run('gtp', ['sysctl', '-n', 'security.jail.children.cur'], p.env);
        assert.deepEqual([r.code, r.stdout], [0, '1\n']);
        r = await run('gtq', ['sysctl', '-n', 'security.jail.children.cur'], q.env);
        assert.deepEqual([r.code, r.stdout], [0, '0\n']);
      } finally {
        await service.stop(['gtp.kid']);
      }
    } finally {
      await p.close();
      await q.close();
    }
    // no channel: said so, nothing printed
    const r = await run('gtq', ['sysctl', '-n', 'security.jail.children.max']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^sysctl: jailyard: no channel to the host/);
  });

  test('/run/jailyard/bin is first on PATH: read-only, nosuid, nodev, exec-able; the guest folder stays noexec', async () => {
    const r = await sh(
      'gtp',
      'echo "$PATH"; command -v jail; command -v jls; command -v sysctl; grep " /run/jailyard" /proc/self/mountinfo; ls /run/jailyard/bin; touch /run/jailyard/bin/x 2>&1; echo touch=$?',
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.match(lines[0]!, /^\/run\/jailyard\/bin:/);
    assert.deepEqual(lines.slice(1, 4), [
      '/run/jailyard/bin/jail',
      '/run/jailyard/bin/jls',
      '/run/jailyard/bin/sysctl',
    ]);
    const mount = (target: string) =>
      lines
        .find((l) => l.split(' ')[4] === target)
        ?.split(' ')[5]
        ?.split(',') ?? [];
    assert.deepEqual(mount('/run/jailyard/bin').sort(), ['nodev', 'nosuid', 'relatime', 'ro']);
    assert.ok(mount('/run/jailyard').includes('noexec'), 'the guest folder is noexec');
    assert.ok(r.stdout.includes('jail\njls\nsysctl\n'), 'the tools folder holds the three tools only');
    assert.match(r.stdout, /touch=1/);
  });

  test('without a channel, jail and jls say so and change nothing', async () => {
    let r = await run('gtp', ['jail', '-c', 'name=x', 'persist']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', NO_CHANNEL]);
    r = await run('gtp', ['jls']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', NO_CHANNEL.replace(/^jail/, 'jls')]);
    // a variable naming no socket: the daemon's socket next, then the same message
    r = await run('gtp', ['jls'], { JAILYARD_TOOLS_SOCKET: '/run/jailyard/nothing.sock' });
    assert.equal(r.code, 1);
    assert.equal(store.getJail('gtp.x'), undefined);
  });

  test("jexec's channel: argv reaches the front exactly, with the jail as root; stdout, stderr and status come back", async () => {
    const calls: { tool: string; argv: string[]; root?: string }[] = [];
    const guest = guestDir(h.state, 'gtp');
    const channel = await openToolsChannel({ front: probeFront(calls), service, jail: 'gtp', guestDir: guest });
    try {
      const sock = channel.env.JAILYARD_TOOLS_SOCKET!;
      assert.match(sock, /^\/run\/jailyard\/tools-[0-9a-f]{16}\.sock$/);
      const words = ['-c', 'name=x', 'persist', 'exec.start=echo "a b"', 'env=ünï ☃\ttab'];
      let r = await run('gtp', ['jail', ...words], channel.env);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(calls.at(-1), { tool: 'jail', argv: words, root: 'gtp' });
      assert.equal(r.stdout, `jail ${JSON.stringify(words)} root=gtp\n`);
      const odd = ['-v', '', 'ünï ☃', 'tab\there', 'new\nline', ' '];
      r = await run('gtp', ['jls', ...odd], channel.env);
      assert.deepEqual(calls.at(-1), { tool: 'jls', argv: odd, root: 'gtp' });
      r = await run('gtp', ['jls', 'status', '7'], channel.env);
      assert.deepEqual([r.code, r.stdout, r.stderr], [7, 'to stdout\n', 'to stderr\n']);
      r = await run('gtp', ['jls'], channel.env);
      assert.deepEqual(calls.at(-1), { tool: 'jls', argv: [], root: 'gtp' });
    } finally {
      await channel.close();
    }
    assert.deepEqual(
      readdirSync(guest).filter((f) => f.startsWith('tools-')),
      [],
      'the channel socket is removed when jexec ends',
    );
    // a jexec killed before its clean-up leaves its socket: the next channel removes it,
    // and keeps the one of a jexec still running
    const stale = join(guest, 'tools-00000000000000aa.sock');
    // bound, never listened on, its process gone: what a killed jexec leaves
    execFileSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]);
    assert.ok(existsSync(stale));
    writeFileSync(join(guest, 'tools-not-a-socket'), '');
    const running = await openToolsChannel({ front: probeFront(calls), service, jail: 'gtp', guestDir: guest });
    const again = await openToolsChannel({ front: probeFront(calls), service, jail: 'gtp', guestDir: guest });
    try {
      const left = readdirSync(guest).filter((f) => f.startsWith('tools-'));
      assert.equal(left.includes('tools-00000000000000aa.sock'), false, 'the stale socket is gone');
      assert.equal(left.length, 3, `the two live channels and the file that is no channel stay: ${left}`);
    } finally {
      await running.close();
      await again.close();
      rmSync(join(guest, 'tools-not-a-socket'));
    }
  });

  test('a guest folder deeper than a socket address holds (108 bytes): the channel listens and answers', async (t) => {
    // a nested jail in a deep state folder: FreeBSD's sysctl_security_jail_children case made
    // one, and its jexec failed with "listen EINVAL" before
    const top = join(h.state, 'x'.repeat(60));
    const deep = join(top, 'y'.repeat(60), 'guest');
    t.after(() => rmSync(top, { recursive: true, force: true }));
    const calls: { tool: string; argv: string[]; root?: string }[] = [];
    const channel = await openToolsChannel({ front: probeFront(calls), service, jail: 'gtp', guestDir: deep });
    try {
      const name = basename(channel.env.JAILYARD_TOOLS_SOCKET!);
      assert.ok(join(deep, name).length > 108);
      assert.equal(statSync(join(deep, name)).mode & 0o777, 0o666);
      // reached the way the jail would, through a path short enough
      const fd = openSync(deep, 'r');
      try {
        const body = Buffer.from('-v\0');
        const answer = await new Promise<string>((resolve, reject) => {
          const req = request(
            {
              socketPath: `/proc/self/fd/${fd}/${name}`,
              method: 'POST',
              path: '/tools/jls',
              headers: { 'content-length': body.length },
            },
            (res) => {
              let text = '';
              res.on('data', (d: Buffer) => (text += d));
              res.on('end', () => resolve(text));
            },
          );
          req.on('error', reject);
          req.end(body);
        });
        assert.equal(answer, `0 20 0\njls ["-v"] root=gtp\n`);
        assert.deepEqual(calls.at(-1), { tool: 'jls', argv: ['-v'], root: 'gtp' });
      } finally {
        closeSync(fd);
      }
    } finally {
      await channel.close();
    }
    assert.deepEqual(readdirSync(deep), [], 'removed at the end');
  });

  test("the daemon's guest socket answers the same, and the front sees the caller's descendants only, without meta", async () => {
    const calls: { tool: string; argv: string[]; root?: string }[] = [];
    const daemon: Daemon = await startDaemon({
      store,
      service,
      socketPath: join(h.state, 'jailyard.sock'),
      pollIntervalMs: 20,
      guestRoot: (n) => guestDir(h.state, n),
      tools: { front: probeFront(calls) },
    });
    try {
      const t0 = Date.now();
      while (!existsSync(join(guestDir(h.state, 'gtp'), 'guest.sock'))) {
        if (Date.now() - t0 > 10_000) throw new Error('no guest socket');
        await new Promise((r) => setTimeout(r, 20));
      }
      let r = await run('gtp', ['jls', 'list']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(calls.at(-1), { tool: 'jls', argv: ['list'], root: 'gtp' });
      assert.equal(r.stdout, 'gtp.kid meta=[]\n', 'its child only, and no meta');
      r = await run('gtq', ['jls', 'list']);
      assert.deepEqual([r.code, r.stdout], [0, ''], 'gtq has no children: it sees nothing');
      r = await run('gtp', ['jls', 'get', 'gtp.kid']);
      assert.deepEqual([r.code, r.stdout], [0, 'gtp.kid env=[kid-env]\n']);
      // itself, a sibling and a stranger's child are all "not found"
      for (const other of ['gtp', 'gtq', 'gtqx.kid']) {
        r = await run('gtp', ['jls', 'get', other]);
        assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', `jls: jail "${other}" not found\n`]);
      }
    } finally {
      await daemon.close();
    }
  });
});

describe('in-jail tools through `jailyard serve`', () => {
  let h: SecurityHost;

  before(async () => {
    h = await SecurityHost.open('gtserve');
    await h.jail('gts', { params: ['children.max=1'] });
  });
  after(async () => {
    await h?.close();
  });

  test("the daemon's guest sockets run the jail(8)/jls(8) front for the jail: create, list and remove a child", async () => {
    const daemon = await h.serve();
    try {
      const sock = join(guestDir(h.state, 'gts'), 'guest.sock');
      const t0 = Date.now();
      while (!existsSync(sock)) {
        if (Date.now() - t0 > 10_000) throw new Error('no guest socket');
        await new Promise((r) => setTimeout(r, 20));
      }
      let r = await h.sh('gts', 'jail -c name=k persist env=kid && jls -n name env && jail -r k && jls -n name');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'name=k env=kid\n');
      // the jail cannot make a second one: its children.max is 1, and its child's is 0
      r = await h.sh('gts', 'jail -c name=a persist && jail -c name=b persist');
      assert.deepEqual([r.code, r.stderr], [1, 'jail: prison limit exceeded\n']);
      r = await h.sh('gts', 'jail -r a');
      assert.equal(r.code, 0, r.stderr);
    } finally {
      await daemon.stop();
    }
  });
});

describe('guest-tools units', () => {
  test('decodeArgv: NUL-terminated UTF-8 arguments, bounded', () => {
    assert.deepEqual(decodeArgv(Buffer.from('')), []);
    assert.deepEqual(decodeArgv(Buffer.from('a\0\0b c\0')), ['a', '', 'b c']);
    assert.equal(typeof decodeArgv(Buffer.from('a\0b')), 'string');
    assert.equal(typeof decodeArgv(Buffer.from([0xff, 0])), 'string');
    assert.equal(typeof decodeArgv(Buffer.from('a\0'.repeat(11)), { maxArgs: 10 }), 'string');
  });

  test('encodeAnswer: status and byte lengths first', () => {
    assert.equal(encodeAnswer({ status: 3, stdout: 'é', stderr: 'x\n' }).toString(), '3 2 2\né' + 'x\n');
  });

  /** A service over fixed records: enough for the checks, which only read. */
  function fixedService(records: Partial<JailRecord>[]): JailService {
    const full = records.map((r) => ({ state: 'running', params: {}, meta: '', env: '', ...r }) as JailRecord);
    const get = async (name: string) => {
      const r = full.find((x) => x.name === name);
      if (!r) throw new Error(`jail "${name}" not found`);
      return r;
    };
    const never = async (): Promise<never> => {
      throw new Error('not called in these tests');
    };
    return {
      list: async () => full,
      get,
      create: never,
      modify: never,
      start: never,
      stop: never,
      restart: never,
      remove: never,
    };
  }

  test('checkJailArgv: host options, the conf form, parameters, children.max', async () => {
    const svc = fixedService([
      { name: 'p', params: { 'children.max': 1, 'ip4.addr': ['198.51.100.190'] } },
      { name: 'z', params: {} },
      { name: 'full', params: { 'children.max': 1 } },
      { name: 'full.one', params: {} },
      // a stopped child is a record all the same: it counts
      { name: 'held', params: { 'children.max': 2 } },
      { name: 'held.a', params: {}, state: 'stopped' },
      { name: 'held.a.b', params: {}, state: 'stopped' },
    ]);
    const eperm = 'jail: jail_set: Operation not permitted\n';
    assert.equal(await checkJailArgv(['-c', 'name=a', 'persist', 'ip4.addr=198.51.100.190'], 'p', svc), undefined);
    assert.equal(await checkJailArgv(['-c', 'name=a', 'persist'], 'z', svc), eperm);
    assert.equal(await checkJailArgv(['-m', 'name=a', 'env=x'], 'z', svc), eperm);
    assert.equal(await checkJailArgv(['-c', 'name=two', 'persist'], 'full', svc), 'jail: prison limit exceeded\n');
    assert.equal(await checkJailArgv(['-c', 'name=c', 'persist'], 'held', svc), 'jail: prison limit exceeded\n');
    // a name whose record exists is counted already (the front reuses or refuses it)
    assert.equal(await checkJailArgv(['-c', 'name=a', 'persist'], 'held', svc), undefined);
    assert.equal(
      await checkJailArgv(['-c', 'name=a', 'exec.prestart=touch /x'], 'p', svc),
      'jail: jail_set: exec.prestart: Operation not permitted\n',
    );
    for (const p of [
      'mount.devfs',
      'vnet',
      'allow.raw_sockets',
      'limits.memory=1G',
      'skeleton=host',
      'exec.poststop=x',
    ])
      assert.match((await checkJailArgv(['-c', 'name=a', p], 'p', svc)) ?? '', /Operation not permitted/, p);
    // a command's own arguments are not parameters
    assert.equal(await checkJailArgv(['-c', 'name=a', 'command=/bin/sh', '-c', 'mount.x=1'], 'p', svc), undefined);
    // the same rule as the front's (jail.c): `command+=` takes no rest of the line there, so
    // the words after it are parameters and are checked here too
    assert.equal(
      await checkJailArgv(['-c', 'name=a', 'command+=/bin/true', 'exec.prestart=touch /x'], 'p', svc),
      'jail: jail_set: exec.prestart: Operation not permitted\n',
    );
    for (const argv of [
      ['-f', '/etc/shadow', '-c', 'a'],
      ['-qf/etc/jail.conf', '-c'],
      ['-J', '/etc/x', '-c', 'name=a'],
      ['-c', 'a'],
      ['-c'],
      ['-m'],
      ['-cm'],
    ])
      assert.match((await checkJailArgv(argv, 'p', svc)) ?? '', /not available inside a jail/, argv.join(' '));
    // jail.c's command-line form: more than one word, or one with '=' (not only a first one)
    assert.equal(await checkJailArgv(['-c', 'persist', 'name=a'], 'p', svc), undefined);
    assert.equal(await checkJailArgv(['-r', '../x'], 'p', svc), 'jail: "../x" not found\n');
    assert.equal(await checkJailArgv(['-r', 'a'], 'z', svc), undefined);
  });

  test('scopedService: descendants only, meta hidden, parameters bounded by the parent', async () => {
    const created: unknown[] = [];
    const inner = fixedService([
      { name: 'p', params: { 'children.max': 2, 'ip4.addr': ['198.51.100.191'] }, meta: 'm' },
      { name: 'p.c', params: {}, meta: 'secret' },
      { name: 'pq', params: {} },
    ]);
    inner.create = async (input) => {
      created.push(input.spec);
      return { ...(await inner.get('p.c')), name: input.spec.name };
    };
    const s = scopedService(inner, 'p');
    assert.deepEqual(
      (await s.list()).map((r) => [r.name, r.meta]),
      [['p.c', '']],
    );
    for (const n of ['p', 'pq', 'pq.x', 'q']) await assert.rejects(s.get(n), { code: 'JY_ERR_JAIL_NOT_FOUND' }, n);
    await assert.rejects(s.stop(['p.c', 'pq']), { code: 'JY_ERR_JAIL_NOT_FOUND' });
    const create = (params: Record<string, string | number | boolean | string[]>) =>
      s.create({ spec: { name: 'p.n', params: { name: 'p.n', ...params } } });
    const refusedParam = (param: string) => (e: unknown) =>
      (e as { place?: { param?: string } }).place?.param === param;
    await assert.rejects(create({ 'exec.prestart': 'x' }), refusedParam('exec.prestart'));
    await assert.rejects(create({ 'children.max': 3 }), refusedParam('children.max'));
    await assert.rejects(create({ 'ip4.addr': ['198.51.100.192'] }), refusedParam('ip4.addr'));
    await assert.rejects(create({ 'ip4.addr': ['eth0|198.51.100.191'] }), refusedParam('ip4.addr'));
    for (const name of ['p.../x', 'p./x', 'p.a b', 'p.*', 'p.7'])
      await assert.rejects(s.create({ spec: { name, params: { name } } }), { code: 'JY_ERR_JAIL_NAME' }, name);
    await assert.rejects(create({ path: '/srv' }), refusedParam('path'), 'no root known: no path');
    assert.deepEqual(created, []);
    await create({ persist: true, 'children.max': 2, 'ip4.addr': ['198.51.100.191/24'], 'meta.a': 'b' });
    assert.equal(created.length, 1);
  });
});
