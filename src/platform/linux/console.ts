// A jail's console log, bounded: what jail processes write there goes through a pipe to
// jy-log (native/jy-log.c), a small host-side relay that keeps the file under a size limit
// with one rotation (console.log -> console.log.1). The jail holds only the pipe, never
// the host file; the relay ends by itself when the last writer (the jail's last process
// holding the pipe) is gone. One relay per consumer: jy-stage (the jail's pid 1 and what
// inherits its output) and each exec.* command run with a console log (and the daemons it
// leaves behind). Relays of one file take turns (flock) so the limit counts every byte.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDefaults } from '../../defaults.ts';
import { JailyardError, describeError } from '../../errors.ts';
import { paramString, parseSize, type Params } from '../../conf/spec.ts';
import { minimalEnv } from './host-env.ts';
import { spawner } from './spawner.ts';

/** The relay (native/jy-log.c), built with the other helpers. */
export const JY_LOG = fileURLToPath(new URL('../../../native/build/jy-log', import.meta.url));

/** The console log limit when neither the jail nor the defaults file names one. */
const FALLBACK_LIMIT = 4 << 20;
/** jy-log refuses smaller limits (one pipe read must fit). */
const MIN_LIMIT = 64 << 10;

/** The defaults file's `console.logMaxBytes` (a number or a size text like "4M"). */
export function defaultConsoleLimit(): number {
  const d = loadDefaults().console?.logMaxBytes;
  if (d === undefined) return FALLBACK_LIMIT;
  return Math.max(MIN_LIMIT, typeof d === 'number' ? d : parseSize(d, { param: 'console.logMaxBytes' }));
}

/** A jail's console log limit: its `limits.consolelog` parameter, else the default. */
export function consoleLimitOf(params: Params, jail?: string): number {
  const v = paramString(params, 'limits.consolelog');
  if (v === undefined || v === '') return defaultConsoleLimit();
  const bytes = parseSize(v, { ...(jail ? { jail } : {}), param: 'limits.consolelog' });
  if (bytes < MIN_LIMIT) {
    throw new JailyardError('JY_ERR_PARAM_VALUE', `limits.consolelog must be at least 64K`, {
      ...(jail ? { jail } : {}),
      param: 'limits.consolelog',
    });
  }
  return bytes;
}

/** Whether `log` is jailyard's own console log of a jail (state/jails/NAME/console.log,
 * src/layout.ts consoleLogFile): only that one gets a time index beside it (console.log.idx,
 * read by `jailyard logs --since`), never a file an operator named in exec.consolelog. */
export function ownConsoleLog(log: string): boolean {
  return basename(log) === 'console.log' && basename(dirname(dirname(log))) === 'jails';
}

/**
 * Starts a relay for `log` and returns the path a writer opens to reach it
 * (/proc/<relay>/fd/0: the pipe; its link text is "pipe:[…]", no host path). Open it in
 * the same turn of the event loop: right after, the relay is told that its first writer
 * is there (through the same jy-spawner channel, so after that writer's open), and from
 * then on it lives exactly as long as its writers.
 */
export async function consoleSink(
  log: string,
  maxBytes = defaultConsoleLimit(),
): Promise<{ path: string; pid: number }> {
  if (!existsSync(JY_LOG)) {
    throw new JailyardError('JY_ERR_PLATFORM', `missing ${JY_LOG}: run npm install (or bash scripts/build-native.sh)`, {
      step: 'create',
    });
  }
  const argv = [
    JY_LOG,
    '--max',
    String(Math.max(MIN_LIMIT, Math.floor(maxBytes))),
    ...(ownConsoleLog(log) ? ['--index'] : []),
    log,
  ];
  const helper = spawner();
  let release: () => void;
  let first: Promise<string>;
  let pid: number | undefined;
  if (helper) {
    const child = helper.spawn({ argv, env: minimalEnv(), cwd: '/', detached: true, stdout: 'pipe', stderr: 'ignore' });
    first = new Promise((resolve) => {
      let text = '';
      child.on('stdout', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\n')) resolve(text);
      });
      child.on('exit', () => resolve(text));
      child.on('error', () => resolve(text));
    });
    pid = await child.started.catch(() => undefined);
    release = () => {
      child.removeAllListeners();
      child.closeOutput();
    };
  } else {
    const child = spawn(argv[0]!, argv.slice(1), {
      detached: true,
      stdio: ['ignore', 'pipe', 'ignore'],
      env: minimalEnv(),
      cwd: '/',
    });
    first = new Promise((resolve) => {
      let text = '';
      child.stdout!.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\n')) resolve(text);
      });
      child.on('exit', () => resolve(text));
      child.on('error', () => resolve(text));
    });
    pid = child.pid;
    release = () => {
      child.stdout!.destroy();
      child.unref();
    };
  }
  const line = pid === undefined ? '' : await first;
  if (pid === undefined || line.split('\n')[0] !== 'ready') {
    release();
    throw new JailyardError('JY_ERR_PLATFORM', `cannot start the console log writer for ${log}`, {
      step: 'create',
      output: line.trim(),
    });
  }
  // after the caller's open, which follows in this same turn
  setImmediate(release);
  return { path: `/proc/${pid}/fd/0`, pid };
}

/**
 * Waits (up to `ms`) for a relay to write everything and exit, which it does at once when
 * nothing else holds its pipe: a caller that reads the log right after its command failed
 * then finds the command's last lines. A relay kept by daemons is not waited for longer.
 */
export async function consoleDrained(pid: number, ms = 200): Promise<void> {
  const gone = () => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
    } catch {
      return true;
    }
  };
  for (const end = Date.now() + ms; !gone() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 2));
}

/**
 * consoleSink for jy-stage: never throws. When the relay cannot start, the reason goes into
 * the log itself and the path returned cannot be opened, so the stage's spawn fails and
 * the create step reports it with the log's tail (and undoes what it made).
 */
export async function stageConsole(log: string, maxBytes?: number): Promise<string> {
  try {
    return (await consoleSink(log, maxBytes)).path;
  } catch (e) {
    try {
      appendFileSync(log, `jailyard: ${describeError(e)}\n`, { flag: 'a' });
    } catch {
      // the create step's error says the stage could not be spawned
    }
    return '/proc/self/fd/-1';
  }
}

/** Running relays (host pids) and the log each writes. */
export function consoleRelays(): { pid: number; log: string }[] {
  const out: { pid: number; log: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv[0] === 'jy-log' || argv[0]?.endsWith('/jy-log'))
        out.push({ pid: Number(d), log: argv[argv.length - 2] ?? '' });
    } catch {
      // gone
    }
  }
  return out;
}

/** Relays whose log's folder is gone (the jail's state was removed under a live writer). */
export function strayConsoleRelays(): number[] {
  return consoleRelays()
    .filter((r) => !existsSync(dirname(r.log)))
    .map((r) => r.pid);
}
