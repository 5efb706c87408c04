// What the export, import, clone and snapshot verbs share: a local session with the driver's
// view of mounts, or with --host the daemon's (src/api/portable-client.ts), and --restart.

import type { Command } from 'commander';
import { JailyardError } from '../errors.ts';
import type { Store } from '../store/types.ts';
import type { JailService } from '../runtime/types.ts';
import type { CliIO } from './context.ts';
import { withSession } from './jails.ts';

export interface LocalWork {
  service: JailService;
  store: Store;
  stateDir: string;
  mountsBelow: (dir: string) => string[];
}

/** The daemon named by --host (or $JAILYARD_HOST) and the token, when there is one. */
export function remoteOf(program: Command): { host: string; token?: string } | undefined {
  const host = program.opts<{ host?: string }>().host ?? process.env.JAILYARD_HOST;
  if (!host) return undefined;
  const token = process.env.JAILYARD_TOKEN;
  return { host, ...(token ? { token } : {}) };
}

/** Runs `fn` on the local store. */
export async function withLocal<T>(
  program: Command,
  io: CliIO,
  verb: string,
  fn: (w: LocalWork) => Promise<T>,
): Promise<T> {
  return withSession(program, io, async ({ service, store, stateDir }) => {
    if (!store) throw new JailyardError('JY_ERR_USAGE', `${verb} has no local store here`);
    const { mountChecker } = await import('../portable/stopped.ts');
    return fn({ service, store, stateDir, mountsBelow: await mountChecker(stateDir) });
  });
}

/** With `restart`, stops the jail for `fn` and starts it again afterwards (said on stderr). */
export async function whileStopped<T>(
  w: LocalWork,
  io: CliIO,
  name: string,
  restart: boolean | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  const { whileStopped: stopped } = await import('../portable/stopped.ts');
  return stopped(w.service, w.store, name, restart, fn, (ok, message) => {
    io.err(`${name}: ${ok ? 'started again' : `failed to start again: ${message}`}`);
    if (!ok) process.exitCode = 1;
  });
}
