// What every CLI verb shares: where the state lives, how to print, how errors end.

import { resolve } from 'node:path';
import type { Command } from 'commander';

export interface CliIO {
  /** Machine-readable output (one document with --json). */
  out(text: string): void;
  /** Human text: progress, warnings, errors. */
  err(text: string): void;
}

/**
 * Writes that never throw and never crash the process: a closed pipe (`jailyard ... | head`,
 * a `tee` killed by the same Ctrl-C) or a vanished terminal must not abort a clean-up that
 * is still taking jails down. What cannot be written is dropped.
 */
function safeWriter(stream: NodeJS.WriteStream): (text: string) => void {
  let broken = false;
  stream.on('error', () => {
    broken = true;
  });
  return (text) => {
    if (broken || stream.destroyed) return;
    try {
      stream.write(text.endsWith('\n') ? text : `${text}\n`);
    } catch {
      broken = true;
    }
  };
}

let stdoutWriter: ((t: string) => void) | undefined;
let stderrWriter: ((t: string) => void) | undefined;

export const processIO: CliIO = {
  out: (t) => (stdoutWriter ??= safeWriter(process.stdout))(t),
  err: (t) => (stderrWriter ??= safeWriter(process.stderr))(t),
};

/** The state folder: --state, then $JAILYARD_STATE, then /var/db/jailyard. */
export function stateDir(program: Command): string {
  const opt = program.opts<{ state?: string }>().state;
  return resolve(opt ?? process.env.JAILYARD_STATE ?? '/var/db/jailyard');
}

/** A verb file exports one `register` that adds its command(s) to the program. */
export type RegisterVerb = (program: Command, io: CliIO) => void;
