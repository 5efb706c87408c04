// The CLI as a user times it: whole processes of bin/jailyard.js run as a program (its sh
// line starts Node 24), each against a baseline measured in turn in the same run:
//   jailyard --version           vs node -e 0
//   jailyard ls (10 running jails) vs node -e 0
//   jls (10 running jails)         vs node -e 0 (bin/jls, FreeBSD's front)
//   jailyard exec J true          vs crun exec (busybox root) and nsenter -a into the jail
//   jailyard start J + stop J     vs crun run of `true` (create, start, wait, delete)
//   start + stop, ls and jls again with a daemon serving the state folder (`jailyard
//   serve`): the bins' sh lines run native/jy-ctl, which asks the daemon; no Node process (a
//   second state folder with its own 10 running jails, so the Node path above stays the
//   CLI's own)
// The jails are thin jails of a skeleton of the host's root, without addresses. start + stop
// also reports its floor: two bare Node start-ups (2 x node -e 0) against the same crun run.
// The bench builds dist/ first (scripts/build-dist.sh, as npm install does) and reports whether the bin
// ran it or the sources (an edit to src/ after the build makes it run src/).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../src/store/sqlite.ts';
import {
  busyboxRoot,
  childCpuMs,
  cpuMsOf,
  crunBaseline,
  percentile,
  reexecWithoutUnifiedCgroup,
  report,
  timeMs,
} from './lib.ts';

if (reexecWithoutUnifiedCgroup()) process.exit();

const N = Number(process.env.JAILYARD_BENCH_RUNS ?? 20);
const ROOT = join(import.meta.dirname, '..');
// JAILYARD_BENCH_BIN: another tree's bin (an older commit's, for a before/after)
const BIN = process.env.JAILYARD_BENCH_BIN ?? join(ROOT, 'bin/jailyard.js');
const JAILS = Array.from({ length: 10 }, (_, i) => `clib${i}`);
const CYCLED = 'clibs';

execFileSync('bash', [join(ROOT, 'scripts/build-dist.sh')], { stdio: 'inherit' });

const state = mkdtempSync(join(tmpdir(), 'jy-bench-cli-'));
// the daemon's own state folder: start + stop through it
const served = mkdtempSync(join(tmpdir(), 'jy-bench-clid-'));
const base = mkdtempSync(join(tmpdir(), 'jy-bench-crun-'));

/** Runs a command to its end; a failure fails the bench. */
function must(cmd: string, args: string[], detached = false): string {
  // a detached container keeps the stdio it was given: a pipe would never reach EOF
  const r = spawnSync(cmd, args, detached ? { stdio: 'ignore' } : { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return String(r.stdout ?? '');
}
const jy = (...args: string[]) => must(BIN, ['--state', state, ...args]);

const samples = {
  node: [] as number[],
  version: [] as number[],
  ls: [] as number[],
  lsDaemon: [] as number[],
  jls: [] as number[],
  jlsDaemon: [] as number[],
  exec: [] as number[],
  nsenter: [] as number[],
  crunExec: [] as number[],
  startStop: [] as number[],
  startStopDaemon: [] as number[],
  crunRun: [] as number[],
};
// CPU per kind, summed over the runs (the processes the bench waited for: the CLI and what it
// ran to its end, not the jails' own processes nor the resident jy-spawner)
const cpu = Object.fromEntries(Object.keys(samples).map((k) => [k, 0])) as Record<keyof typeof samples, number>;
let fromDist = false;
/** Without a daemon, `ls` ran the bin's fast path (src/cli/ls-fast.ts), not the whole CLI. */
let lsFastPath = false;
let daemon: ChildProcess | undefined;
// the daemon's own CPU over the daemon path's runs (it is not a process the bench waits for)
let daemonCpuMs = 0;
const daemonCpu = { ls: 0, jls: 0 };
const crun = crunBaseline(base, busyboxRoot(base));
try {
  jy('skel', 'create', 'host', '--from', '/');
  for (const name of [...JAILS, CYCLED]) jy('create', name, 'skeleton=host', 'persist', 'meta.app=clibench');
  jy('start', ...JAILS);
  must(BIN, ['--state', served, 'skel', 'create', 'host', '--from', '/']);
  must(BIN, ['--state', served, 'create', CYCLED, 'skeleton=host', 'persist', 'meta.app=clibench']);
  for (const name of JAILS)
    must(BIN, ['--state', served, 'create', name, 'skeleton=host', 'persist', 'meta.app=clibench']);
  must(BIN, ['--state', served, 'start', ...JAILS]);
  daemon = await serve(served);
  const JLS = join(BIN, '../jls');
  const jls = (dir: string) => {
    const r = spawnSync(JLS, [], { encoding: 'utf8', env: { ...process.env, JAILYARD_STATE: dir } });
    if (r.status !== 0) throw new Error(`jls (${dir}): exit ${r.status}: ${r.stderr}`);
    return r;
  };
  // the daemon's answers are the CLI's (the same bytes), and they come through it
  for (const [what, fast, node] of [
    [
      'ls',
      spawnSync(BIN, ['--state', served, 'ls'], {
        encoding: 'utf8',
        env: { ...process.env, JAILYARD_TRACE_FAST: '1' },
      }),
      spawnSync(BIN, ['--state', state, 'ls'], { encoding: 'utf8' }),
    ],
    [
      'jls',
      spawnSync(JLS, [], {
        encoding: 'utf8',
        env: { ...process.env, JAILYARD_STATE: served, JAILYARD_TRACE_FAST: '1' },
      }),
      jls(state),
    ],
  ] as const) {
    if (fast.status !== 0 || !fast.stderr.startsWith('jailyard: ctl: fast path\n'))
      throw new Error(`${what} did not go through the daemon: exit ${fast.status}: ${fast.stderr}`);
    // the same table but for the jids (two state folders)
    const shape = (t: string) =>
      t
        .replace(/^ +\d+ /gm, 'N ')
        .replaceAll(served, 'S')
        .replaceAll(state, 'S');
    if (shape(fast.stdout) !== shape(node.stdout)) throw new Error(`${what}: ${fast.stdout} != ${node.stdout}`);
  }
  const plain = spawnSync(BIN, ['--state', state, 'ls'], {
    encoding: 'utf8',
    env: { ...process.env, JAILYARD_TRACE_FAST: '1' },
  });
  lsFastPath = plain.status === 0 && plain.stderr.startsWith('jailyard: ls: fast path\n');
  const viaDaemon = (verb: string) => {
    const r = spawnSync(BIN, ['--state', served, verb, CYCLED], {
      encoding: 'utf8',
      env: { ...process.env, JAILYARD_TRACE_FAST: '1' },
    });
    if (r.status !== 0 || !r.stderr.startsWith('jailyard: ctl: fast path\n'))
      throw new Error(`${verb} ${CYCLED} did not go through the daemon: exit ${r.status}: ${r.stderr}`);
  };
  const jailPid = String(initPidOf(JAILS[0] as string));
  const trueBundle = crun.bundle(['/bin/true']);
  must('crun', crun.argv('run', '-d', '--bundle', crun.bundle(['/bin/sleep', '1000000']), 'jyc-exec'), true);
  const newer = spawnSync('find', ['src', 'tsconfig.json', 'tsconfig.build.json', '-newer', 'dist/.built'], {
    cwd: join(BIN, '../..'),
    encoding: 'utf8',
  });
  fromDist = newer.status === 0 && !newer.stdout.trim();

  /** Times `fn` into samples[key] (wall) and cpu[key] (its processes' CPU, summed). */
  const sample = async (key: keyof typeof samples, fn: () => unknown) => {
    const c0 = childCpuMs();
    samples[key].push(await timeMs(fn));
    cpu[key] += childCpuMs() - c0;
  };
  for (let i = 0; i < N; i++) {
    await sample('node', () => must(process.execPath, ['-e', '0']));
    await sample('version', () => must(BIN, ['--version']));
    await sample('ls', () => must(BIN, ['--state', state, 'ls']));
    let d = cpuMsOf(daemon.pid as number);
    await sample('lsDaemon', () => must(BIN, ['--state', served, 'ls']));
    daemonCpu.ls += cpuMsOf(daemon.pid as number) - d;
    await sample('jls', () => jls(state));
    d = cpuMsOf(daemon.pid as number);
    await sample('jlsDaemon', () => jls(served));
    daemonCpu.jls += cpuMsOf(daemon.pid as number) - d;
    await sample('exec', () => must(BIN, ['--state', state, 'exec', JAILS[0] as string, 'true']));
    await sample('crunExec', () => must('crun', crun.argv('exec', 'jyc-exec', '/bin/true')));
    await sample('nsenter', () => must('nsenter', ['-a', '-t', jailPid, 'true']));
    await sample('startStop', () => {
      jy('start', CYCLED);
      jy('stop', CYCLED);
    });
    const d0 = cpuMsOf(daemon.pid as number);
    await sample('startStopDaemon', () => {
      viaDaemon('start');
      viaDaemon('stop');
    });
    daemonCpuMs += cpuMsOf(daemon.pid as number) - d0;
    await sample('crunRun', () => must('crun', crun.argv('run', '--bundle', trueBundle, `jyc-run-${i}`)));
  }
} finally {
  crun.cleanup();
  if (daemon?.pid && daemon.exitCode === null) {
    const gone = new Promise((resolve) => daemon?.on('exit', resolve));
    process.kill(daemon.pid, 'SIGTERM');
    await gone;
  }
  spawnSync(BIN, ['--state', served, 'remove', ...JAILS, CYCLED], { stdio: 'inherit' });
  rmSync(served, { recursive: true, force: true });
  spawnSync(BIN, ['--state', state, 'remove', ...JAILS, CYCLED], { stdio: 'inherit' });
  rmSync(state, { recursive: true, force: true });
  rmSync(base, { recursive: true, force: true });
}

/** `jailyard --state DIR serve`, once it says it serves. */
async function serve(dir: string): Promise<ChildProcess> {
  const child = spawn(BIN, ['--state', dir, 'serve'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('serving on')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${text}`)));
  });
  return child;
}

/** The jail's pid 1 as the host sees it (from the store's runtime facts). */
function initPidOf(name: string): number {
  const store = openStore(state);
  try {
    const pid = store.requireJail(name).runtime?.create?.initPid;
    if (!pid) throw new Error(`${name} has no init pid`);
    return pid;
  } finally {
    store.close();
  }
}

const p50 = (s: number[]) => percentile(s, 50);
/** Mean CPU ms per run of `key`, and its ratio to `base`'s: the figures that hold under load. */
const cpuOf = (key: keyof typeof samples, base: keyof typeof samples) => ({
  cpu_ms: cpu[key] / N,
  base_cpu_ms: cpu[base] / N,
  cpu_ratio: cpu[base] ? cpu[key] / cpu[base] : 0,
});
const runsFrom = fromDist ? 'dist' : 'src';
report({
  name: 'cli-version',
  ratioOf: 'jailyard --version p50 / node -e 0 p50',
  ratio: p50(samples.version) / p50(samples.node),
  target: '<= 1.3',
  metrics: {
    jailyard_p50_ms: p50(samples.version),
    node_e0_p50_ms: p50(samples.node),
    ...cpuOf('version', 'node'),
    runs_from: runsFrom,
  },
});
report({
  name: 'cli-ls',
  ratioOf: 'jailyard ls (10 running jails) p50 / node -e 0 p50',
  ratio: p50(samples.ls) / p50(samples.node),
  target: '<= 1.3',
  metrics: {
    jailyard_p50_ms: p50(samples.ls),
    node_e0_p50_ms: p50(samples.node),
    ...cpuOf('ls', 'node'),
    runs_from: runsFrom,
    fast_path: lsFastPath ? 'yes' : 'no',
  },
});
report({
  name: 'cli-ls-daemon',
  ratioOf: 'jailyard ls (10 running jails) through the daemon (jy-ctl) p50 / node -e 0 p50',
  ratio: p50(samples.lsDaemon) / p50(samples.node),
  target: '<= 1.3',
  metrics: {
    jailyard_p50_ms: p50(samples.lsDaemon),
    node_e0_p50_ms: p50(samples.node),
    node_path_p50_ms: p50(samples.ls),
    ...cpuOf('lsDaemon', 'node'),
    daemon_cpu_ms: daemonCpu.ls / N,
    runs_from: runsFrom,
  },
});
report({
  name: 'cli-jls',
  ratioOf: 'jls (10 running jails) p50 / node -e 0 p50',
  ratio: p50(samples.jls) / p50(samples.node),
  target: '<= 1.3',
  metrics: {
    jls_p50_ms: p50(samples.jls),
    node_e0_p50_ms: p50(samples.node),
    ...cpuOf('jls', 'node'),
    runs_from: runsFrom,
  },
});
report({
  name: 'cli-jls-daemon',
  ratioOf: 'jls (10 running jails) through the daemon (jy-ctl) p50 / node -e 0 p50',
  ratio: p50(samples.jlsDaemon) / p50(samples.node),
  target: '<= 1.3',
  metrics: {
    jls_p50_ms: p50(samples.jlsDaemon),
    node_e0_p50_ms: p50(samples.node),
    node_path_p50_ms: p50(samples.jls),
    ...cpuOf('jlsDaemon', 'node'),
    daemon_cpu_ms: daemonCpu.jls / N,
    runs_from: runsFrom,
  },
});
report({
  name: 'cli-exec',
  ratioOf: 'jailyard exec J true p50 / crun exec true p50',
  ratio: p50(samples.exec) / p50(samples.crunExec),
  target: '<= 3',
  metrics: {
    jailyard_p50_ms: p50(samples.exec),
    crun_exec_p50_ms: p50(samples.crunExec),
    nsenter_a_p50_ms: p50(samples.nsenter),
    node_e0_p50_ms: p50(samples.node),
    ...cpuOf('exec', 'crunExec'),
    runs_from: runsFrom,
  },
});
report({
  name: 'cli-start-stop',
  ratioOf: 'jailyard start J + stop J (two commands) p50 / crun run true p50',
  ratio: p50(samples.startStop) / p50(samples.crunRun),
  target: '<= 4',
  metrics: {
    jailyard_p50_ms: p50(samples.startStop),
    crun_run_p50_ms: p50(samples.crunRun),
    // the floor of any two Node commands: two bare Node start-ups against the same crun run
    two_node_e0_p50_ms: 2 * p50(samples.node),
    two_node_e0_vs_crun_run: (2 * p50(samples.node)) / p50(samples.crunRun),
    ...cpuOf('startStop', 'crunRun'),
    two_node_e0_cpu_ms: (2 * cpu.node) / N,
    runs_from: runsFrom,
  },
});
report({
  name: 'cli-start-stop-daemon',
  ratioOf: 'jailyard start J + stop J through the daemon (jy-ctl, two commands) p50 / crun run true p50',
  ratio: p50(samples.startStopDaemon) / p50(samples.crunRun),
  target: '<= 4',
  metrics: {
    jailyard_p50_ms: p50(samples.startStopDaemon),
    crun_run_p50_ms: p50(samples.crunRun),
    node_path_p50_ms: p50(samples.startStop),
    vs_node_path: p50(samples.startStopDaemon) / p50(samples.startStop),
    // the commands' CPU (jy-ctl) and the daemon's own over the same runs (its idle polls too)
    ...cpuOf('startStopDaemon', 'crunRun'),
    daemon_cpu_ms: daemonCpuMs / N,
    cpu_ratio_with_daemon: (cpu.startStopDaemon + daemonCpuMs) / cpu.crunRun,
    runs_from: runsFrom,
  },
});
