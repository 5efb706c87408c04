// A jail chooses much of what `jailyard ls` and `jls` print: its children's host.hostname,
// meta.* and env.* (through its own jail -c), its own env. On the operator's terminal none of
// it may arrive as control characters: an OSC that retitles the window or writes the
// clipboard (OSC 52), a CSI that clears the screen (ESC [ or the C1 byte U+009B), a carriage
// return or backspaces that print over what came before, a newline that makes up a row.
// Every listing form, through the CLI and through both fast paths (bin/jailyard.js runs
// dist/bundle/ls-fast.mjs and jls-fast.mjs; native/jy-ctl leaves a terminal's ls and jls to
// them when a daemon serves the folder), shows them as visible escapes on a terminal (a pty
// from util-linux's script), the same bytes each way. Through a pipe the text forms keep the
// bytes as jls(8) does; JSON escapes them always. No jail runs: the records are written to
// the store as a jail's jail -c leaves them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JY_BIN, spawnServe } from '../helpers/cli.ts';
import { formatJls } from '../../src/cli/jls.ts';
import { printableValue } from '../../src/errors.ts';
import { openStore } from '../../src/store/sqlite.ts';
import type { JailRecord } from '../../src/store/types.ts';

const ROOT = join(import.meta.dirname, '../..');
const MARKS = ['jailyard: ls: fast path\n', 'jailyard: jls: fast path\n', 'jailyard: ctl: fast path\n'];

// what a hostile parent gives its child (a hostname cannot start with "-", nor a meta/env key
// value set one key at a time hold a newline: the whole buffer can)
const HOSTNAME = 'h\x1b]0;pwned\x07\x1b[2Jz';
const META_K = 'ok\rEVIL\b\b\b\bgood\x1b]52;c;cm0gLXJmIH4K\x07';
const ENV_K = 'v\u009b31mred\x1b[0m\x7f\t|';
const ENV_ALL = `k=${ENV_K}\nf4fake  198.51.100.230  fake`;
const ESCAPED = {
  hostname: 'h\\x1b]0;pwned\\x07\\x1b[2Jz',
  metaK: 'ok\\rEVIL\\x08\\x08\\x08\\x08good\\x1b]52;c;cm0gLXJmIH4K\\x07',
  envK: 'v\\u009b31mred\\x1b[0m\\x7f\\t|',
};
/** What a terminal must never be handed: every control character but the line ends. */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

let state: string;
let daemon: ChildProcess | undefined;

interface Run {
  out: string;
  /** Which path printed it: the marker JAILYARD_TRACE_FAST prints, or undefined (the CLI). */
  path: 'ls' | 'jls' | 'ctl' | undefined;
}

const sh = (word: string): string => `'${word.replaceAll("'", "'\\''")}'`;

function env(node: boolean): Record<string, string | undefined> {
  const e: Record<string, string | undefined> = { ...process.env, JAILYARD_TRACE_FAST: '1' };
  delete e.JAILYARD_HOST;
  delete e.JAILYARD_STATE;
  if (node) e.JAILYARD_SRC = '1';
  else delete e.JAILYARD_SRC;
  return e;
}

function marked(text: string): Run {
  const mark = MARKS.find((m) => text.includes(m));
  const path = mark ? (mark.split(': ')[1] as Run['path']) : undefined;
  return { out: mark ? text.replace(mark, '') : text, path };
}

/** `jailyard --state STATE ...args` (its sh line first) with stdout and stderr on a terminal:
 * what the terminal was handed, the pty's CRLF line ends back to LF. `node`: the CLI itself. */
function onTerminal(args: string[], node = false): Run {
  const command = [JY_BIN, '--state', state, ...args].map(sh).join(' ');
  const r = spawnSync('script', ['-qfec', command, '/dev/null'], {
    env: env(node),
    encoding: 'utf8',
    input: '',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return marked(r.stdout.replaceAll('\r\n', '\n'));
}

/** The same through a pipe: stdout alone. */
function onPipe(args: string[], node = false): Run {
  const r = spawnSync(JY_BIN, ['--state', state, ...args], { env: env(node), encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  return { out: r.stdout, path: marked(r.stderr).path };
}

/** The listing forms; `fast`: the Node fast path takes it (ls -j is the CLI's). */
const FORMS: { args: string[]; fast: boolean; shows: (keyof typeof ESCAPED)[] }[] = [
  { args: ['ls', '-a'], fast: true, shows: ['hostname'] },
  { args: ['ls', '-a', '-N'], fast: true, shows: ['hostname'] },
  { args: ['ls', '-a', '-v'], fast: true, shows: ['hostname'] },
  { args: ['ls', '-a', '-n'], fast: true, shows: ['hostname', 'envK'] },
  { args: ['ls', '-a', '-s'], fast: true, shows: ['hostname', 'envK'] },
  {
    args: ['ls', '-a', '-h', 'host.hostname', 'meta.k', 'env.k', 'meta', 'env'],
    fast: true,
    shows: ['hostname', 'metaK', 'envK'],
  },
  { args: ['ls', '-a', '-q', '-n', 'meta.k', 'env.k'], fast: true, shows: ['metaK', 'envK'] },
  { args: ['ls', '-j', 'f4top.kid', '-n', 'meta.k'], fast: false, shows: ['metaK'] },
  { args: ['jls'], fast: true, shows: ['hostname'] },
  { args: ['jls', '-N'], fast: true, shows: ['hostname'] },
  { args: ['jls', '-v'], fast: true, shows: ['hostname'] },
  { args: ['jls', '-n'], fast: true, shows: ['hostname', 'envK'] },
  { args: ['jls', '-s'], fast: true, shows: ['hostname', 'envK'] },
  { args: ['jls', '-h', 'host.hostname', 'meta.k', 'env.k'], fast: true, shows: ['hostname', 'metaK', 'envK'] },
  { args: ['jls', '-q', 'meta', 'env'], fast: true, shows: ['metaK', 'envK'] },
  { args: ['jls', '-j', 'f4top.kid', '-n', 'meta.k', 'env.k'], fast: true, shows: ['metaK', 'envK'] },
];

const JSON_FORMS = [
  ['ls', '-a', '--json', 'host.hostname', 'meta.k', 'env.k'],
  ['jls', '--libxo', 'json', 'host.hostname', 'meta.k', 'env.k'],
  ['jls', '--libxo', 'json,pretty', 'host.hostname', 'meta.k', 'env.k'],
];

before(() => {
  // the fast paths run from dist/ only (the bin takes the sources while dist/ is stale)
  assert.ok(existsSync(join(ROOT, 'dist/bundle/ls-fast.mjs')), 'npm test builds dist/ first');
  state = mkdtempSync(join(tmpdir(), 'jy-f4-escapes-'));
  const store = openStore(state);
  try {
    store.createJail({ name: 'f4top', params: { persist: true, 'children.max': 1 } });
    // as the parent's own jail -c leaves its child: every value the parent's to choose
    store.createJail({
      name: 'f4top.kid',
      params: { persist: true, 'host.hostname': HOSTNAME },
      meta: [{ op: 'set', key: 'k', value: META_K }],
      env: [{ op: 'replace', value: ENV_ALL }],
    });
    for (const name of ['f4top', 'f4top.kid']) {
      store.transition(name, 'stopped', 'starting');
      store.transition(name, 'starting', 'running');
    }
  } finally {
    store.close();
  }
});

after(async () => {
  await endDaemon();
  rmSync(state, { recursive: true, force: true });
});

test("every listing form of ls and jls shows a jail's control characters escaped on a terminal, the same through the fast paths", () => {
  for (const { args, fast, shows } of FORMS) {
    const what = args.join(' ');
    const f = onTerminal(args);
    const n = onTerminal(args, true);
    assert.equal(f.path, fast ? args[0] : undefined, `${what}: the fast path`);
    assert.equal(n.path, undefined);
    assert.equal(f.out, n.out, `${what}: the fast path prints what the CLI prints`);
    assert.doesNotMatch(n.out, RAW_CONTROL, `${what}: ${JSON.stringify(n.out)}`);
    for (const field of shows) assert.ok(n.out.includes(ESCAPED[field]), `${what}: ${field}: ${n.out}`);
    // a made-up row: the env buffer's newline stays inside its field
    if (n.out.includes('f4fake')) assert.ok(n.out.includes('\\nf4fake  198.51.100.230  fake'), `${what}: ${n.out}`);
    assert.doesNotMatch(n.out, /^f4fake/m, what);
  }
});

test('JSON shows them as \\u escapes on a terminal and through a pipe, and parses to the stored values', () => {
  for (const args of JSON_FORMS) {
    const what = args.join(' ');
    const t = onTerminal(args);
    const p = onPipe(args);
    assert.equal(t.out, onTerminal(args, true).out, `${what}: the fast path`);
    assert.equal(p.out, onPipe(args, true).out, `${what}: the fast path`);
    assert.equal(t.out, p.out, `${what}: one document for both`);
    assert.doesNotMatch(p.out, RAW_CONTROL, `${what}: ${JSON.stringify(p.out)}`);
    assert.ok(p.out.includes('\\u009b31m') && p.out.includes('\\u007f'), `${what}: C1 and DEL as \\u escapes`);
    const jails = (JSON.parse(p.out) as { 'jail-information': { jail: Record<string, string>[] } })['jail-information']
      .jail;
    const kid = jails.find((j) => j['host.hostname'] === HOSTNAME);
    assert.ok(kid, `${what}: ${p.out}`);
    assert.equal(kid['meta.k'], META_K);
    assert.equal(kid['env.k'], ENV_K);
  }
});

test("through a pipe the text forms keep a jail's bytes, as jls(8) does, the same through the fast paths", () => {
  for (const args of [
    ['ls', '-a', '-n', 'host.hostname', 'meta.k', 'env'],
    ['jls', '-n', 'host.hostname', 'meta.k', 'env'],
  ]) {
    const f = onPipe(args);
    const n = onPipe(args, true);
    assert.equal(f.path, args[0]);
    assert.equal(f.out, n.out);
    assert.ok(n.out.includes(`host.hostname=${HOSTNAME} meta.k=${META_K} env=${ENV_ALL}`), JSON.stringify(n.out));
  }
});

test("with a daemon serving the folder, jy-ctl leaves a terminal's ls and jls to the node paths, which escape; a pipe's it still answers", async () => {
  assert.ok(existsSync(join(ROOT, 'native/build/jy-ctl')), 'npm install builds native/');
  await startDaemon();
  try {
    for (const args of [
      ['jls', '-n', 'host.hostname', 'meta.k', 'env.k'],
      ['ls', '-a', '-n', 'host.hostname', 'meta.k', 'env.k'],
    ]) {
      const what = args.join(' ');
      const t = onTerminal(args);
      assert.equal(t.path, args[0], `${what}: not through the daemon on a terminal`);
      assert.doesNotMatch(t.out, RAW_CONTROL, `${what}: ${JSON.stringify(t.out)}`);
      assert.ok(
        t.out.includes(`host.hostname=${ESCAPED.hostname} meta.k=${ESCAPED.metaK} env.k=${ESCAPED.envK}`),
        t.out,
      );
      const p = onPipe(args);
      assert.equal(p.path, 'ctl', `${what}: a pipe's is the daemon's`);
      assert.ok(p.out.includes(`host.hostname=${HOSTNAME} meta.k=${META_K} env.k=${ENV_K}`), JSON.stringify(p.out));
    }
  } finally {
    await endDaemon();
  }
});

test('the text forms: each field escaped on one line, asking about the terminal only for a value that needs it', () => {
  assert.equal(printableValue('a\x1b[2Jb\r\n\t\b\u009b\x7fé'), 'a\\x1b[2Jb\\r\\n\\t\\x08\\u009b\\x7fé');
  const record = (hostname: string): JailRecord =>
    ({
      name: 'f4a',
      jid: 7,
      state: 'running',
      params: { 'host.hostname': hostname },
      meta: '',
      env: '',
    }) as unknown as JailRecord;
  let asked = 0;
  const terminal = () => {
    asked++;
    return true;
  };
  formatJls([record('plain.example')], { params: [], terminal });
  formatJls([record('plain.example')], { params: ['host.hostname'], nameval: true, terminal });
  assert.equal(asked, 0, 'plain values: stdout never asked about');
  assert.equal(
    formatJls([record('x\ny'), record('a\x1bb')], { params: ['host.hostname'], nameval: true, terminal }),
    'host.hostname=x\\ny\nhost.hostname=a\\x1bb\n',
  );
  assert.equal(asked, 1, 'asked once per listing');
  assert.equal(
    formatJls([record('a\x1bb')], { params: ['host.hostname'], nameval: true, terminal: () => false }),
    'host.hostname=a\x1bb\n',
  );
});

async function startDaemon(): Promise<void> {
  daemon = await spawnServe(state, [], env(false));
}

/** Ends the daemon this file started, by its pid, and waits until it is gone. */
async function endDaemon(): Promise<void> {
  const child = daemon;
  daemon = undefined;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.on('exit', resolve));
  process.kill(child.pid as number, 'SIGTERM');
  await gone;
}
