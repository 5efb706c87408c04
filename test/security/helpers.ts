// Shared helpers for the security tests (issue 11): a state folder with a host-root
// skeleton, jails of any strategy created and started through the CLI, exec in them through
// the real binary (a separate process: its output is the jail's own), and the leak check.
//
//   const h = await SecurityHost.open('escape');          // state folder + skeleton "host" from /
//   await h.jail('esc1', { strategy: 'overlay', params: ['ip4.addr=198.51.100.220/24'] });
//   const r = await h.sh('esc1', 'cat /proc/sys/kernel/core_pattern');   // { code, stdout, stderr }
//   await h.close();                                      // remove every jail, assertNoLeaks, rm
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { binArgs, cliFor, spawnServe, type CliResult } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { stateTag } from '../../src/platform/linux/paths.ts';
import { PARAMS } from '../../src/conf/params.ts';
import { STRATEGIES } from '../../src/skeleton/planner.ts';
import type { Strategy } from '../../src/skeleton/plan.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { createLocalService } from '../../src/runtime/service.ts';
import { loadDriver } from '../../src/platform/index.ts';
import type { Driver } from '../../src/platform/driver.ts';
import type { Store } from '../../src/store/types.ts';
import { startDaemon, type Daemon } from '../../src/api/daemon.ts';
import { guestDir } from '../../src/layout.ts';
import { rootsFrom, type ToolFront, type ToolLimits } from '../../src/api/guest-tools.ts';
import { runJail, runJls, runSysctl } from '../../src/cli/freebsd/index.ts';

export { STRATEGIES, type Strategy, type CliResult };

/** The label every jail made through these helpers carries (close() removes by it). */
export const TEST_LABEL = 'meta.sectest=1';

/** Makes a state folder for one test file: /tmp/jy-<area>-XXXXXX. */
export function makeState(area: string): string {
  return mkdtempSync(join(tmpdir(), `jy-${area}-`));
}

// ---------------------------------------------------------------------------------------
// User-namespace jails (issue 11, engineer G). The matrix runs every case once per mode.
// TODO(userns): when G's parameter lands, it is picked up here by name; JY_TEST_USERNS
// overrides it with explicit parameter words (e.g. JY_TEST_USERNS="security.userns=1"),
// JY_TEST_USERNS=0 turns the userns mode off.
// ---------------------------------------------------------------------------------------
export interface JailMode {
  /** 'root' (the jail's uid 0 is the host's) or 'userns' (mapped to an unprivileged range). */
  name: 'root' | 'userns';
  /** Parameter words every jail of this mode gets. */
  params: string[];
}

function usernsParams(): string[] | undefined {
  const env = process.env.JY_TEST_USERNS;
  if (env === '0') return undefined;
  if (env) return env.split(/\s+/).filter(Boolean);
  const name = [...PARAMS.keys()].find((p) => /(^|\.)(userns|user_ns|usernamespace|idmap)/i.test(p));
  if (!name) return undefined;
  return [PARAMS.get(name)!.type === 'bool' ? name : `${name}=new`];
}

/** The modes the matrix runs: always 'root'; 'userns' once a user-namespace parameter exists. */
export function jailModes(): JailMode[] {
  const u = usernsParams();
  return [{ name: 'root', params: [] }, ...(u ? [{ name: 'userns' as const, params: u }] : [])];
}

export interface ExecOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time in milliseconds. */
  ms: number;
}

export interface RunOptions {
  /** Written to the child's stdin (then closed); stdin is /dev/null otherwise. */
  input?: string;
  /** Kill the child after this many ms (default 60 s). */
  timeoutMs?: number;
  /** Extra environment for the jailyard process (not the jail: exec gives the jail a clean one). */
  env?: Record<string, string>;
  /** Descriptors 3.. of the jailyard process (e.g. an open host directory, to check none crosses). */
  extraStdio?: Array<'pipe' | 'ignore' | 'inherit' | number>;
  /** Open `path` read-only as descriptor `fd` of the jailyard process (bash does, as in `exec 200</`). */
  openFd?: { fd: number; path: string };
}

/** Runs `node bin/jailyard.js --state STATE ...args` as a separate process and collects its output. */
export function runJailyard(state: string, args: string[], opts: RunOptions = {}): Promise<ExecOutcome> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const argv = binArgs(state, ...args);
    const o = opts.openFd;
    if (o) assert.ok(Number.isInteger(o.fd) && o.fd > 2 && o.fd < 1024, 'openFd.fd: 3..1023');
    // the script is constant; the path and the command are its arguments
    const [cmd, cmdArgs] = o
      ? ['/bin/bash', ['-c', `exec ${o.fd}<"$1"; shift; exec "$@"`, 'bash', o.path, process.execPath, ...argv]]
      : [process.execPath, argv];
    const child = spawn(cmd, cmdArgs, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe', ...(opts.extraStdio ?? [])],
      env: { ...process.env, ...opts.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => void (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => void (stderr += d));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

export interface JailOptions {
  /** skeleton.strategy (default: the defaults file's). */
  strategy?: Strategy;
  /** More parameter words (ip4.addr=..., limits.procs=..., allow.raw_sockets, ...). */
  params?: string[];
  /** Skeleton name (default 'host'); null: none (a jail without a path). */
  skeleton?: string | null;
  /** Start it (default true). */
  start?: boolean;
  /** The user-namespace mode's parameters are added (see jailModes()). */
  mode?: JailMode;
}

/** One state folder with a skeleton, the jails made in it, and the leak baseline taken first. */
export class SecurityHost {
  readonly state: string;
  readonly baseline: SystemSnapshot;
  /** The in-process CLI (its own output captured; `exec` output is not: use exec()/sh()). */
  readonly jy: (...args: string[]) => Promise<CliResult>;
  readonly jails = new Set<string>();

  private constructor(state: string, baseline: SystemSnapshot) {
    this.state = state;
    this.baseline = baseline;
    this.jy = cliFor(() => this.state);
  }

  /** A state folder jy-<area>-XXXXXX and (unless skeleton: false) skeleton "host" from /. */
  static async open(area: string, opts: { skeleton?: boolean } = {}): Promise<SecurityHost> {
    const baseline = snapshot();
    const h = new SecurityHost(makeState(area), baseline);
    if (opts.skeleton !== false) await h.skeleton('host', '/');
    return h;
  }

  /** The tag of this state folder in netns/veth/cgroup names (jy-TAG-N, jyhTAGN). */
  get tag(): string {
    return stateTag(`${this.state}/jails/x`);
  }

  /** The host path of a jail's folder (STATE/jails/NAME). */
  jailDir(name: string): string {
    return join(this.state, 'jails', name);
  }

  async skeleton(name: string, from: string): Promise<void> {
    const r = await this.jy('skel', 'create', name, '--from', from);
    assert.equal(r.code, 0, `skel create ${name}: ${r.stderr}`);
  }

  /** Creates (and by default starts) a persistent jail; asserts both succeed. */
  async jail(name: string, opts: JailOptions = {}): Promise<void> {
    const words = [
      // null: no skeleton and no path (a jail without a path, on the implicit host-root)
      ...(opts.skeleton === null ? [] : [`skeleton=${opts.skeleton ?? 'host'}`]),
      ...(opts.strategy ? [`skeleton.strategy=${opts.strategy}`] : []),
      'persist',
      TEST_LABEL,
      ...(opts.mode?.params ?? []),
      ...(opts.params ?? []),
    ];
    let r = await this.jy('create', name, ...words);
    assert.equal(r.code, 0, `create ${name}: ${r.stderr}`);
    this.jails.add(name);
    if (opts.start === false) return;
    r = await this.jy('start', name);
    assert.equal(r.code, 0, `start ${name}: ${r.stderr}`);
  }

  private driver?: Driver;

  /**
   * Runs argv in the jail in-process, through the driver's runInJail (the path of `jailyard
   * exec`, jy-enter, without a node start per call: ~10x faster than execCli). Output piped.
   */
  async exec(jail: string, argv: string[], opts: { user?: string; timeoutMs?: number } = {}): Promise<ExecOutcome> {
    const t0 = Date.now();
    const store = openStore(this.state);
    try {
      const j = store.requireJail(jail);
      assert.ok(j.state === 'running' && j.runtime?.create, `${jail} is ${j.state}, not running`);
      this.driver ??= await loadDriver({ stateDir: this.state });
      const ctx = createLocalService({ store, stateDir: this.state, driver: this.driver }).contextOf(jail);
      const r = await this.driver.runInJail(ctx, j.runtime.create, argv, {
        stdio: 'pipe',
        timeoutMs: opts.timeoutMs ?? 60_000,
        ...(opts.user ? { user: opts.user } : {}),
      });
      return { code: r.code, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
    } finally {
      store.close();
    }
  }

  /** `/bin/sh -c SCRIPT` in the jail (in-process, see exec()). */
  sh(jail: string, script: string, opts: { user?: string; timeoutMs?: number } = {}): Promise<ExecOutcome> {
    return this.exec(jail, ['/bin/sh', '-c', script], opts);
  }

  /** `jailyard exec [-U user] JAIL argv...` through the real binary, a separate process
   * (what an operator runs: its descriptors, terminal and environment are the ones checked). */
  execCli(jail: string, argv: string[], opts: RunOptions & { user?: string } = {}): Promise<ExecOutcome> {
    return runJailyard(this.state, ['exec', ...(opts.user ? ['-U', opts.user] : []), jail, ...argv], opts);
  }

  /** `jailyard exec JAIL /bin/sh -c SCRIPT` through the real binary. */
  shCli(jail: string, script: string, opts: RunOptions & { user?: string } = {}): Promise<ExecOutcome> {
    return this.execCli(jail, ['/bin/sh', '-c', script], opts);
  }

  /** Any verb through the real binary (e.g. `ls --json`, `serve`-less verbs whose output matters). */
  cli(args: string[], opts: RunOptions = {}): Promise<ExecOutcome> {
    return runJailyard(this.state, args, opts);
  }

  /** The jail's runtime facts (host pid of its pid 1, cgroups) from the store. */
  facts(jail: string): { initPid: number; cgroups: string[] } {
    const store = openStore(this.state);
    try {
      const j = store.requireJail(jail);
      assert.ok(j.runtime?.create, `${jail} is ${j.state}, not running`);
      return { initPid: j.runtime.create.initPid, cgroups: j.runtime.create.cgroups };
    } finally {
      store.close();
    }
  }

  /**
   * `jailyard serve --socket STATE/jailyard.sock` as a child process (the daemon, with a
   * guest socket per running jail), ready when it says it serves. stop() ends it by its pid.
   */
  async serve(extra: string[] = []): Promise<{ pid: number; socket: string; stop: () => Promise<void> }> {
    const socket = join(this.state, 'jailyard.sock');
    const child = await spawnServe(this.state, ['--socket', socket, ...extra]);
    child.stderr!.resume();
    const stop = async (): Promise<void> => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(t);
    };
    return { pid: child.pid!, socket, stop };
  }

  /** Asserts the jail still runs programs (the attack did not break it). */
  async assertAlive(jail: string): Promise<void> {
    const r = await this.exec(jail, ['/bin/echo', 'alive']);
    assert.equal(r.stdout.trim(), 'alive', `${jail} no longer runs programs: code ${r.code} ${r.stderr}`);
  }

  /** Stops and removes the jails made here (all at once, then one by one whatever is left). */
  async removeAll(): Promise<void> {
    if (this.jails.size === 0) return;
    await this.jy('remove', '-l', TEST_LABEL.replace(/^meta\./, ''));
    for (const j of this.jails) await this.jy('remove', j);
    this.jails.clear();
  }

  /**
   * The end of a test file: remove every jail, run reconcile, check no mount, netns, veth,
   * cgroup or process of this state folder is left (failing the test if one is), and delete
   * the folder. If something is left, it is cleaned by force after the assertion is recorded
   * (processes of this state only, by pid), so one failing attack does not poison the machine.
   */
  async close(): Promise<void> {
    let leak: unknown;
    try {
      await this.removeAll();
      await this.jy('reconcile');
      assertNoLeaks(this.baseline, this.state);
    } catch (e) {
      leak = e;
      forceCleanup(this.state, this.tag);
    }
    if (!mountsUnder(this.state).length) rmSync(this.state, { recursive: true, force: true });
    if (leak) throw leak;
  }
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4]!.replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** Best effort, only what belongs to `state` (its path, its tag): processes, mounts, netns, cgroups. */
export function forceCleanup(state: string, tag: string): void {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(state)) process.kill(Number(d), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const m of mountsUnder(state).reverse()) {
    try {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    } catch {
      /* already gone with its parent */
    }
  }
  let ns: string[] = [];
  try {
    ns = readdirSync('/run/netns').filter((n) => n.startsWith(`jy-${tag}-`));
  } catch {
    /* no netns dir */
  }
  for (const n of ns) {
    try {
      execFileSync('ip', ['netns', 'delete', n], { stdio: 'ignore' });
    } catch {
      /* gone */
    }
  }
  for (const base of ['/sys/fs/cgroup/memory', '/sys/fs/cgroup/pids', '/sys/fs/cgroup/cpu', '/sys/fs/cgroup/unified']) {
    const walk = (dir: string): void => {
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) if (e.isDirectory()) walk(join(dir, e.name));
      if (dir.includes(`jy-${tag}-`) && existsSync(dir)) {
        try {
          rmdirSync(dir);
        } catch {
          /* still in use */
        }
      }
    };
    walk(base);
  }
}

/** Jail addresses of the security tests: 198.51.100.220-239 (n = 0..19). */
export function securityAddr(n: number): string {
  assert.ok(n >= 0 && n < 20, 'the security tests own 198.51.100.220-239 only');
  return `198.51.100.${220 + n}/24`;
}

/** Programs a small root (miniRoot) carries: what the attacks and jailyard's exec need. */
const MINI_PROGRAMS = [
  'sh',
  'dash',
  'bash',
  'python3',
  'mount',
  'umount',
  'unshare',
  'mknod',
  'keyctl',
  'setcap',
  'setpriv',
  'awk',
  'grep',
  'sed',
  'cat',
  'ls',
  'md5sum',
  'wc',
  'head',
  'sort',
  'touch',
  'mkdir',
  'rm',
  'ln',
  'chmod',
  'chown',
  'cp',
  'mv',
  'sleep',
  'id',
  'dirname',
  'env',
  'echo',
  'tr',
  'kill',
  'true',
  'false',
  'rmdir',
  'readlink',
  'stat',
  'ps',
  'timeout',
  'nproc',
  'uname',
  'hostname',
  'find',
  'xargs',
  'dd',
  'tail',
  'printf',
  'test',
  '[',
  'seq',
  'nsenter',
  'capsh',
];

/**
 * A small root tree at `dir` (about 60 MB): the programs above with the libraries they load,
 * python3's standard library, an /etc with root and nobody (passwords locked) and the same
 * layout as Debian (bin -> usr/bin ...). The `full` strategy copies its whole skeleton into
 * every jail; a skeleton of the host's own root would copy gigabytes.
 * `extra` files of the host are copied too, at the same path.
 */
export function miniRoot(dir: string, extra: string[] = []): string {
  const which = (p: string): string | undefined => {
    for (const d of ['/usr/bin', '/usr/sbin', '/bin', '/sbin']) if (existsSync(`${d}/${p}`)) return `${d}/${p}`;
    return undefined;
  };
  // /lib/x and /lib64/x are usr/lib/x and usr/lib64/x here (Debian's merged /usr)
  const inTree = (p: string) => p.replace(/^\/(bin|sbin|lib|lib64)\//, '/usr/$1/');
  const files = new Set<string>();
  for (const p of MINI_PROGRAMS) {
    const at = which(p);
    if (at) files.add(at);
  }
  // python3's standard library, wherever this Debian release keeps it
  const python = which('python3');
  assert.ok(python, 'the security tests need python3 in /usr/bin (Debian package python3)');
  const stdlib = execFileSync(python, ['-c', 'import sysconfig; print(sysconfig.get_paths()["stdlib"])'], {
    encoding: 'utf8',
  }).trim();
  const dynload = join(stdlib, 'lib-dynload');
  if (existsSync(dynload)) for (const f of readdirSync(dynload)) files.add(`${dynload}/${f}`);
  const libs = new Set<string>(); // ldd names the interpreter too
  for (const f of files) {
    let out = '';
    try {
      out = execFileSync('ldd', [f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      continue; // static or a script
    }
    for (const m of out.matchAll(/(\/[^\s]+\.so[^\s]*)/g)) libs.add(m[1]!);
  }
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const d of [
    'usr/bin',
    'usr/sbin',
    'usr/lib',
    'usr/lib64',
    'usr/share',
    'etc',
    'root',
    'tmp',
    'var',
    'run',
    'home',
    'dev',
    'proc',
  ]) {
    mkdirSync(join(dir, d), { recursive: true, mode: d === 'tmp' ? 0o1777 : 0o755 });
  }
  for (const l of ['bin', 'sbin', 'lib', 'lib64']) symlinkSync(`usr/${l}`, join(dir, l));
  const copy = (from: string, to: string) => {
    mkdirSync(dirname(to), { recursive: true });
    copyFileSync(from, to);
    chmodSync(to, statSync(from).mode & 0o7777);
  };
  for (const f of [...files, ...libs, ...extra])
    copy(f, join(dir, inTree(`${realpathSync(dirname(f))}/${f.split('/').pop()}`)));
  mkdirSync(join(dir, dirname(stdlib)), { recursive: true });
  execFileSync('cp', ['-a', '--no-preserve=ownership', stdlib, join(dir, dirname(stdlib))]);
  rmSync(join(dir, stdlib, 'test'), { recursive: true, force: true });
  writeFileSync(
    join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
  );
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  writeFileSync(join(dir, 'etc/shadow'), 'root:!*:20000::::::\nnobody:!*:20000::::::\n', { mode: 0o640 });
  writeFileSync(join(dir, 'etc/hosts'), '127.0.0.1 localhost\n');
  return dir;
}

/** Milliseconds the host takes to run `true`, the best of three (for the checks that a jail's
 * fork bomb leaves the host responsive): one fork of this large test process can be slow on
 * a loaded machine without the host being unresponsive. */
export function hostRunMs(): number {
  return Math.min(
    ...[0, 1, 2].map(() => {
      const t0 = Date.now();
      execFileSync('true');
      return Date.now() - t0;
    }),
  );
}

/** The daemon of toolsDaemon and what it acts through. */
export interface ToolsDaemon {
  store: Store;
  driver: Driver;
  service: ReturnType<typeof createLocalService>;
  daemon: Daemon;
  /** argv in `jail` through the driver (piped), as the jail's root. */
  run(jail: string, argv: string[], timeoutMs?: number): ReturnType<Driver['runInJail']>;
  close(): Promise<void>;
}

/**
 * The daemon in this process over `h`'s state, with the in-jail tools (the real jail(8),
 * jls(8) and sysctl front, each replaceable by a wrapper in `front`; `limits` as in
 * ToolLimits): what the guest tools'
 * attacks go through. Ready when the guest sockets of `jails` exist.
 */
export async function toolsDaemon(
  h: SecurityHost,
  jails: string[],
  front: Partial<ToolFront> = {},
  limits: Partial<ToolLimits> = {},
): Promise<ToolsDaemon> {
  const store = openStore(h.state);
  const driver = await loadDriver({ stateDir: h.state });
  const service = createLocalService({ store, stateDir: h.state, driver });
  const daemon = await startDaemon({
    store,
    service,
    socketPath: join(h.state, 'jailyard.sock'),
    pollIntervalMs: 20,
    guestRoot: (n) => guestDir(h.state, n),
    tools: {
      front: { jail: runJail, jls: runJls, sysctl: runSysctl, ...front },
      scope: { rootOf: rootsFrom(h.state, store), stateDir: h.state },
      limits,
    },
  });
  const t0 = Date.now();
  for (const j of jails)
    while (!existsSync(join(guestDir(h.state, j), 'guest.sock'))) {
      if (Date.now() - t0 > 10_000) throw new Error(`no guest socket for ${j}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  return {
    store,
    driver,
    service,
    daemon,
    run: (jail, argv, timeoutMs = 60_000) =>
      driver.runInJail(service.contextOf(jail), store.requireJail(jail).runtime!.create!, argv, {
        stdio: 'pipe',
        timeoutMs,
      }),
    close: async () => {
      await daemon.close();
      store.close();
    },
  };
}

/** The one file named `name` below `dir` (an lstat walk: a part's layout depends on the
 * skeleton strategy). */
export function findFile(dir: string, name: string): string {
  const found: string[] = [];
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
    else if (st.isFile() && p.endsWith(`/${name}`)) found.push(p);
  };
  walk(dir);
  assert.equal(found.length, 1, `one ${name} below ${dir}: ${found.join(', ')}`);
  return found[0]!;
}

/** A copy of a sparse file: `size` long, at most `maxAllocated` bytes of disk, and the same
 * bytes as `reference` (cmp reads both whole, holes as zeros). */
export function assertSparseCopy(
  path: string,
  reference: string,
  size: number,
  maxAllocated: number,
  what: string,
): void {
  const st = statSync(path);
  assert.equal(st.size, size, `${what}: the size`);
  assert.ok(
    st.blocks * 512 <= maxAllocated,
    `${what}: ${st.blocks * 512} bytes allocated for a ${size}-byte sparse file`,
  );
  execFileSync('cmp', ['--', reference, path]);
}
