// The host's jail(8), jls(8) and `jailyard ls` through the daemon (src/api/host-tools.ts,
// src/cli/host-front.ts, native/jy-ctl.c, bin/jail, bin/jls, bin/jailyard.js's sh line): for a
// table of argument vectors, the bytes on stdout and stderr and the exit status are those of
// the Node front (JAILYARD_SRC=1 forces it); the client runs the CLI when there is no daemon,
// when the socket is not root's 0600 one, and for the forms the daemon refuses; the host
// scope is the unix socket's alone (a process inside a jail and a TCP client, even with the
// token, get nothing). Real daemon, real jails; nothing of them left at the end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { startDaemon as startApiDaemon } from '../../src/api/daemon.ts';
import type { HostTools } from '../../src/api/host-tools.ts';
import { createLocalService } from '../../src/runtime/service.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { cliFor, runCli, spawnServe } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

const REPO = join(import.meta.dirname, '../..');
const MARK = 'jailyard: ctl: fast path\n';
const LS_MARK = /^jailyard: j?ls: fast path\n/;
const ADDR = '198.51.100.4';

let state: string;
let baseline: SystemSnapshot;
let daemon: ChildProcess | undefined;
const jy = cliFor(() => state);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** bin/jail, bin/jls or bin/jailyard.js as a shell runs them; `fast`: jy-ctl answered. */
function run(
  cmd: 'jail' | 'jls' | 'jailyard',
  args: string[],
  opts: { node?: boolean; env?: NodeJS.ProcessEnv } = {},
): Run & { fast: boolean } {
  const env: NodeJS.ProcessEnv = { ...process.env, JAILYARD_STATE: state, JAILYARD_TRACE_FAST: '1', ...opts.env };
  delete env.JAILYARD_HOST;
  if (opts.node) env.JAILYARD_SRC = '1';
  else delete env.JAILYARD_SRC;
  const file = join(REPO, 'bin', cmd === 'jailyard' ? 'jailyard.js' : cmd);
  const r = spawnSync(file, args, { env, encoding: 'utf8', timeout: 60_000, input: '' });
  // the Node front's own fast `ls` and `jls` (src/cli/ls-fast.ts, src/cli/jls-fast.ts,
  // test/cli/ls-fast.test.ts) are the Node front here: their marker is not jy-ctl's
  const stderr = (r.stderr ?? '').replace(LS_MARK, '');
  const fast = stderr.startsWith(MARK);
  return { code: r.status, stdout: r.stdout ?? '', stderr: fast ? stderr.slice(MARK.length) : stderr, fast };
}

/** The CLI's answer to the same command in this process (the Node front's code and output
 * framing, without a Node start-up per command). */
async function inProcess(cmd: 'jail' | 'jls' | 'jailyard', args: string[]): Promise<Run> {
  const argv =
    cmd === 'jailyard'
      ? args[0] === '--state'
        ? args
        : ['--state', state, ...args]
      : ['--state', state, cmd, ...args];
  return runCli(argv);
}

/** The same command through the daemon and through the Node front (bin/... with
 * JAILYARD_SRC=1, or with `inproc` the CLI in this process): equal, and which way it went. */
async function same(cmd: 'jail' | 'jls' | 'jailyard', args: string[], fast = true, inproc = false): Promise<Run> {
  const d = run(cmd, args);
  const what = `${cmd} ${args.join(' ')}`;
  assert.equal(d.fast, fast, `${what}: ${fast ? 'not through the daemon' : 'through the daemon'}: ${d.stderr}`);
  let n: Run;
  if (inproc) n = await inProcess(cmd, args);
  else {
    const p = run(cmd, args, { node: true });
    assert.equal(p.fast, false);
    const { fast: _p, ...pr } = p;
    n = pr;
  }
  const { fast: _d, ...dr } = d;
  assert.deepEqual(dr, n, what);
  return n;
}

async function startDaemon(): Promise<void> {
  daemon = await spawnServe(state);
}

/** Ends the daemon by its pid and waits until it is gone. */
async function endDaemon(signal: NodeJS.Signals): Promise<void> {
  const child = daemon;
  daemon = undefined;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  process.kill(child.pid!, signal);
  await gone;
}

before(async () => {
  baseline = snapshot();
  state = mkdtempSync('/tmp/jy-hosttools-');
  await startDaemon();
  // set up through the Node front: two running jails (one a parent), one with a hook
  for (const args of [
    ['-c', 'name=ht', 'persist', `ip4.addr=${ADDR}`, 'children.max=2', 'meta=a=1\nsecret=host-only', 'env=e=1'],
    ['-c', 'name=ht.kid', 'persist', 'meta=k=1'],
  ]) {
    const r = run('jail', args, { node: true });
    assert.equal(r.code, 0, r.stderr);
  }
});

after(async () => {
  try {
    await endDaemon('SIGTERM');
    for (const name of ['plain', 'hooked', 'ht.kid', 'ht']) await jy('remove', name);
    assertNoLeaks(baseline, state);
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});

test("jls and jailyard ls through the daemon: the Node front's bytes, streams and exit codes", async () => {
  for (const args of [
    [],
    ['-n'],
    ['-s'],
    ['-q', '-n'],
    ['-v'],
    ['-N'],
    ['-d', '-h', 'name', 'meta', 'children.cur'],
    ['-jht', 'meta.a', 'meta.secret', 'env.e', 'meta.none'],
    ['-j', 'ht', '-s', 'meta'],
    ['-jht.kid', 'parent', 'meta.k'],
    ['--libxo', 'json'],
    ['--libxo=json', '-n', '-j', 'ht'],
    ['-j', 'nope'],
    ['-jht', 'nope.x'],
    ['-x'],
    ['-j'],
  ])
    await same('jls', args, true, true);
  for (const args of [
    [],
    ['-a'],
    ['-j', 'ht'],
    ['-j', 'nope'],
    ['-l', 'a=1'],
    ['-l', 'a in (2)'],
    ['name', 'meta.a', 'env', 'children.cur'],
    ['-n', '-q'],
    ['-s'],
    ['-v'],
    ['-h', 'name', 'jid'],
    ['--json'],
    ['--json', 'name', 'meta'],
    ['--bogus'],
    ['-j'],
    ['-l', '(('],
  ])
    await same('jailyard', ['ls', ...args], true, true);
  // --state before the verb, as jy-ctl reads it
  await same('jailyard', ['--state', state, 'ls', '-n'], true, true);
  // the front as jailyard's verbs
  await same('jailyard', ['jls', '-jht', 'meta.a'], true, true);
  await same('jailyard', ['--state', state, 'jail', '-m', 'name=ht', 'meta.a=1'], true, true);
  // and as the Node front's own process prints them
  for (const args of [['-n'], ['-jht', 'meta.a', 'nope.x'], ['-j', 'nope'], ['--libxo', 'json']])
    await same('jls', args);
  for (const args of [['ls'], ['ls', '--json'], ['ls', '-j', 'nope'], ['ls', '--bogus']]) await same('jailyard', args);
  const meta = await same('jls', ['-jht', 'meta.secret']);
  assert.equal(meta.stdout, 'host-only\n');
});

test('jail -m key operations and errors: the same answers, the same state after each', async () => {
  const reset = async () => {
    assert.equal((await inProcess('jail', ['-m', 'name=ht', 'meta=a=1\nsecret=host-only', 'env=e=1'])).code, 0);
    assert.equal((await inProcess('jail', ['-m', 'name=ht.kid', 'meta=k=1'])).code, 0);
  };
  const steps = [
    ['-m', 'name=ht', 'meta.b=2'],
    ['-m', 'name=ht', 'env.c=3', 'meta.a'],
    ['-vm', 'name=ht', 'meta=x=9', 'meta.y=8'],
    ['-m', 'name=ht', 'meta.b', 'env='],
    ['-m', 'name=nope', 'meta.a=1'],
    ['-m', 'name=ht', 'bogus=1'],
    ['-m', 'name=ht', 'ip4.addr=198.51.100.5'],
    ['-m', 'name=ht.kid', 'meta.k=2'],
    ['-Z'],
  ];
  const seen = async (): Promise<string> => (await inProcess('jls', ['-n', '-d'])).stdout;
  await reset();
  const fast: { r: Run & { fast: boolean }; after: string }[] = [];
  for (const step of steps) fast.push({ r: run('jail', step), after: await seen() });
  await reset();
  for (const [k, step] of steps.entries()) {
    const n = await inProcess('jail', step);
    const f = fast[k]!;
    assert.equal(f.r.fast, true, `jail ${step.join(' ')}: not through the daemon: ${f.r.stderr}`);
    const { fast: _f, ...fr } = f.r;
    assert.deepEqual(fr, n, `jail ${step.join(' ')}`);
    assert.equal(f.after, await seen(), `the jails after jail ${step.join(' ')}`);
  }
  // one step as the Node front's own process says it
  await same('jail', ['-m', 'name=ht', 'meta.q=1', 'nosuch=1']);
  await reset();
  assert.equal(run('jls', ['-jht', 'meta.a']).stdout, '1\n');
  // -c and -r of a jail without hooks: through the daemon, as the Node front says them
  const c = run('jail', ['-vc', 'name=plain', 'persist', 'meta=p=1']);
  assert.deepEqual(c, { code: 0, stdout: 'created\n', stderr: '', fast: true });
  assert.deepEqual(run('jail', ['-c', 'name=plain', 'persist']), {
    code: 1,
    stdout: '',
    stderr: 'jail: "plain" already exists\n',
    fast: true,
  });
  assert.deepEqual(run('jail', ['-r', 'plain']), { code: 0, stdout: '', stderr: '', fast: true });
  assert.deepEqual(run('jail', ['-r', 'plain']), {
    code: 1,
    stdout: '',
    stderr: 'jail: "plain" not found\n',
    fast: true,
  });
});

test('forms the daemon refuses run in the CLI; so does everything without a daemon or with a foreign socket', async () => {
  // a jail with a stop hook: its output would stream in jail(8)
  const h = run('jail', ['-c', 'name=hooked', 'persist', 'exec.prestop=echo bye'], { node: true });
  assert.equal(h.code, 0, h.stderr);
  for (const args of [
    ['-f', 'no-such.conf', '-c', 'x'], // a file relative to the caller's folder
    ['-c', 'name=x', 'persist', 'exec.prestart=echo hi', 'nosuchparam=1'], // a hook on create
    ['-c', 'name=x', 'path=relative', 'nosuchparam=1'], // a relative path
    ['-c', 'x'], // the jail.conf form
    ['-m'], // the same (its jails would come from /etc/jail.conf)
    ['-m', 'name=ht', 'command=/bin/true'], // a command
    ['-r', 'nope'], // removing while a jail has hooks
    ['rel', 'host', ADDR, '/bin/true'], // the old form (a usage error here)
    ['-J', 'jid.txt', '-m', 'name=nope'],
  ])
    await same('jail', args, false, true);
  assert.equal(run('jail', ['-r', 'hooked'], { node: true }).code, 0);
  // the socket not 0600: jy-ctl does not ask it
  const sock = join(state, 'jailyard.sock');
  chmodSync(sock, 0o660);
  try {
    await same('jls', ['-n'], false, true);
    await same('jailyard', ['ls'], false, true);
  } finally {
    chmodSync(sock, 0o600);
  }
  await same('jls', ['-n'], true, true);
  // a setting of the caller's environment the daemon has its own of: the CLI's
  const own = run('jls', ['-n'], { env: { JAILYARD_DEFAULTS: join(REPO, 'defaults/defaults.json') } });
  assert.equal(own.fast, false);
  assert.equal(own.code, 0, own.stderr);
  // no daemon (killed -9: its socket file is left, nobody listens)
  await endDaemon('SIGKILL');
  await same('jls', ['-jht', 'meta.a'], false);
  await same('jail', ['-m', 'name=ht', 'meta.z=1'], false, true);
  await same('jailyard', ['ls', '-n'], false, true);
  await startDaemon();
  await same('jls', ['-jht', 'meta.z'], true, true);
});

/** POST to the daemon's socket or TCP; the status and body. */
function post(
  target: { socketPath: string } | { host: string; port: number },
  path: string,
  body: Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...target,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'content-length': body.length, ...headers },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test("the host tools answer root's unix socket only: not TCP with the token, not a process inside a jail", async () => {
  // a daemon of this process, on TCP too, with host tools that say what they were asked
  const dir = mkdtempSync('/tmp/jy-hosttools-tcp-');
  const store = openStore(dir);
  const asked: string[][] = [];
  const tools: HostTools = {
    run: async (tool, argv, io) => {
      asked.push([tool, ...argv]);
      if (argv[0] === 'refuse') return undefined;
      io.stdout('out\n');
      io.stderr('err');
      return 3;
    },
  };
  const d = await startApiDaemon({
    store,
    service: createLocalService({ store, stateDir: dir }),
    socketPath: join(dir, 'jailyard.sock'),
    listen: { host: '127.0.0.1', port: 0 },
    token: 'sesame',
    hostTools: tools,
  });
  try {
    const unix = { socketPath: d.socketPath };
    const ok = await post(unix, '/v1/host/jls', Buffer.from('-n\0x y\0'));
    assert.deepEqual(ok, { status: 200, body: '3 4 3\nout\nerr' });
    assert.deepEqual(asked, [['jls', '-n', 'x y']]);
    const refused = await post(unix, '/v1/host/jail', Buffer.from('refuse\0'));
    assert.equal(refused.status, 400);
    assert.equal((await post(unix, '/v1/host/jexec', Buffer.from('x\0'))).status, 404);
    assert.equal((await post(unix, '/v1/host/jls', Buffer.from('no-nul'))).status, 400);
    const tcp = await post(d.tcp!, '/v1/host/jls', Buffer.from('-n\0'), { authorization: 'Bearer sesame' });
    assert.equal(tcp.status, 401, tcp.body);
    assert.equal(asked.length, 2, 'only the unix socket requests reached the tools');
  } finally {
    await d.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }

  // a process inside a running jail (its pid namespace) that can name the daemon's socket (what
  // a view of the host's tree gives a jail): refused before the tools run
  const db = openStore(state, { readOnly: true });
  const initPid = db.getJail('ht')?.runtime?.create?.initPid;
  db.close();
  assert.ok(initPid, 'ht runs');
  // the same request from the host reaches the route (400: its body has no NUL)
  const curl = (prefix: string[]) =>
    spawnSync(
      prefix[0] ?? '/usr/bin/curl',
      [
        ...prefix.slice(1),
        ...(prefix.length ? ['/usr/bin/curl'] : []),
        '-s',
        '-o',
        '-',
        '-w',
        '\n%{http_code}',
        '--unix-socket',
        join(state, 'jailyard.sock'),
        '-H',
        'content-type: application/octet-stream',
        '--data-binary',
        '-jht',
        'http://localhost/v1/host/jls',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
  assert.match(curl([]).stdout, /\n400$/);
  const inside = curl(['nsenter', '-t', String(initPid), '-p', '--']);
  assert.match(inside.stdout, /\n401$/, `${inside.stdout} ${inside.stderr}`);
  assert.doesNotMatch(inside.stdout, /host-only/);
});
