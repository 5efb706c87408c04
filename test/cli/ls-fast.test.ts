// A plain `jailyard ls` with no daemon runs dist/bundle/ls-fast.mjs before the CLI is loaded
// (bin/jailyard.js, src/cli/ls-fast.ts): the same output, streams and exit code as the CLI's
// own ls (JAILYARD_SRC=1 forces it) for every switch and parameter list it takes, and the CLI
// for whatever else (-j, -l, --help, an unknown option, `--`) and while a running jail
// without persist may have died (the CLI reaps it first).
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
const MARK = 'jailyard: ls: fast path\n';
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
  const fast = r.stderr.startsWith(MARK);
  return { code: r.status, stdout: r.stdout, stderr: fast ? r.stderr.slice(MARK.length) : r.stderr, fast };
}

/** `ls ...args` both ways: equal, and whether the fast path ran. */
function same(args: string[], fast: boolean): Run {
  const f = run(['ls', ...args]);
  const n = run(['ls', ...args], true);
  assert.equal(n.fast, false);
  assert.equal(f.fast, fast, `ls ${args.join(' ')}: ${f.stderr}`);
  const { fast: _f, ...fr } = f;
  const { fast: _n, ...nr } = n;
  assert.deepEqual(fr, nr, `ls ${args.join(' ')}`);
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
  assert.equal((await jy('stop', 'np')).code, 0);
  same(['-a', 'name', 'persist'], true);
});

test('no store yet: the ls of the CLI', () => {
  const kept = state;
  state = mkdtempSync(join(tmpdir(), 'jy-lsfast-empty-'));
  try {
    rmSync(state, { recursive: true });
    same(['-a'], false);
  } finally {
    rmSync(state, { recursive: true, force: true });
    state = kept;
  }
});
