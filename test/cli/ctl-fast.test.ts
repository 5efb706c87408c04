// `jailyard start|stop|restart NAME...` without Node when a daemon serves the state folder
// (bin/jailyard.js's sh line, native/jy-ctl.c): the same output, streams and exit codes as
// the CLI's own path (JAILYARD_SRC=1 forces it), and the CLI whenever no daemon answers
// (killed -9: its socket file is left, nobody listens), the socket is not root's 0600 one,
// or the command has anything jy-ctl does not handle.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, utimesSync } from 'node:fs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor, JY_BIN, spawnServe } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;
let daemon: ChildProcess | undefined;
const jy = cliFor(() => state);
const MARK = 'jailyard: ctl: fast path\n';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The bin as a shell runs it (its sh line first), with the trace marker on. */
function bin(args: string[], opts: { node?: boolean; env?: Record<string, string> } = {}): Run {
  const env: Record<string, string | undefined> = { ...process.env, JAILYARD_TRACE_FAST: '1', ...opts.env };
  if (!opts.env?.JAILYARD_HOST) delete env.JAILYARD_HOST;
  if (!opts.env?.JAILYARD_STATE) delete env.JAILYARD_STATE;
  if (opts.node) env.JAILYARD_SRC = '1';
  else delete env.JAILYARD_SRC;
  const r = spawnSync(JY_BIN, args, { env, encoding: 'utf8', timeout: 120_000, input: '' });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Runs through the bin and says whether jy-ctl answered (the marker, taken off). */
function run(args: string[], opts: { node?: boolean; env?: Record<string, string> } = {}): Run & { fast: boolean } {
  const r = bin(args, opts);
  const fast = r.stderr.startsWith(MARK);
  return { ...r, stderr: fast ? r.stderr.slice(MARK.length) : r.stderr, fast };
}

/** The same commands through jy-ctl, then through Node from the same starting state (and,
 * with `host`, through Node's --host client too): equal outputs; `reset` brings the jails
 * back to that state between them. */
function same(commands: string[][], reset: string[][] = [], host = false): Run[] {
  const fast = commands.map((c) => run(['--state', state, ...c]));
  for (const c of reset) assert.equal(run(['--state', state, ...c]).code, 0, c.join(' '));
  const node = commands.map((c) => run(['--state', state, ...c], { node: true }));
  if (host) {
    for (const c of reset) assert.equal(run(['--state', state, ...c]).code, 0, c.join(' '));
    const env = { JAILYARD_HOST: `unix://${join(state, 'jailyard.sock')}` };
    commands.forEach((c, k) => {
      const { fast: _h, ...h } = run(['--state', state, ...c], { env });
      const { fast: _n, ...n } = node[k]!;
      assert.deepEqual(h, n, `--host: jailyard ${c.join(' ')}`);
    });
  }
  commands.forEach((c, k) => {
    assert.equal(fast[k]?.fast, true, `not through the daemon: ${c.join(' ')}: ${fast[k]?.stderr}`);
    assert.equal(node[k]?.fast, false);
    const { fast: _f, ...f } = fast[k]!;
    const { fast: _n, ...n } = node[k]!;
    assert.deepEqual(f, n, `jailyard ${c.join(' ')}`);
  });
  return node;
}

async function startDaemon(): Promise<void> {
  daemon = await spawnServe(state);
}

/** Ends the daemon by its pid and waits until it is gone. */
async function endDaemon(signal: NodeJS.Signals): Promise<void> {
  const child = daemon;
  daemon = undefined;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.on('exit', resolve));
  process.kill(child.pid as number, signal);
  await gone;
}

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-ctlfast-'));
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
  for (const name of ['c1', 'c2'])
    assert.equal((await jy('create', name, 'skeleton=host', 'persist', 'meta.test=ctlfast')).code, 0);
  await startDaemon();
});

after(async () => {
  await endDaemon('SIGTERM');
  await jy('remove', '-l', 'test=ctlfast');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('start, stop and restart through the daemon: what the CLI prints (with --host too), where, and its exit codes', () => {
  const [start, stop] = same(
    [
      ['start', 'c1'],
      ['stop', 'c1'],
    ],
    [
      ['start', 'c1'],
      ['stop', 'c1'],
    ],
    true,
  );
  assert.equal(start?.code, 0);
  assert.equal(start?.stdout, '');
  assert.match(start?.stderr ?? '', /^c1: exec.prepare\n(c1: .*\n)*c1: started\n$/);
  assert.match(stop?.stderr ?? '', /\nc1: stopped\n$/);
  // two names, in order; then restart of both
  same(
    [
      ['start', 'c1', 'c2'],
      ['restart', 'c2', 'c1'],
      ['stop', 'c2', 'c1'],
    ],
    [
      ['start', 'c1', 'c2'],
      ['restart', 'c2', 'c1'],
      ['stop', 'c2', 'c1'],
    ],
  );
});

test('failures: an unknown jail, a jail already running, one stopped twice', () => {
  const [unknown] = same([['start', 'nope']]);
  assert.equal(unknown?.code, 1);
  assert.equal(unknown?.stderr, 'jailyard: jail "nope": jail "nope" not found\n');
  same([['stop', 'c1', 'nope']]);
  assert.equal(run(['--state', state, 'start', 'c1']).code, 0);
  try {
    const [again] = same([['start', 'c1']]);
    assert.equal(again?.code, 1);
    assert.match(again?.stderr ?? '', /^c1: failed: jail "c1": cannot start: it is already running\n$/);
    // the first name starts, the second is refused: both paths from the same state
    same([['start', 'c2', 'c1']], [['stop', 'c2']]);
  } finally {
    assert.equal(run(['--state', state, 'stop', 'c1', 'c2']).code, 0);
  }
  const [twice] = same([['stop', 'c1']]);
  assert.equal(twice?.code, 1);
});

test('what jy-ctl leaves to the CLI: options, odd names, JAILYARD_HOST, a socket that is not 0600', () => {
  for (const args of [
    ['start', '-p', '2', 'nope'],
    ['start', '--json', 'nope'],
    ['start', '-l', 'test=none'],
    ['start'],
    ['start', 'c1/..'],
    ['stop', '-x'],
  ]) {
    const r = run(['--state', state, ...args]);
    assert.equal(r.fast, false, args.join(' '));
    assert.deepEqual(r, run(['--state', state, ...args], { node: true }), args.join(' '));
  }
  // $JAILYARD_STATE as the CLI reads it
  const viaEnv = run(['start', 'nope'], { env: { JAILYARD_STATE: state } });
  assert.equal(viaEnv.fast, true);
  assert.equal(viaEnv.stderr, 'jailyard: jail "nope": jail "nope" not found\n');
  const sock = join(state, 'jailyard.sock');
  // --host's own path: the Node client, same answer
  const viaHost = run(['--state', state, 'start', 'nope'], { env: { JAILYARD_HOST: `unix://${sock}` } });
  assert.deepEqual(viaHost, { ...viaEnv, fast: false });
  // a jy-ctl older than its source is not trusted
  const ctl = join(JY_BIN, '../../native/build/jy-ctl');
  const { atime, mtime } = statSync(ctl);
  utimesSync(ctl, atime, new Date(0));
  try {
    assert.equal(run(['--state', state, 'start', 'nope']).fast, false);
  } finally {
    utimesSync(ctl, atime, mtime);
  }
  chmodSync(sock, 0o660);
  try {
    assert.equal(run(['--state', state, 'start', 'nope']).fast, false);
  } finally {
    chmodSync(sock, 0o600);
  }
  assert.equal(run(['--state', state, 'start', 'nope']).fast, true);
});

test('the daemon killed -9 between two calls: the next call is the CLI, and it works', async () => {
  assert.equal(run(['--state', state, 'start', 'c1']).fast, true);
  await endDaemon('SIGKILL');
  // its socket file is left behind, nobody listens on it
  assert.ok(existsSync(join(state, 'jailyard.sock')));
  const stop = run(['--state', state, 'stop', 'c1']);
  assert.equal(stop.fast, false);
  assert.equal(stop.code, 0, stop.stderr);
  assert.match(stop.stderr, /\nc1: stopped\n$/);
  const start = run(['--state', state, 'start', 'c1']);
  assert.equal(start.fast, false);
  assert.equal(start.code, 0, start.stderr);
  // a daemon again: through it
  await startDaemon();
  const r = run(['--state', state, 'stop', 'c1']);
  assert.equal(r.fast, true);
  assert.equal(r.code, 0, r.stderr);
});

test('a daemon from before `progress` (400, no outcomes: it allows no other property): the CLI does it', async () => {
  await endDaemon('SIGTERM');
  const sock = join(state, 'jailyard.sock');
  rmSync(sock, { force: true });
  // a stand-in for that daemon's answer, in a process of its own (spawnSync blocks this one)
  const stub = spawn(
    process.execPath,
    [
      '-e',
      `const http = require('node:http'); const fs = require('node:fs');
       const body = JSON.stringify({ code: 'JY_ERR_USAGE', message: 'body must NOT have additional properties' });
       http.createServer((req, res) => { req.resume(); req.on('end', () => {
         res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
         res.end(body); }); })
         .listen(process.argv[1], () => { fs.chmodSync(process.argv[1], 0o600); console.log('listening'); });`,
      sock,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await new Promise<void>((resolve) => stub.stdout!.once('data', () => resolve()));
    for (const verb of ['start', 'stop']) {
      const r = run(['--state', state, verb, 'c1']);
      assert.equal(r.fast, false, `${verb} went through the old daemon: ${r.stderr}`);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`\\nc1: ${verb === 'start' ? 'started' : 'stopped'}\\n$`));
    }
  } finally {
    stub.kill('SIGTERM');
    rmSync(sock, { force: true });
  }
});
