// The one door through which the FreeBSD driver reaches the system: argument vectors, never
// shell strings (the only shell is /bin/sh -c for exec.* hook values, built by the caller).
// Tests replace it with the strict fake in ./fake-runner.ts, since FreeBSD cannot run here.

import { spawn, spawnSync, type StdioOptions } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { ExecResult } from '../driver.ts';

export interface RunOptions {
  /** The child's COMPLETE environment (clean by design); undefined inherits ours. */
  env?: Record<string, string>;
  cwd?: string;
  /** SIGTERM after this many milliseconds, SIGKILL two seconds later. */
  timeoutMs?: number;
  /** 'pipe' (default) collects output; 'inherit' passes our stdio through. */
  stdio?: 'pipe' | 'inherit';
  /** Append stdout and stderr to this host file; resolve when the process exits. */
  consoleLog?: string;
}

export interface CommandRunner {
  run(argv: string[], opts?: RunOptions): Promise<ExecResult>;
  /** For the few questions that must be answered synchronously (Driver.isAlive). */
  runSync(argv: string[]): ExecResult;
}

const KILL_GRACE_MS = 2000;

/** The real runner: spawn with an argument array; a missing program is exit code 127. */
export function createExecRunner(): CommandRunner {
  return {
    run(argv, opts = {}) {
      const [file, ...args] = argv;
      if (!file) return Promise.reject(new Error('empty argv'));
      let logFd: number | undefined;
      let stdio: StdioOptions = opts.stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'];
      if (opts.consoleLog) {
        logFd = openSync(opts.consoleLog, 'a');
        stdio = ['ignore', logFd, logFd];
      }
      return new Promise<ExecResult>((resolve) => {
        let stdout = '';
        let stderr = '';
        const child = spawn(file, args, {
          stdio,
          ...(opts.env ? { env: opts.env } : {}),
          ...(opts.cwd ? { cwd: opts.cwd } : {}),
        });
        child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        let killTimer: NodeJS.Timeout | undefined;
        const timer = opts.timeoutMs
          ? setTimeout(() => {
              child.kill('SIGTERM');
              killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
            }, opts.timeoutMs)
          : undefined;
        let settled = false;
        const finish = (result: ExecResult): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          clearTimeout(killTimer);
          if (logFd !== undefined) closeSync(logFd);
          resolve(result);
        };
        child.on('error', (e) => finish({ code: 127, signal: null, stdout, stderr: `${file}: ${e.message}` }));
        // with a console log, daemons started by the command keep the file open: 'exit', not 'close'
        child.on(logFd !== undefined ? 'exit' : 'close', (code, signal) =>
          finish({ code: code ?? 128, signal, stdout, stderr }),
        );
      });
    },
    runSync(argv) {
      const [file, ...args] = argv;
      if (!file) throw new Error('empty argv');
      const r = spawnSync(file, args, { encoding: 'utf8' });
      if (r.error) return { code: 127, signal: null, stdout: '', stderr: `${file}: ${r.error.message}` };
      return { code: r.status ?? 128, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
    },
  };
}
