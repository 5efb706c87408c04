// Shared by every benchmark: time things, print a ratio against a baseline measured in the
// same run, write the JSON result under bench/results/.
import { execFile, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

export function percentile(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

export async function timeMs(fn: () => unknown | Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/**
 * CPU time (user + system, ms) of the child processes this process has waited for so far:
 * /proc/self/stat's cutime + cstime, in clock ticks (100 per second on Linux). On a shared,
 * loaded machine a process's CPU time moves far less than its wall time; the tick makes one
 * reading coarse (10 ms), so compare sums over many runs.
 */
export function childCpuMs(): number {
  const f = statFields('self');
  return (Number(f[13]) + Number(f[14])) * 10;
}

/** A process's own CPU so far (utime + stime of /proc/PID/stat), ms; 0 once it is gone. */
export function cpuMsOf(pid: number): number {
  try {
    const f = statFields(String(pid));
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}

/** /proc/PID/stat's fields after the command name (which may hold spaces), from field 3
 * (state) on. */
function statFields(pid: string): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

export interface BenchReport {
  name: string;
  /** What the ratio compares, e.g. "jailyard start / bwrap start". */
  ratioOf: string;
  ratio: number;
  target?: string;
  metrics: Record<string, number | string>;
}

export function report(r: BenchReport): void {
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const out = { ...r, at: new Date().toISOString(), node: process.version };
  writeFileSync(new URL(`./results/${r.name}.json`, import.meta.url), `${JSON.stringify(out, null, 2)}\n`);
  const m = Object.entries(r.metrics)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(3) : v}`)
    .join(' ');
  console.log(
    `[bench ${r.name}] ratio ${r.ratioOf} = ${r.ratio.toFixed(3)}${r.target ? ` (target ${r.target})` : ''}  ${m}`,
  );
}

// ---- baselines: crun and lxc in a root the bench builds itself (no image pulls) ----

/**
 * crun refuses a hybrid cgroup host (cgroup v1 controllers with a cgroup2 "unified" mount
 * that holds a controller). Re-runs this bench in a mount namespace of its own (propagation
 * slave: the host sees nothing of it) without that mount, so crun uses the v1 hierarchies
 * as jailyard does; everything the bench measures runs in it, jailyard included. Returns
 * true in the parent, which should exit with process.exitCode set.
 */
export function reexecWithoutUnifiedCgroup(): boolean {
  if (process.env.JY_BENCH_NS === '1') return false;
  const hybrid = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === '/sys/fs/cgroup/unified' && l.includes(' - cgroup2 '));
  if (!hybrid) return false;
  const r = spawnSync(
    'unshare',
    [
      '-m',
      '--propagation',
      'slave',
      'sh',
      '-c',
      'umount /sys/fs/cgroup/unified && exec "$0" "$@"',
      process.execPath,
      ...process.execArgv,
      ...process.argv.slice(1),
    ],
    { stdio: 'inherit', env: { ...process.env, JY_BENCH_NS: '1' } },
  );
  process.exitCode = r.status ?? 1;
  return true;
}

/** A root with busybox-static as sh, true and sleep: what the crun and lxc baselines run. */
export function busyboxRoot(dir: string): string {
  const root = join(dir, 'rootfs');
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'etc', 'root']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  for (const c of ['sh', 'true', 'sleep']) symlinkSync('busybox', join(root, 'bin', c));
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
  return root;
}

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** crun with its state in the bench's own folder; `bundle(args)` writes an OCI bundle (crun
 * spec's defaults: pid, net, ipc, uts and mount namespaces, /proc, /dev, /sys, the default
 * capabilities and masked paths) running `args` in `rootfs`, read-only. */
export function crunBaseline(dir: string, rootfs: string) {
  const state = join(dir, 'crun-state');
  mkdirSync(state, { recursive: true });
  let n = 0;
  return {
    bundle(args: string[]): string {
      const b = join(dir, `bundle${n++}`);
      mkdirSync(b);
      run('crun', ['spec'], { cwd: b });
      const c = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
      c.root = { path: rootfs, readonly: true };
      c.process.terminal = false;
      c.process.args = args;
      c.hostname = 'bench';
      writeFileSync(join(b, 'config.json'), JSON.stringify(c));
      return b;
    },
    /** argv of `crun VERB ...` with the bench's state folder. */
    argv: (...rest: string[]): string[] => ['--root', state, ...rest],
    /** Deletes every container left in the bench's state folder. */
    cleanup(): void {
      const list = JSON.parse(run('crun', ['--root', state, 'list', '-f', 'json']) || '[]') as { id: string }[];
      for (const { id } of list) spawnSync('crun', ['--root', state, 'delete', '-f', id]);
    },
  };
}

/** lxc with its containers in the bench's folder, no network (lxc.net.0.type = empty), a
 * config of the bench's own: autodev /dev, proc and sys mounted, pid 1 `init`. */
export function lxcBaseline(dir: string, rootfs: string, init: string[] = ['/bin/sleep', '1000000']) {
  const path = join(dir, 'lxc');
  mkdirSync(path, { recursive: true });
  const config = join(dir, 'lxc.conf');
  writeFileSync(
    config,
    [
      'lxc.uts.name = bench',
      `lxc.rootfs.path = dir:${rootfs}`,
      'lxc.net.0.type = empty',
      'lxc.mount.auto = proc:mixed sys:ro',
      'lxc.autodev = 1',
      'lxc.apparmor.profile = unconfined',
      `lxc.init.cmd = ${init.join(' ')}`,
      'lxc.log.level = ERROR',
      '',
    ].join('\n'),
  );
  // lxc-start -f makes no folder per container: the names used are the list to stop
  const names = new Set<string>();
  return {
    /** argv of an lxc-* tool for container `name` (after the tool's name). */
    argv: (name: string, ...rest: string[]): string[] => {
      names.add(name);
      return ['-P', path, '-n', name, ...rest];
    },
    config,
    /** Stops every container still running; the pivot cgroups lxc leaves are removed. */
    cleanup(): void {
      for (const name of names) spawnSync('lxc-stop', ['-P', path, '-n', name, '-k'], { stdio: 'ignore' });
      for (const c of readdirSync('/sys/fs/cgroup')) {
        try {
          rmdirSync(join('/sys/fs/cgroup', c, 'lxc.pivot'));
        } catch {
          // not there, or not empty (another lxc user)
        }
      }
    },
  };
}

/** Runs `fn` over `items`, at most `parallel` at a time. */
export async function pool<T>(items: T[], parallel: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** A process run to its end, as a promise (exit code 0 or an error with its stderr). */
export function runAsync(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', ...(env ? { env } : {}) }, (e, out, err) =>
      e ? reject(new Error(`${cmd} ${args.join(' ')}: ${e.message} ${err}`)) : resolve(out),
    );
  });
}
