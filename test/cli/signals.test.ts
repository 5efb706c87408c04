// Signals at any moment of `apply`, `start -p` and `rollout`, with stdout and stderr (a) a
// closed pipe, (b) a full pipe nobody reads, (c) a terminal (a real pty), and (d) a terminal
// stopped by Ctrl-S (Node writes a terminal synchronously: the first write would block the
// event loop and with it the signal handlers). The moments are
// found by marker files the jails' host hooks touch: early (the first jail's exec.prepare),
// mid (the second jail created, the first running; for rollout: the new jail running while
// its health is awaited) and during the clean-up (a second, third and fourth signal while
// the undo runs exec.poststop). Every run must end with 128 + the first signal's number,
// every jail it started stopped (a rollout saved as `interrupted` naming --resume/--abort),
// and nothing of the state folder left. CI runs 10 cases (each verb at each moment, each
// of (a)-(c) at each moment, and (d) once); JAILYARD_SOAK=1 runs all 36 with each signal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { spawn, execFileSync } from 'node:child_process';
import { constants as os, tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { cliFor } from '../helpers/cli.ts';

const BIN = join(import.meta.dirname, '../../bin/jailyard.js');
const SOAK = process.env.JAILYARD_SOAK === '1';

let state: string;
let marks: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);

type Kind = 'closed' | 'full' | 'tty' | 'stalled';
type Moment = 'early' | 'mid' | 'cleanup';
type Verb = 'apply' | 'start' | 'rollout';

/** Host hooks that mark the moments; the sleeps hold each moment open for a signal. */
const hooks = (tag: string) =>
  `exec.prepare = "touch ${marks}/${tag}.prepare; sleep 0.2"; ` +
  `exec.created = "touch ${marks}/${tag}.created; sleep 0.2"; ` +
  `exec.poststart = "touch ${marks}/${tag}.poststart"; ` +
  `exec.poststop = "touch ${marks}/${tag}.poststop; sleep 0.3";`;

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-signals-'));
  marks = join(state, 'marks');
  mkdirSync(marks);
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
  writeFileSync(
    join(state, 'pair.conf'),
    `s1 { skeleton = host; persist; ip4.addr = 198.51.100.141/24; ${hooks('s1')} }\n` +
      `s2 { skeleton = host; persist; ip4.addr = 198.51.100.142/24; ${hooks('s2')} }\n`,
  );
  // the rollout's new jail: its address is the first one free among the store's jails, so a
  // never-started jail holds .2-.140 and .143 is where it lands (this file's range is .140-.149)
  writeFileSync(join(state, 'www.conf'), `r { skeleton = host; persist; ${hooks('r')} }\n`);
  const held = Array.from({ length: 139 }, (_, i) => `198.51.100.${i + 2}/24`).join(',');
  assert.equal((await jy('create', 'hold', 'skeleton=host', `ip4.addr=${held}`)).code, 0);
  const r = await jy('apply', '--no-start', '-f', join(state, 'pair.conf'));
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await jy('remove', 's1', 's2', 'hold');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

/** The pty harness: the CLI on a new terminal; reports its pid, copies what it shows, and
 * ends with its exit status as a shell reports it. */
const PTY = `
import os, pty, sys, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
if os.environ.get('STALL') == '1':
    os.write(fd, b'\x13')  # Ctrl-S: the terminal stops taking output
sys.stderr.write('PID %d\\n' % pid); sys.stderr.flush()
while True:
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        sys.stdout.buffer.write(d); sys.stdout.flush()
    else:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            sys.stderr.write('STATUS %d\\n' % os.waitstatus_to_exitcode(st)); sys.exit(0)
_, st = os.waitpid(pid, 0)
sys.stderr.write('STATUS %d\\n' % os.waitstatus_to_exitcode(st))
`;

interface Run {
  pid: Promise<number>;
  /** The exit status as a shell reports it (128 + N when killed by signal N). */
  status: Promise<number>;
  /** What the terminal showed (tty only). */
  shown(): string;
  /** SIGKILLs the CLI if it still runs (a failed case must leave no process behind). */
  kill(): void;
}

function launch(kind: Kind, args: string[]): Run {
  const argv = [BIN, '--state', state, ...args];
  if (kind === 'tty' || kind === 'stalled') {
    const child = spawn('python3', ['-c', PTY, process.execPath, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, STALL: kind === 'stalled' ? '1' : '0' },
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    let gotPid!: (n: number) => void;
    const pid = new Promise<number>((r) => (gotPid = r));
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /PID (\d+)/.exec(err);
      if (m) gotPid(Number(m[1]));
    });
    const status = new Promise<number>((resolve, reject) =>
      child.once('exit', () => {
        const m = /STATUS (-?\d+)/.exec(err);
        if (!m) reject(new Error(`the pty harness ended without a status: ${err}`));
        else resolve(Number(m[1]) < 0 ? 128 - Number(m[1]) : Number(m[1]));
      }),
    );
    let exited = false;
    void status.finally(() => (exited = true)).catch(() => {});
    return {
      pid,
      status,
      shown: () => out,
      kill: () => {
        if (exited) return;
        void pid.then((p) => {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            // gone
          }
        });
      },
    };
  }
  let fds: number[] = [];
  let stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
  if (kind === 'full') {
    // a pipe whose buffer is full before the CLI writes anything, and whose reader never reads
    const fifo = join(state, `fifo-${Date.now()}`);
    execFileSync('mkfifo', [fifo]);
    const rd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const wr = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    const chunk = Buffer.alloc(4096, 'x');
    for (;;) {
      try {
        writeSync(wr, chunk);
      } catch {
        break; // EAGAIN: full
      }
    }
    fds = [rd, wr];
    stdio = ['ignore', wr, wr];
    rmSync(fifo);
  }
  const child = spawn(process.execPath, argv, { stdio });
  if (kind === 'closed') {
    // the reader goes away, as `tee` does when the terminal's Ctrl-C reaches it too
    child.stdout!.destroy();
    child.stderr!.destroy();
  }
  const status = new Promise<number>((resolve) =>
    child.once('exit', (code, sig) => {
      for (const fd of fds) closeSync(fd);
      resolve(code ?? 128 + os.signals[sig!]);
    }),
  );
  return {
    pid: Promise.resolve(child.pid!),
    status,
    shown: () => '',
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

async function waitFor(file: string, ms = 45_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!existsSync(join(marks, file))) {
    if (Date.now() > deadline) throw new Error(`${file} never appeared`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function stateOf(): Promise<Record<string, string>> {
  const r = await jy('ls', '-a', '--json', 'name', 'state');
  const list = (JSON.parse(r.stdout) as { 'jail-information': { jail: { name: string; state: string }[] } })[
    'jail-information'
  ].jail;
  return Object.fromEntries(list.map((j) => [j.name, j.state]));
}

const SIGNAL_OF: Record<Moment, NodeJS.Signals> = { early: 'SIGTERM', mid: 'SIGINT', cleanup: 'SIGHUP' };

async function interrupt(verb: Verb, kind: Kind, moment: Moment, sig: NodeJS.Signals): Promise<void> {
  for (const f of ['s1', 's2', 'r'].flatMap((t) =>
    ['prepare', 'created', 'poststart', 'poststop'].map((s) => `${t}.${s}`),
  ))
    rmSync(join(marks, f), { force: true });
  const args =
    verb === 'apply'
      ? ['apply', '-f', join(state, 'pair.conf')]
      : verb === 'start'
        ? ['start', '-p', '2', 's1', 's2']
        : [
            'rollout',
            '-l',
            'app=sig',
            '--from',
            'version=v1',
            '--to',
            'version=v2',
            '--replicas',
            '1',
            '--template',
            join(state, 'www.conf'),
            '--health-timeout',
            '30',
          ];
  const run = launch(kind, args);
  try {
    await interruptRun(run, verb, kind, moment, sig);
  } finally {
    run.kill();
  }
  assertNoLeaks(baseline, state);
}

async function interruptRun(run: Run, verb: Verb, kind: Kind, moment: Moment, sig: NodeJS.Signals): Promise<void> {
  const pid = await run.pid;
  const first = verb === 'rollout' ? 'r' : 's1';
  const second = verb === 'rollout' ? 'r' : 's2';
  if (moment === 'early') await waitFor(`${first}.prepare`);
  else if (moment === 'mid') await waitFor(verb === 'rollout' ? 'r.poststart' : `${second}.created`);
  else await waitFor(`${second}.created`);
  process.kill(pid, sig);
  if (moment === 'cleanup') {
    // the clean-up is under way (exec.poststop of the jail being rolled back): more signals
    await waitFor(`${second}.poststop`);
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.kill(pid, s);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const status = await run.status;
  const expected = 128 + os.signals[sig];
  assert.equal(status, expected, `exit status of ${verb} (${kind}, ${moment}): ${run.shown()}`);
  const jails = await stateOf();
  if (verb === 'rollout') {
    const saved = JSON.parse(readFileSync(join(state, 'rollouts', 'app_sig.json'), 'utf8')) as {
      phase: string;
      error: string;
      created: string[];
    };
    assert.equal(saved.phase, 'interrupted');
    assert.match(saved.error, /--resume.*--abort/);
    if (kind === 'tty') assert.match(run.shown(), /--resume/, 'the terminal shows the command that carries on');
    // a new jail that was being started is rolled back; one that ran stays for --resume
    assert.equal(jails['r-v2-1'], moment === 'mid' ? 'running' : 'stopped');
    const abort = await jy('rollout', '-l', 'app=sig', '--abort');
    assert.equal(abort.code, 0, abort.stderr);
    rmSync(join(state, 'rollouts'), { recursive: true, force: true });
  } else {
    if (kind === 'tty') assert.match(run.shown(), new RegExp(`${sig}: stopping the ${verb}`));
    assert.equal(jails.s1, 'stopped', `s1 after ${verb} (${kind}, ${moment})`);
    assert.equal(jails.s2, 'stopped', `s2 after ${verb} (${kind}, ${moment})`);
  }
  assert.deepEqual(Object.keys(await stateOf()).sort(), ['hold', 's1', 's2']);
}

const VERBS: Verb[] = ['apply', 'start', 'rollout'];
const KINDS: Kind[] = ['closed', 'full', 'tty', 'stalled'];
const MOMENTS: Moment[] = ['early', 'mid', 'cleanup'];

for (const [v, verb] of VERBS.entries()) {
  for (const [k, kind] of KINDS.entries()) {
    // CI: a Latin square (every verb at every moment, every stdout kind at every moment), and
    // the stopped terminal once
    const moments = SOAK
      ? MOMENTS
      : kind === 'stalled'
        ? verb === 'start'
          ? ['mid' as const]
          : []
        : [MOMENTS[(v + k) % 3]!];
    for (const moment of moments) {
      const signals = SOAK ? (['SIGINT', 'SIGTERM', 'SIGHUP'] as const) : [SIGNAL_OF[moment]];
      for (const sig of signals) {
        test(`${verb}: ${sig} ${moment}, stdout ${kind}: stopped, exit ${128 + os.signals[sig]}, nothing left`, {
          timeout: 60_000,
        }, async () => {
          await interrupt(verb, kind, moment, sig);
        });
      }
    }
  }
}
