// Issue #11 item 2: `jailyard exec` must never hand the jail the operator's terminal. With
// the terminal as fd 0 and as its controlling terminal, a jailed root types commands into the
// operator's shell with ioctl(TIOCSTI), run as host root after exec returns. Now every
// entered program has a session of its own; an interactive caller gets a pty of the jail's
// own (jy-enter copies between the two), a non-interactive one pipes. Real ptys: python3's
// pty module plays the operator's terminal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binArgs, cliFor, runBin } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);
const JAIL = 'tty1';

/** The CLI as an operator's shell line would run it (bash: `read -t`). */
const cli = (...args: string[]) =>
  [process.execPath, ...binArgs(state, ...args)].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');

/**
 * The operator's terminal: runs `bash -c LINE` on a new pty of ROWSxCOLS and plays STEPS
 * (wait until the output so far matches `wait`, then write `send`, or resize the terminal);
 * returns everything the terminal showed and bash's exit status.
 */
const HARNESS = `
import json, os, pty, re, select, sys, time, fcntl, termios, struct
cfg = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp('bash', ['bash', '-c', cfg['line']])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', cfg['rows'], cfg['cols'], 0, 0))
out = b''
steps = cfg['steps']
deadline = time.time() + cfg['timeout']
while time.time() < deadline:
    if steps and re.search(steps[0]['wait'], out.decode('utf8', 'replace')):
        s = steps.pop(0)
        if 'resize' in s:
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', s['resize'][0], s['resize'][1], 0, 0))
        else:
            os.write(fd, s['send'].encode())
    r, _, _ = select.select([fd], [], [], 0.05)
    if r:
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        out += d
else:
    os.kill(pid, 9)
_, st = os.waitpid(pid, 0)
print(json.dumps({'out': out.decode('utf8', 'replace'), 'status': os.waitstatus_to_exitcode(st), 'left': len(steps)}))
`;

interface Step {
  wait: string;
  send?: string;
  resize?: [number, number];
}

function onTerminal(
  line: string,
  steps: Step[] = [],
  rows = 24,
  cols = 80,
): { out: string; status: number; left: number } {
  const r = spawnSync('python3', ['-c', HARNESS, JSON.stringify({ line, steps, rows, cols, timeout: 40 })], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { out: string; status: number; left: number };
}

/** Tries TIOCSTI on fds 0-2 with a command line, reports per fd; and whether /dev/tty opens. */
const TIOCSTI = [
  'import fcntl, os, termios',
  'for fd in (0, 1, 2):',
  '    try:',
  '        [fcntl.ioctl(fd, termios.TIOCSTI, bytes([c])) for c in b"touch /tmp/jy-tiocsti-pwned\\n"]',
  '        print("fd%d: typed" % fd)',
  '    except OSError as e:',
  '        print("fd%d: errno %d" % (fd, e.errno))',
  'try:',
  '    os.close(os.open("/dev/tty", os.O_RDWR)); print("devtty: yes")',
  'except OSError as e:',
  '    print("devtty: errno %d" % e.errno)',
].join('\n');

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-exectty-'));
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
  let r = await jy('create', JAIL, 'skeleton=host', 'persist', 'meta.test=exectty');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', JAIL);
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await jy('remove', '-l', 'test=exectty');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test("TIOCSTI from the jail types nothing into the operator's terminal (pty, -T, and the default)", {
  timeout: 120_000,
}, () => {
  for (const mode of [[], ['-T'], ['-t']]) {
    // what the operator's shell reads right after exec returns is what the jail typed
    const line = `${cli('exec', ...mode, JAIL, 'python3', '-c', TIOCSTI)}; echo "rc=$?"; read -t 2 typed; echo "typed:[$typed]"`;
    const t = onTerminal(line);
    const where = `exec ${mode.join(' ')}: ${t.out}`;
    assert.match(t.out, /rc=0/, where);
    assert.match(t.out, /typed:\[\]/, where);
    assert.doesNotMatch(t.out, /typed:\[.*touch/, where);
    if (mode[0] === '-T') {
      // no terminal at all: pipes, and no controlling terminal (ENXIO)
      assert.doesNotMatch(t.out, /fd\d: typed/, where);
      assert.match(t.out, /devtty: errno 6/, where);
    }
  }
  assert.throws(() => statSync('/tmp/jy-tiocsti-pwned'), 'the host ran what the jail typed');
});

test('an interactive exec gets a pty of its own: prompt, commands, window size, exit status, terminal restored', {
  timeout: 120_000,
}, () => {
  // markers computed by the jail's shell ($((40+2))) never match the echo of the input line
  const line = `saved=$(stty -g); ${cli('exec', JAIL, 'sh')}; echo "rc=$?"; [ "$(stty -g)" = "$saved" ] && echo restored`;
  const t = onTerminal(
    line,
    [
      { wait: '# $', send: 'echo hi-$((1+2)); tty; stty size; [ -t 0 ] && echo tty-$((40+2))\r' },
      { wait: 'tty-42', resize: [40, 120] },
      // the resize travels SIGWINCH -> the CLI -> the jail's pty: looked for up to 10 s
      {
        wait: 'tty-42',
        send: 'i=0; while [ "$(stty size)" != "$((20+20)) $((60+60))" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; stty size; echo size-$((50+5))\r',
      },
      { wait: 'size-55', send: 'exit 7\r' },
    ],
    33,
    101,
  );
  assert.equal(t.left, 0, `stuck: ${t.out}`);
  assert.match(t.out, /hi-3/);
  assert.match(t.out, /\/dev\/pts\/\d+/, "the program's terminal is a pty of the jail's devpts");
  assert.match(t.out, /33 101/, 'the window size was passed on');
  assert.match(t.out, /40 120/, 'a resize was passed on (SIGWINCH)');
  assert.match(t.out, /rc=7/);
  assert.match(t.out, /restored/, "the operator's terminal settings are back");
});

test('Ctrl-C reaches the jailed program once, with a pty and without', { timeout: 120_000 }, () => {
  for (const mode of [[], ['-T']]) {
    const line = `${cli('exec', ...mode, JAIL, 'sh', '-c', 'trap "echo got-INT; exit 4" INT; echo ready; while :; do sleep 0.1; done')}; echo "rc=$?"`;
    const t = onTerminal(line, [{ wait: 'ready', send: '\x03' }]);
    assert.match(t.out, /got-INT/, `${mode.join(' ')}: ${t.out}`);
    assert.match(t.out, /rc=4/, `${mode.join(' ')}: ${t.out}`);
  }
});

test('without a terminal: pipes, stdout and stderr apart, exit codes, stdin, signals passed on', {
  timeout: 120_000,
}, async () => {
  let r = runBin(state, ['exec', JAIL, 'sh', '-c', 'echo out; echo err >&2; exit 5']);
  assert.equal(r.code, 5);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  r = runBin(state, ['exec', JAIL, 'tr', 'a-z', 'A-Z'], { input: 'hello\n' });
  assert.equal(r.stdout, 'HELLO\n');
  r = runBin(state, ['exec', JAIL, 'sh', '-c', 'kill -KILL $$']);
  assert.equal(r.code, 128 + 9);

  // a host file as stdin arrives as a pipe: the jailed root cannot chmod it through the fd
  const file = join(state, 'host-input');
  writeFileSync(file, 'data\n', { mode: 0o600 });
  const fd = openSync(file, 'r');
  const script = 'chmod 4777 /proc/self/fd/0; cat; readlink /proc/self/fd/0';
  r = runBin(state, ['exec', JAIL, 'sh', '-c', script], { stdio: [fd, 'pipe', 'pipe'] });
  closeSync(fd);
  assert.match(r.stdout, /^data\npipe:/, r.stdout + r.stderr);
  assert.equal(statSync(file).mode & 0o7777, 0o600, "the host file's mode was changed from the jail");

  // SIGTERM to the CLI reaches the program
  const trap = 'trap "echo got-TERM; exit 3" TERM; echo ready; while :; do sleep 0.1; done';
  const child = spawn(process.execPath, binArgs(state, 'exec', JAIL, 'sh', '-c', trap), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let i = 0; i < 200 && !out.includes('ready'); i++) await new Promise((res) => setTimeout(res, 50));
  assert.match(out, /ready/);
  child.kill('SIGTERM');
  assert.equal(await exited, 3);
  assert.match(out, /got-TERM/);
});
