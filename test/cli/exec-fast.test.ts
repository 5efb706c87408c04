// `jailyard exec NAME PROGRAM...` without Node (bin/jailyard.js's sh line, jy-enter --fast):
// taken for a running jail, the same output, exit code and jail view as the CLI's own path
// (JAILYARD_SRC=1 forces it), the CLI whenever the enter file is missing, stale or not
// root's own, and never for a NAME that is not one plain folder name.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { spawnSync, type StdioOptions } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor, JY_BIN } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);
const MARK = 'jailyard: exec: fast path\n';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The bin as a shell runs it (its sh line first), with the trace marker on. */
function bin(args: string[], opts: { fast?: boolean; input?: string; stdio?: StdioOptions } = {}): Run {
  const env: Record<string, string | undefined> = { ...process.env, JAILYARD_TRACE_FAST: '1' };
  delete env.JAILYARD_HOST;
  delete env.JAILYARD_STATE;
  if (opts.fast === false) env.JAILYARD_SRC = '1';
  else delete env.JAILYARD_SRC;
  const r = spawnSync(JY_BIN, args, {
    env,
    encoding: 'utf8',
    timeout: 60_000,
    ...(opts.stdio ? { stdio: opts.stdio } : { input: opts.input ?? '' }),
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** The fast run and the CLI's run of the same command: equal, and the fast one took the path. */
function same(args: string[], opts: { input?: string; fast?: boolean } = {}): Run {
  const fast = bin(['--state', state, ...args], opts);
  const cli = bin(['--state', state, ...args], { ...opts, fast: false });
  const tookFast = fast.stderr.startsWith(MARK);
  assert.equal(tookFast, opts.fast !== false, `fast path ${tookFast ? 'taken' : 'not taken'}: ${fast.stderr}`);
  assert.equal(cli.stderr.includes(MARK), false);
  assert.deepEqual(
    { ...fast, stderr: tookFast ? fast.stderr.slice(MARK.length) : fast.stderr },
    cli,
    `jailyard ${args.join(' ')}`,
  );
  return cli;
}

const enter = (name: string) => join(state, 'jails', name, 'enter');

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-execfast-'));
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
  // while it starts (the CLI refuses an exec) the enter file is not in place yet; the hook
  // failing would fail the start
  const r = await jy(
    'create',
    'fx',
    'skeleton=host',
    'persist',
    'meta.test=execfast',
    'exec.poststart=test -e "$JPATH/../enter.next" && test ! -e "$JPATH/../enter"',
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await jy('start', 'fx')).code, 0);
});

after(async () => {
  await jy('remove', '-l', 'test=execfast');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('the enter file: root-only, in the state folder, naming the jail pid 1 and its start time', () => {
  const text = readFileSync(enter('fx'), 'utf8');
  assert.match(text, /^jy-enter-fast 1\ntarget \d+\nstart-time \d+\npidns \d+\n/);
  assert.match(text, /\nenv JNAME=fx\n/);
  const pid = /target (\d+)/.exec(text)?.[1];
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  assert.equal(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19], /start-time (\d+)/.exec(text)?.[1]);
});

test('fast and CLI paths: same output, errors and exit codes, same view of the jail', () => {
  const view =
    'env | sort; pwd; ulimit -n; id; grep -E "^(Cap|Seccomp|NoNewPrivs)" /proc/self/status; ls /proc/self/fd; trap';
  assert.match(same(['exec', 'fx', 'sh', '-c', view]).stdout, /JNAME=fx\nJPATH=\/\n/);
  assert.equal(same(['exec', 'fx', 'sh', '-c', 'echo out; echo err >&2; exit 7']).code, 7);
  assert.equal(same(['exec', 'fx', 'cat'], { input: 'through stdin\n' }).stdout, 'through stdin\n');
  assert.equal(same(['exec', 'fx', 'sh', '-c', 'kill -TERM $$']).code, 128 + 15);
  assert.equal(same(['exec', 'fx', 'no-such-program-x1']).code, 125);
  // arguments cross as they are, none read by a shell
  assert.equal(same(['exec', 'fx', 'printf', '%s|', '$(id)', '"a b"', '`x`', '*']).stdout, '$(id)|"a b"|`x`|*|');
  // options go to the CLI; --state in front is the one the fast path reads
  same(['exec', '-T', 'fx', 'true'], { fast: false });
  same(['exec', 'fx', '-x'], { fast: false });
  same(['exec', 'fx'], { fast: false, input: 'echo from-sh\n' });
});

test("fast path: a descriptor of the caller (fd 200 on the host's /) does not cross", () => {
  const root = openSync('/', 'r');
  try {
    const stdio: StdioOptions = ['ignore', 'pipe', 'pipe', ...Array<'ignore'>(197).fill('ignore'), root];
    const r = bin(['--state', state, 'exec', 'fx', 'ls', '/proc/self/fd'], { stdio });
    assert.ok(r.stderr.startsWith(MARK), r.stderr);
    assert.deepEqual(r.stdout.split(/\s+/).filter(Boolean).map(Number), [0, 1, 2, 3]);
  } finally {
    closeSync(root);
  }
});

test('a stale, foreign or missing enter file: the CLI runs the command', () => {
  const file = enter('fx');
  const good = readFileSync(file, 'utf8');
  try {
    // the pid 1 of the file is not the process that started with the jail (a reused pid)
    writeFileSync(file, good.replace(/^start-time \d+$/m, 'start-time 1'), { mode: 0o600 });
    same(['exec', 'fx', 'echo', 'stale'], { fast: false });
    // writable by others: never trusted
    writeFileSync(file, good);
    chmodSync(file, 0o622);
    same(['exec', 'fx', 'echo', 'writable'], { fast: false });
    // cut short
    writeFileSync(file, good.slice(0, 40), { mode: 0o600 });
    chmodSync(file, 0o600);
    same(['exec', 'fx', 'echo', 'short'], { fast: false });
    rmSync(file);
    same(['exec', 'fx', 'echo', 'missing'], { fast: false });
  } finally {
    writeFileSync(file, good, { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  same(['exec', 'fx', 'echo', 'back']);
});

test('a hostile NAME never reaches jy-enter: the CLI refuses it as before', () => {
  // enter files planted where a NAME with ".." or "/" would lead
  const good = readFileSync(enter('fx'), 'utf8');
  for (const dir of [join(state, 'planted'), join(state, 'jails', 'a', 'b')]) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'enter'), good, { mode: 0o600 });
  }
  try {
    for (const name of ['../planted', 'a/b', '..', '.', '-fx', 'fx\nfx']) {
      const r = same(['exec', name, 'echo', 'planted'], { fast: false });
      assert.notEqual(r.code, 0, name);
      assert.equal(r.stdout, '', name);
    }
  } finally {
    rmSync(join(state, 'planted'), { recursive: true });
    rmSync(join(state, 'jails', 'a'), { recursive: true });
  }
});

test('$JAILYARD_STATE as the CLI reads it; a relative one goes to the CLI', () => {
  const env: Record<string, string | undefined> = { ...process.env, JAILYARD_TRACE_FAST: '1', JAILYARD_STATE: state };
  delete env.JAILYARD_SRC;
  delete env.JAILYARD_HOST;
  const r = spawnSync(JY_BIN, ['exec', 'fx', 'echo', 'env-state'], { env, encoding: 'utf8', input: '' });
  assert.equal(r.stdout, 'env-state\n');
  assert.ok(r.stderr.startsWith(MARK), r.stderr);
  const rel = spawnSync(JY_BIN, ['exec', 'fx', 'echo', 'relative'], {
    env: { ...env, JAILYARD_STATE: state.slice(1) },
    cwd: '/',
    encoding: 'utf8',
    input: '',
  });
  assert.equal(rel.stdout, 'relative\n');
  assert.equal(rel.stderr, '');
});

test('a parameter changed on the running jail: the CLI runs every exec, with the new filter and capabilities', async () => {
  const before = bin(['--state', state, 'exec', 'fx', 'grep', '^CapBnd', '/proc/self/status']);
  assert.equal((await jy('set', 'fx', 'allow.raw_sockets=1')).code, 0);
  assert.equal(existsSync(enter('fx')), false);
  const after = same(['exec', 'fx', 'grep', '^CapBnd', '/proc/self/status'], { fast: false });
  assert.notEqual(after.stdout, before.stdout.replace(MARK, ''), 'CAP_NET_RAW is in the new bounding set');
  // a restart writes the file again, from the parameters now
  assert.equal((await jy('stop', 'fx')).code, 0);
  assert.equal((await jy('start', 'fx')).code, 0);
  assert.equal(same(['exec', 'fx', 'grep', '^CapBnd', '/proc/self/status']).stdout, after.stdout);
});

test('stopped: no enter file, the CLI says the jail is not running; started again: fast', async () => {
  assert.equal((await jy('stop', 'fx')).code, 0);
  assert.equal(existsSync(enter('fx')), false);
  const r = same(['exec', 'fx', 'true'], { fast: false });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /not running/);
  assert.equal((await jy('start', 'fx')).code, 0);
  same(['exec', 'fx', 'true']);
});
