// What every CLI verb shares: where the state lives, how to print, how errors end.

import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';

export interface CliIO {
  /** Machine-readable output (one document with --json). */
  out(text: string): void;
  /** Human text: progress, warnings, errors. */
  err(text: string): void;
}

/** Text waiting for a slow reader beyond this much is dropped: a pipe nobody reads must not
 * grow the process without bound (stdout gets room for a large --json document). */
const MAX_PENDING = { stdout: 64 << 20, stderr: 1 << 20 };

/**
 * A terminal written through its own non-blocking file description (`/proc/self/fd/N`
 * opened again). Node writes to a terminal synchronously: a terminal that stops reading
 * (Ctrl-S, a stalled ssh session, a pty nobody reads) blocks the whole event loop, and with
 * it the signal handlers, so a Ctrl-C could not even start the clean-up. What the terminal
 * cannot take now waits (bounded) and is retried by an unref'd timer that never keeps the
 * process alive.
 */
function ttyWriter(fd: number, limit: number): ((text: string) => void) | undefined {
  let own: number;
  try {
    own = openSync(`/proc/self/fd/${fd}`, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch {
    return undefined;
  }
  let pending = Buffer.alloc(0);
  let broken = false;
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    timer = undefined;
    while (pending.length && !broken) {
      let n: number;
      try {
        n = writeSync(own, pending);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break;
        // EIO: the terminal is gone (hung up); nothing more can be shown
        broken = true;
        pending = Buffer.alloc(0);
        try {
          closeSync(own);
        } catch {
          // closed already
        }
        return;
      }
      pending = pending.subarray(n);
    }
    if (pending.length && !broken) {
      timer = setTimeout(flush, 20);
      timer.unref();
    }
  };
  return (text) => {
    if (broken) return;
    const b = Buffer.from(text.endsWith('\n') ? text : `${text}\n`);
    if (pending.length + b.length > limit) return;
    pending = pending.length ? Buffer.concat([pending, b]) : b;
    if (!timer) flush();
  };
}

/**
 * Writes that never throw, never block and never crash the process: a closed pipe
 * (`jailyard ... | head`, a `tee` killed by the same Ctrl-C), a full one nobody reads, a
 * stopped or vanished terminal must not abort or stall a clean-up that is still taking jails
 * down. What cannot be written is dropped. (Node queues writes to a pipe in memory; a reader
 * that never reads keeps them queued, which `exitAfterSignal` in ./signals.ts ends.)
 */
function safeWriter(stream: NodeJS.WriteStream, fd: number, limit: number): (text: string) => void {
  if (stream.isTTY) {
    const tty = ttyWriter(fd, limit);
    if (tty) return tty;
  }
  let broken = false;
  stream.on('error', () => {
    broken = true;
  });
  queued.add(stream);
  return (text) => {
    if (broken || stream.destroyed) return;
    if (stream.writableLength > limit) return;
    try {
      stream.write(text.endsWith('\n') ? text : `${text}\n`);
    } catch {
      broken = true;
    }
  };
}

/** The streams whose writes Node queues (pipes, sockets): see outputPending. */
const queued = new Set<NodeJS.WriteStream>();

/** Whether output is still queued for a reader that has not taken it (a full pipe). */
export function outputPending(): boolean {
  for (const s of queued) if (!s.destroyed && s.writableLength > 0) return true;
  return false;
}

let stdoutWriter: ((t: string) => void) | undefined;
let stderrWriter: ((t: string) => void) | undefined;

export const processIO: CliIO = {
  out: (t) => (stdoutWriter ??= safeWriter(process.stdout, 1, MAX_PENDING.stdout))(t),
  err: (t) => (stderrWriter ??= safeWriter(process.stderr, 2, MAX_PENDING.stderr))(t),
};

/** The state folder: --state, then $JAILYARD_STATE, then /var/db/jailyard. */
export function stateDir(program: Command): string {
  return stateDirOf(program.opts<{ state?: string }>().state);
}

/** The state folder for `--state` given as `opt` (or not given). */
export function stateDirOf(opt: string | undefined): string {
  // layout.ts DEFAULT_STATE_DIR, spelled here: this module is loaded by every command and
  // stays free of the parameter code layout.ts imports
  return resolve(opt ?? process.env.JAILYARD_STATE ?? '/var/db/jailyard');
}

/** A verb file exports one `register` that adds its command(s) to the program. */
export type RegisterVerb = (program: Command, io: CliIO) => void;
