// What every CLI verb shares: where the state lives, how to print, how errors end.

import { resolve } from 'node:path';
import type { Command } from 'commander';

export interface CliIO {
  /** Machine-readable output (one document with --json). */
  out(text: string): void;
  /** Human text: progress, warnings, errors. */
  err(text: string): void;
}

export const processIO: CliIO = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
};

/** The state folder: --state, then $JAILYARD_STATE, then /var/db/jailyard. */
export function stateDir(program: Command): string {
  const opt = program.opts<{ state?: string }>().state;
  return resolve(opt ?? process.env.JAILYARD_STATE ?? '/var/db/jailyard');
}

/** A verb file exports one `register` that adds its command(s) to the program. */
export type RegisterVerb = (program: Command, io: CliIO) => void;
