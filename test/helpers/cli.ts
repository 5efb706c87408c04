// Runs the CLI against one state folder and captures what it prints: in-process (cliFor), or
// as a process of its own (binFor, runBin) where the output is not the CLI's to capture
// (`exec` hands the jail's program the real stdout and stderr), or where the test needs a
// process (its environment, descriptors, signals, a crash).
import {
  type ChildProcess,
  execFileSync,
  spawn,
  spawnSync,
  type ExecFileSyncOptions,
  type SpawnSyncOptions,
} from 'node:child_process';
import { constants } from 'node:os';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { openStore } from '../../src/store/sqlite.ts';
import type { CliIO } from '../../src/cli/context.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function captureIO(): CliIO & { stdout: string; stderr: string } {
  const c = {
    stdout: '',
    stderr: '',
    out: (t: string) => void (c.stdout += t.endsWith('\n') ? t : `${t}\n`),
    err: (t: string) => void (c.stderr += t.endsWith('\n') ? t : `${t}\n`),
  };
  return c;
}

/** Runs `jailyard ...argv` in this process. */
export async function runCli(argv: string[]): Promise<CliResult> {
  const io = captureIO();
  const code = await main(argv, io);
  return { code, stdout: io.stdout, stderr: io.stderr };
}

/** `jy(...args)` runs `jailyard --state <state()> ...args` in this process. */
export function cliFor(state: () => string): (...args: string[]) => Promise<CliResult> {
  return (...args) => runCli(['--state', state(), ...args]);
}

/** bin/jailyard.js, run with this test's node (v24): `spawn(process.execPath, binArgs(...))`. */
export const JY_BIN = join(import.meta.dirname, '../../bin/jailyard.js');

/** The arguments of node for `jailyard --state STATE ...args`. */
export function binArgs(state: string, ...args: string[]): string[] {
  return [JY_BIN, '--state', state, ...args];
}

/**
 * `jyBin(...args)` runs `jailyard --state <state()> ...args` as a process of its own and
 * returns its stdout; a non-zero exit throws execFileSync's error (status, stdout, stderr).
 * `opts` (e.g. cwd, env) may be a function, for a state folder made in `before`.
 */
export function binFor(
  state: () => string,
  opts: ExecFileSyncOptions | (() => ExecFileSyncOptions) = {},
): (...args: string[]) => string {
  return (...args) =>
    execFileSync(process.execPath, binArgs(state(), ...args), {
      ...(typeof opts === 'function' ? opts() : opts),
      encoding: 'utf8',
    });
}

/** Runs `jailyard --state STATE ...args` as a process of its own to its end: the exit code
 * (128 + signal when killed, e.g. by `timeout`), stdout and stderr. */
export function runBin(state: string, args: string[], opts: SpawnSyncOptions = {}): CliResult {
  const r = spawnSync(process.execPath, binArgs(state, ...args), { timeout: 120_000, ...opts, encoding: 'utf8' });
  if (r.error && r.status === null && r.signal === null) throw r.error;
  const code = r.status ?? 128 + (r.signal ? constants.signals[r.signal] : 0);
  return { code, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/**
 * A hook command (exec.*) that waits until `file` exists, up to `seconds`: a test holds a
 * jail inside a step until it has done what must happen there, and then makes the file,
 * instead of guessing how long a fixed sleep must be on a loaded machine.
 */
export function hookWaitingFor(file: string, seconds: number): string {
  return `i=0; until test -e ${file} || [ $i -ge ${seconds * 10} ]; do sleep 0.1; i=$((i+1)); done`;
}

/** The cgroups of a running jail's pid 1 as the host sees them (/proc/PID/cgroup lines): the
 * jail itself reads "/" for each (a cgroup namespace of its own). */
export function hostCgroupsOf(state: string, name: string): string {
  const store = openStore(state);
  try {
    const pid = store.requireJail(name).runtime?.create?.initPid;
    if (!pid) throw new Error(`jail ${name} has no pid 1`);
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } finally {
    store.close();
  }
}

/**
 * `jailyard --state STATE serve ARGS...` as a child process (the real binary), resolved once
 * it says it serves; rejects if it ends first or says nothing of the kind within 60 s. `env`
 * is the child's environment (default: this process's without JAILYARD_HOST and
 * JAILYARD_STATE, so it serves STATE locally). Stop it by its pid (the caller's to do).
 */
export async function spawnServe(
  state: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = localEnv(),
): Promise<ChildProcess> {
  const child = spawn(JY_BIN, ['--state', state, 'serve', ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no daemon for ${state}: ${text}`));
    }, 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      text += d;
      if (text.includes('serving on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the daemon for ${state} ended (${code}): ${text}`));
    });
  });
  return child;
}

/** This process's environment without what would send the CLI elsewhere than its --state. */
function localEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.JAILYARD_HOST;
  delete env.JAILYARD_STATE;
  return env;
}
