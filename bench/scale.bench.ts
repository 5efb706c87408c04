// Many jails, as a user makes them (whole CLI processes), beside crun and lxc in the same run:
// 1. N thin jails (default 100, JAILYARD_BENCH_N) created and started by one `jailyard apply
//    -p 8` (skeleton: the host's root, the default strategy, no addresses: other suites hold
//    addresses of the shared range meanwhile), then removed by one `jailyard remove -p 8`;
//    vs N `crun run -d` and N `lxc-start -d`, 8 at a time, of a busybox `sleep` (the
//    container's pid 1, like the persist holder of a jail). Beside the wall time: the apply
//    against the 1.5 s goal, and the CPU of everything it started (a cpuacct group), which
//    holds up better than the wall time on this shared machine.
// 2. The daemon idle with IDLE running jails (default 200, JAILYARD_BENCH_IDLE; the issue
//    asks for 1,000, too heavy for this shared 2-core machine): its RSS and CPU over 10 s,
//    and each jail's overhead (jy-stage, tini, the persist holder, jy-log: every process
//    jailyard runs for a jail) as PSS from /proc/PID/smaps_rollup.
// JAILYARD_BENCH_SKIP=peers|idle leaves a part out.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../src/store/sqlite.ts';
import {
  busyboxRoot,
  cpuMsOf,
  crunBaseline,
  lxcBaseline,
  pool,
  reexecWithoutUnifiedCgroup,
  report,
  runAsync,
  timeMs,
} from './lib.ts';

if (reexecWithoutUnifiedCgroup()) process.exit();

const N = Number(process.env.JAILYARD_BENCH_N ?? 100);
const IDLE = Number(process.env.JAILYARD_BENCH_IDLE ?? 200);
const PARALLEL = 8;
const SKIP = process.env.JAILYARD_BENCH_SKIP ?? '';
const BIN = join(import.meta.dirname, '../bin/jailyard.js');

const dir = mkdtempSync(join(tmpdir(), 'jy-bench-scale-'));
const state = join(dir, 'state');
const jy = (...args: string[]) => runAsync(process.execPath, [BIN, '--state', state, ...args]);

/** Runs a tool that leaves a detached container behind: no pipes (it would keep them open). */
function detached(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: 'ignore' });
    c.once('error', reject);
    c.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}`))));
  });
}

/** A jail.conf of `count` thin persistent jails named PREFIX0..; labelled bench=scale. */
function confOf(prefix: string, count: number): string {
  const file = join(dir, `${prefix}.conf`);
  const blocks = Array.from({ length: count }, (_, i) => `${prefix}${i} {}`);
  writeFileSync(file, ['skeleton = host;', 'persist;', 'meta = "bench=scale";', ...blocks, ''].join('\n'));
  return file;
}

const pssKiB = (pid: number): number => {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
};
const rssKiB = (pid: number): number => {
  try {
    return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
};
/** utime + stime of a process in clock ticks (100 per second). */
const cpuTicks = (pid: number): number => cpuMsOf(pid) / 10;

/** Every process on the host: pid → [ppid, comm, cmdline]. */
function processes(): Map<number, { ppid: number; comm: string; cmdline: string }> {
  const out = new Map<number, { ppid: number; comm: string; cmdline: string }>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${e}/cmdline`, 'utf8').replaceAll('\0', ' ');
      out.set(Number(e), { ppid, comm, cmdline });
    } catch {
      // gone
    }
  }
  return out;
}

/** The processes jailyard runs for the jails of `state`: each jail's holder and pid 1 with
 * their descendants, and the helpers whose command line names the jail's state folder. */
function jailProcesses(): Map<number, string> {
  const store = openStore(state);
  const roots = new Set<number>();
  try {
    for (const j of store.listJails()) {
      const c = j.runtime?.create;
      if (c?.holderPid) roots.add(c.holderPid);
      if (c?.initPid) roots.add(c.initPid);
    }
  } finally {
    store.close();
  }
  const procs = processes();
  const mine = new Map<number, string>();
  for (const [pid, p] of procs) {
    if (p.cmdline.includes(`${state}/jails/`)) mine.set(pid, p.comm);
    for (let q: number | undefined = pid; q && q > 1; q = procs.get(q)?.ppid) {
      if (roots.has(q)) {
        mine.set(pid, p.comm);
        break;
      }
    }
  }
  return mine;
}

/**
 * The CPU of everything a step starts, the jails' own processes included (jy-spawner and
 * what it runs, jy-stage, tini, the holder, jy-log: most of them outlive the CLI, so its
 * rusage misses them): this process moves into a cpuacct group of its own (cgroup v1, as on
 * this project's machine) for the step and back after it; what it started stays there.
 * read() gives the group's CPU so far (ms); close() removes the group once its processes are
 * gone. Undefined where there is no cpuacct hierarchy.
 */
function cpuGroup(): { enter: () => void; leave: () => void; read: () => number; close: () => void } | undefined {
  const base = '/sys/fs/cgroup/cpuacct';
  let own: string | undefined;
  try {
    own = /^\d+:[^:]*\bcpuacct\b[^:]*:(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
  if (own === undefined || !existsSync(`${base}${own}/cgroup.procs`)) return undefined;
  const dir = `${base}${own}/jy-bench-scale-${process.pid}`;
  mkdirSync(dir);
  return {
    enter: () => writeFileSync(`${dir}/cgroup.procs`, String(process.pid)),
    leave: () => writeFileSync(`${base}${own}/cgroup.procs`, String(process.pid)),
    read: () => Number(readFileSync(`${dir}/cpuacct.usage`, 'utf8')) / 1e6,
    close: () => {
      try {
        rmdirSync(dir);
      } catch (e) {
        console.error(`[bench scale] ${dir} kept: ${(e as Error).message}`);
      }
    },
  };
}

let group: ReturnType<typeof cpuGroup>;
try {
  const skel = await timeMs(() => jy('skel', 'create', 'host', '--from', '/'));
  console.log(`[bench scale] skeleton of the host root in ${skel.toFixed(0)} ms`);

  // 1. N jails from the CLI vs crun and lxc
  const conf = confOf('sc', N);
  const loadBefore = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  // the bin runs dist/ (the bundle) only while nothing under src/ is newer than its build
  const newer = spawnSync('find', ['src', 'tsconfig.json', 'tsconfig.build.json', '-newer', 'dist/.built'], {
    cwd: join(import.meta.dirname, '..'),
    encoding: 'utf8',
  });
  const runsFrom = newer.status === 0 && !newer.stdout.trim() ? 'dist' : 'src';
  group = cpuGroup();
  group?.enter();
  let startN: number;
  try {
    startN = await timeMs(() => jy('apply', '-f', conf, '-p', String(PARALLEL)));
  } finally {
    group?.leave();
  }
  const applyCpu = group?.read();
  const removeN = await timeMs(() => jy('remove', '-l', 'bench=scale', '-p', String(PARALLEL)));
  group?.close();
  group = undefined;
  const metrics: Record<string, number | string> = {
    jails: N,
    parallel: PARALLEL,
    jailyard_apply_start_ms: startN,
    // the goal of issue #14: 100 jails in 1.5 s (N jails: scaled)
    apply_vs_goal: startN / ((1500 * N) / 100),
    ...(applyCpu !== undefined ? { jailyard_apply_cpu_ms: applyCpu, apply_cpu_ms_per_jail: applyCpu / N } : {}),
    // the floor of this machine: two cores busy for the whole apply
    ...(applyCpu !== undefined ? { apply_cpu_over_2_cores_ms: applyCpu / 2 } : {}),
    load_before: loadBefore,
    runs_from: runsFrom,
    jailyard_remove_ms: removeN,
  };
  let ratio = metrics.apply_vs_goal as number;
  let ratioOf = `jailyard apply -p ${PARALLEL} of ${N} jails / ${(15 * N).toFixed(0)} ms (1.5 s per 100 jails)`;
  if (!SKIP.includes('peers')) {
    const rootfs = busyboxRoot(dir);
    const crun = crunBaseline(dir, rootfs);
    const lxc = lxcBaseline(dir, rootfs);
    const bundle = crun.bundle(['/bin/sleep', '1000000']);
    const ids = Array.from({ length: N }, (_, i) => `jyscale${i}`);
    try {
      metrics.crun_run_d_ms = await timeMs(() =>
        pool(ids, PARALLEL, (id) => detached('crun', crun.argv('run', '-d', '--bundle', bundle, id))),
      );
      metrics.crun_delete_ms = await timeMs(() =>
        pool(ids, PARALLEL, (id) => runAsync('crun', crun.argv('delete', '-f', id)).then(() => {})),
      );
      metrics.lxc_start_d_ms = await timeMs(() =>
        pool(ids, PARALLEL, (id) => detached('lxc-start', lxc.argv(id, '-f', lxc.config, '-d'))),
      );
      metrics.lxc_stop_k_ms = await timeMs(() =>
        pool(ids, PARALLEL, (id) => runAsync('lxc-stop', lxc.argv(id, '-k')).then(() => {})),
      );
    } finally {
      crun.cleanup();
      lxc.cleanup();
    }
    ratio = startN / (metrics.crun_run_d_ms as number);
    ratioOf = `jailyard apply -p ${PARALLEL} of ${N} jails / ${N} crun run -d, ${PARALLEL} at a time`;
    metrics.jailyard_over_lxc_start = startN / (metrics.lxc_start_d_ms as number);
  }
  report({ name: 'scale-start', ratioOf, ratio, target: `jailyard <= 1500 ms for 100 jails`, metrics });

  // 2. the daemon idle with IDLE running jails
  if (!SKIP.includes('idle')) {
    let daemon: ChildProcess | undefined;
    try {
      daemon = spawn(process.execPath, [BIN, '--state', state, 'serve', '--socket', join(dir, 'jy.sock')], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      const pid = daemon.pid!;
      await new Promise((r) => setTimeout(r, 2000));
      const rssEmpty = rssKiB(pid);
      const startIdle = await timeMs(() => jy('apply', '-f', confOf('idle', IDLE), '-p', String(PARALLEL)));
      // let the daemon see every change (it polls the store) and settle
      await new Promise((r) => setTimeout(r, 3000));
      const jails = jailProcesses();
      const window = 10_000;
      const ticks0 = cpuTicks(pid);
      const jailTicks0 = [...jails.keys()].reduce((a, p) => a + cpuTicks(p), 0);
      await new Promise((r) => setTimeout(r, window));
      const daemonCpu = (cpuTicks(pid) - ticks0) / 100 / (window / 1000);
      const jailCpu = ([...jails.keys()].reduce((a, p) => a + cpuTicks(p), 0) - jailTicks0) / 100 / (window / 1000);
      const byKind = new Map<string, { n: number; pss: number }>();
      let pss = 0;
      for (const [p, comm] of jails) {
        const k = byKind.get(comm) ?? { n: 0, pss: 0 };
        const v = pssKiB(p);
        k.n++;
        k.pss += v;
        pss += v;
        byKind.set(comm, k);
      }
      const perJail = pss / IDLE;
      const idleMetrics: Record<string, number | string> = {
        running_jails: IDLE,
        apply_start_ms: startIdle,
        daemon_rss_empty_mib: rssEmpty / 1024,
        daemon_rss_mib: rssKiB(pid) / 1024,
        daemon_rss_per_jail_kib: (rssKiB(pid) - rssEmpty) / IDLE,
        daemon_pss_mib: pssKiB(pid) / 1024,
        daemon_cpu_percent: daemonCpu * 100,
        jail_processes: jails.size,
        jail_processes_cpu_percent: jailCpu * 100,
        per_jail_pss_kib: perJail,
      };
      for (const [comm, k] of byKind) idleMetrics[`pss_kib_per_${comm.replaceAll(/[^\w]/g, '_')}`] = k.pss / k.n;
      report({
        name: 'scale-idle',
        ratioOf: 'per-jail process PSS / 1 MiB',
        ratio: perJail / 1024,
        target: '<= 1 (per-jail overhead <= 1 MiB PSS)',
        metrics: idleMetrics,
      });
    } finally {
      await jy('remove', '-l', 'bench=scale', '-p', String(PARALLEL)).catch((e) => console.error(e));
      if (daemon && daemon.exitCode === null) {
        const exited = new Promise((r) => daemon!.once('exit', r));
        daemon.kill('SIGTERM');
        await exited;
      }
    }
  }
} finally {
  // a failed apply: its jails are gone once removed (jy-bench-scale jails are the bench's own)
  if (group) {
    await jy('remove', '-l', 'bench=scale', '-p', String(PARALLEL)).catch((e) => console.error(e));
    group.close();
  }
  rmSync(dir, { recursive: true, force: true });
}
