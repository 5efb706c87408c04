// The CLI's io as the FreeBSD front's (./index.ts FrontIO), for the `jail`, `jls` and `jexec`
// verbs (./verbs.ts) and for jls's fast path before the CLI (../jls-fast.ts): one module of
// its own, so that path takes the same framing without loading the verbs' modules.

import type { CliIO } from '../context.ts';
import type { FrontIO } from './types.ts';

/** The front writes whole lines (ending in a newline); the CLI's writer ends each text with
 * one. Only jexec asks about a terminal at once: touching process.stdin sets up a stream
 * (~20 ms of a jls); jls asks `stdoutTerminal` when a value needs it. */
export function frontIO(io: CliIO, front: 'jail' | 'jls' | 'jexec', stdoutTerminal?: () => boolean): FrontIO {
  const strip = (t: string): string => (t.endsWith('\n') ? t.slice(0, -1) : t);
  return {
    stdout: (t) => {
      if (t !== '') io.out(strip(t));
    },
    stderr: (t) => {
      if (t !== '') io.err(strip(t));
    },
    stdin: 'inherit',
    ...(stdoutTerminal ? { stdoutTerminal } : {}),
    ...(front === 'jexec' ? { terminal: process.stdin.isTTY === true && process.stdout.isTTY === true } : {}),
  };
}
