// Running host tools and reading /proc: the only place the Linux driver spawns processes
// (through jy-spawner, spawner.ts, when it is built).
// Every command is an argument array; nothing here ever builds a shell string from input.
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import type { ExecResult } from '../driver.ts';
import { spawner, type Output, type Spawner } from './spawner.ts';
import { consoleDrained, consoleSink } from './console.ts';
import { minimalEnv } from './host-env.ts';

export interface RunOptions {
  env?: Record<string, string>;
  cwd?: string;
  stdio?: 'pipe' | 'inherit';
  timeoutMs?: number;
  /** Written to the child's stdin, which is then closed (pipe mode only). */
  input?: string | Buffer;
  /** Append stdout and stderr to this host file (through a relay that keeps it under
   * consoleLimit bytes, see console.ts); resolve when the process exits. */
  consoleLog?: string;
  /** With consoleLog: wait for the relay to write everything (briefly, when daemons keep
   * it), also after a success (consoleDrained). */
  drain?: boolean;
  /** The console log's size limit in bytes (default: the defaults file's). */
  consoleLimit?: number;
  /** Called with the child's pid right after it is spawned. */
  onSpawn?: (pid: number) => void;
}

/** Runs argv to completion; never rejects for a non-zero exit (the caller decides). */
export function run(argv: string[], opts: RunOptions = {}): Promise<ExecResult> {
  if (!argv[0]) throw new TypeError('run: empty argv');
  // through jy-spawner unless the child needs our terminal or stdin data
  const helper = opts.stdio !== 'inherit' && opts.input === undefined ? spawner() : null;
  const start = (o: RunOptions) => (helper ? runWithSpawner(helper, argv, o) : runWithNode(argv, o));
  if (!opts.consoleLog) return start(opts);
  // Console output goes to a relay that bounds the log (console.ts), never straight into
  // the file: the command may be the jail's, and so may the daemons it leaves running.
  // The spawn opens the relay's pipe in the same turn (consoleSink's contract).
  // After a failure the caller reads the log for the command's last words: they are there.
  return consoleSink(opts.consoleLog, opts.consoleLimit).then(async (sink) => {
    const result = await start({ ...opts, consoleLog: sink.path });
    if (result.code !== 0 || opts.drain) await consoleDrained(sink.pid);
    return result;
  });
}

function runWithSpawner(helper: Spawner, argv: string[], opts: RunOptions): Promise<ExecResult> {
  const output: Output = opts.consoleLog ? { file: opts.consoleLog } : 'pipe';
  const child = helper.spawn({
    argv,
    env: opts.env ?? minimalEnv(),
    cwd: opts.cwd ?? '/',
    stdout: output,
    stderr: output,
  });
  return new Promise((resolve, reject) => {
    const out = new StringDecoder('utf8');
    const err = new StringDecoder('utf8');
    let stdout = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.on('stdout', (d: Buffer) => (stdout += out.write(d)));
    child.on('stderr', (d: Buffer) => (stderr += err.write(d)));
    child.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      if (timer) clearTimeout(timer);
      resolve({
        code: code ?? 128 + signalNumber(signal),
        signal,
        stdout: stdout + out.end(),
        stderr: stderr + err.end(),
      });
    });
    child.on('error', (e: Error) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.started.then(
      (pid) => {
        if (opts.timeoutMs !== undefined) timer = setTimeout(() => killTree(pid, 'SIGKILL'), opts.timeoutMs);
        opts.onSpawn?.(pid);
      },
      (e: Error) => reject(e),
    );
  });
}

function runWithNode(argv: string[], opts: RunOptions): Promise<ExecResult> {
  const [file, ...args] = argv as [string, ...string[]];
  return new Promise((resolve, reject) => {
    let logFd: number | undefined;
    let stdio: ('pipe' | 'inherit' | 'ignore' | number)[];
    if (opts.consoleLog) {
      logFd = openSync(opts.consoleLog, 'a');
      stdio = [opts.input !== undefined ? 'pipe' : 'ignore', logFd, logFd];
    } else if (opts.stdio === 'inherit') {
      stdio = ['inherit', 'inherit', 'inherit'];
    } else {
      stdio = ['pipe', 'pipe', 'pipe'];
    }
    const child = spawn(file, args, { stdio, env: opts.env ?? minimalEnv(), cwd: opts.cwd ?? '/' });
    if (logFd !== undefined) closeSync(logFd);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (child.stdin) {
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input ?? '');
    }
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined && child.pid) {
      const pid = child.pid;
      timer = setTimeout(() => killTree(pid, 'SIGKILL'), opts.timeoutMs);
    }
    if (child.pid && opts.onSpawn) opts.onSpawn(child.pid);
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    // With a console log there are no pipes to drain: the exit is the end.
    child.on(opts.consoleLog ? 'exit' : 'close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? 128 + signalNumber(signal), signal, stdout, stderr });
    });
  });
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : signal ? 1 : 0;
}

/** Runs argv and returns stdout; throws (plain Error with stderr) on failure. */
export async function runOk(argv: string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0) {
    const err = new Error(`${argv.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
    (err as Error & { output?: string }).output = (r.stderr || r.stdout).trim();
    throw err;
  }
  return r.stdout;
}

export function outputOf(e: unknown): string {
  const o = (e as { output?: unknown }).output;
  return typeof o === 'string' ? o : e instanceof Error ? e.message : String(e);
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks), or undefined if gone. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[22 - 3];
  } catch {
    return undefined;
  }
}

/** Whether pid exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text) out.push(...text.split(' ').map(Number));
    } catch {
      // task gone
    }
  }
  return out;
}

/** Sends signal to pid and all its descendants (children first found, then parent). */
export function killTree(pid: number, signal: NodeJS.Signals): void {
  for (const c of childrenOf(pid)) killTree(c, signal);
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export function nsIdsOf(pid: number): Record<string, string> {
  const ids: Record<string, string> = {};
  for (const ns of ['mnt', 'pid', 'net', 'uts', 'ipc']) {
    try {
      ids[ns] = readlinkSync(`/proc/${pid}/ns/${ns}`);
    } catch {
      // namespace kind not available
    }
  }
  return ids;
}

/** Every host pid whose pid namespace is `pidNs` (a `pid:[inode]` link text). */
export function pidsInNamespace(pidNs: string): number[] {
  const found: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readlinkSync(`/proc/${d}/ns/pid`) === pidNs) found.push(Number(d));
    } catch {
      // gone or kernel thread
    }
  }
  return found;
}

/** The innermost pid of a process (last NSpid entry): 1 for a jail's init. */
export function innermostPid(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('NSpid:'));
    const parts = line?.split(/\s+/).slice(1).filter(Boolean);
    return parts?.length ? Number(parts[parts.length - 1]) : undefined;
  } catch {
    return undefined;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls cond every stepMs until true or timeoutMs elapsed; returns the last result. */
export async function waitFor(cond: () => boolean, timeoutMs: number, stepMs = 10): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (cond()) return true;
    if (Date.now() >= end) return false;
    await sleep(stepMs);
  }
}
