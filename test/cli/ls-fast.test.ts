// A plain `jailyard ls` with no daemon runs dist/bundle/ls-fast.mjs before the CLI is loaded
// (bin/jailyard.js, src/cli/ls-fast.ts): the same output, streams and exit code as the CLI's
// own ls (JAILYARD_SRC=1 forces it) for every switch and parameter list it takes, and the CLI
// for whatever else (-j, -l, --help, an unknown option, `--`) and while a running jail
// without persist may have died (the CLI reaps it first). A plain `jls` (bin/jls, or
// `jailyard jls`) likewise runs dist/bundle/jls-fast.mjs (src/cli/jls-fast.ts): the bytes
// and exit status of the CLI's jls verb for every argument list, errors included.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor, JY_BIN } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);
const MARKS = ['jailyard: ls: fast path\n', 'jailyard: jls: fast path\n'];
const ROOT = join(import.meta.dirname, '../..');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  fast: boolean;
}

/** `jailyard --state STATE ...args` as a shell runs it (its sh line first), with the trace
 * marker on, no daemon and no --host; `node`: through the CLI (JAILYARD_SRC=1). */
function run(args: string[], node = false): Run {
  const env: Record<string, string | undefined> = { ...process.env, JAILYARD_TRACE_FAST: '1' };
  delete env.JAILYARD_HOST;
  delete env.JAILYARD_STATE;
  if (node) env.JAILYARD_SRC = '1';
  else delete env.JAILYARD_SRC;
  const r = spawnSync(JY_BIN, ['--state', state, ...args], { env, encoding: 'utf8', timeout: 120_000 });
  const mark = MARKS.find((m) => r.stderr.startsWith(m));
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.slice(mark?.length ?? 0), fast: mark !== undefined };
}

/** `VERB ...args` both ways: equal, and whether the fast path ran. */
function same(args: string[], fast: boolean, verb: 'ls' | 'jls' = 'ls'): Run {
  const f = run([verb, ...args]);
  const n = run([verb, ...args], true);
  assert.equal(n.fast, false);
  assert.equal(f.fast, fast, `${verb} ${args.join(' ')}: ${f.stderr}`);
  const { fast: _f, ...fr } = f;
  const { fast: _n, ...nr } = n;
  assert.deepEqual(fr, nr, `${verb} ${args.join(' ')}`);
  return f;
}

before(async () => {
  // the fast path runs from dist/ only (the bin takes the sources while dist/ is stale)
  assert.ok(existsSync(join(ROOT, 'dist/bundle/ls-fast.mjs')), 'npm test builds dist/ first');
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-lsfast-'));
  const ok = async (...args: string[]) => {
    const r = await jy(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  };
  await ok('skel', 'create', 'host', '--from', '/');
  await ok('create', 'web', 'skeleton=host', 'persist', 'meta.app=www', 'meta.note=two words', 'env.tier=front');
  await ok('create', 'db', 'skeleton=host', 'persist', 'host.hostname=db.example', 'meta.app=db');
  await ok('create', 'off', 'skeleton=host', 'ip4.addr=198.51.100.77', 'meta.app=www');
  await ok('create', 'par', 'skeleton=host', 'persist', 'children.max=2');
  await ok('create', 'par.kid', 'persist');
  await ok('start', 'web', 'db', 'par', 'par.kid');
});

after(async () => {
  // one by one: a remove naming a jail that is not there (np, when its test did not get that
  // far) removes nothing
  for (const name of ['web', 'db', 'off', 'par.kid', 'par', 'np']) await jy('remove', name);
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('ls with switches and parameters: the bytes of the CLI, without loading it', () => {
  assert.equal(
    same(['-a', '-h', 'name', 'state', 'meta.app'], true).stdout,
    'name state meta.app\ndb running db\noff stopped www\npar running \npar.kid running \nweb running www\n',
  );
  for (const args of [
    [],
    ['-a'],
    ['--all'],
    ['-av'],
    ['-a', '--verbose'],
    ['-a', '--json'],
    ['--json', 'name', 'meta', 'env'],
    ['-an'],
    ['-as'],
    ['-aq', '-n', 'meta', 'meta.note'],
    ['-ahN'],
    ['-N'],
    ['-a', 'children.cur', 'children.max', 'parent', 'jid', 'name'],
    ['-a', 'ip4.addr', 'host.hostname', 'path'],
    ['--all', '--header', '--name', '--quote', '--nameval', '--settable', '--verbose', '--json'],
    ['-a', 'no.such.param'],
    ['name', '-a'],
  ])
    same(args, true);
});

test('what the fast path does not take goes to the CLI: -j, -l, --help, unknown options, --', () => {
  for (const args of [
    ['-j', 'web'],
    ['-aj', 'web'],
    ['--jail', 'db', 'name'],
    ['-l', 'app=www'],
    ['-a', '--selector', 'app=www'],
    ['--help'],
    ['-x'],
    ['-ax'],
    ['--all=1'],
    ['--', 'name'],
    ['-'],
  ])
    same(args, false);
  assert.equal(same(['-x'], false).code, 2, 'an unknown option is a usage error of the CLI');
});

test('a running jail without persist may have died: the ls of the CLI (which reaps it) runs', async () => {
  const r = await jy('create', 'np', 'skeleton=host', 'exec.start=sleep 600 &');
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await jy('start', 'np')).code, 0);
  same([], false);
  same(['-a', 'name', 'persist'], false);
  same(['-n', 'name'], false, 'jls');
  assert.equal((await jy('stop', 'np')).code, 0);
  same(['-n', 'name'], true, 'jls');
  same(['-a', 'name', 'persist'], true);
});

test('jls: the bytes and exit status of the CLI verb for every argument list, without loading it', () => {
  assert.equal(
    same(['-N', '-h', 'name', 'host.hostname'], true, 'jls').stdout,
    'name host.hostname\nweb web\ndb db.example\npar par\npar.kid par.kid\n',
  );
  for (const args of [
    [],
    ['-v'],
    ['-n'],
    ['-s'],
    ['-q', '-n', 'name', 'meta'],
    ['-h', 'jid', 'name', 'children.cur', 'children.max', 'parent'],
    ['--libxo', 'json'],
    ['--libxo=json,pretty', '-v'],
    ['-j', 'web'],
    ['-j', 'web', 'name', 'env'],
    ['-c', '-j', 'db'],
    // the error forms: usage, a jail not found (or stopped: jail(8) has none), -c alone, libxo
    ['-j', 'off'],
    ['-c', '-j', 'nope'],
    ['-c'],
    ['-x'],
    ['--libxo'],
    ['-j'],
  ])
    same(args, true, 'jls');
  assert.equal(same(['-j', 'off'], true, 'jls').code, 1, 'a stopped jail is no jail to jls(8)');
  assert.equal(same(['-c', '-j', 'db'], true, 'jls').code, 0);
});

test('bin/jls, as FreeBSD scripts run it: the fast path with $JAILYARD_STATE, the same bytes as the CLI', () => {
  const jls = (src: boolean) => {
    const env: Record<string, string | undefined> = { ...process.env, JAILYARD_STATE: state, JAILYARD_TRACE_FAST: '1' };
    delete env.JAILYARD_HOST;
    if (src) env.JAILYARD_SRC = '1';
    else delete env.JAILYARD_SRC;
    return spawnSync(join(ROOT, 'bin/jls'), ['-n', 'name', 'jid'], { env, encoding: 'utf8', timeout: 120_000 });
  };
  const f = jls(false);
  const n = jls(true);
  assert.equal(f.stderr, MARKS[1]);
  assert.equal(n.stderr, '');
  assert.equal(f.status, 0);
  assert.equal(f.stdout, n.stdout);
  // jid order, as jls(8) walks them
  assert.match(f.stdout, /^name=web jid=\d+\nname=db jid=\d+\n/);
});

test('no store yet: the ls and jls of the CLI', () => {
  const kept = state;
  // each in a folder of its own: the CLI's run makes the store
  for (const [verb, args] of [
    ['ls', ['-a']],
    ['jls', []],
  ] as const) {
    state = mkdtempSync(join(tmpdir(), 'jy-lsfast-empty-'));
    try {
      rmSync(state, { recursive: true });
      same([...args], false, verb);
    } finally {
      rmSync(state, { recursive: true, force: true });
      state = kept;
    }
  }
});
