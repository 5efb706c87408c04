// What every part of the FreeBSD driver shares: the command runner and the injected clock,
// how a system tool is run (a fixed PATH, nothing else of our environment), and how its
// failure is reported.

import { JailyardError } from '../../errors.ts';
import type { CreateFacts, ExecResult } from '../driver.ts';
import { parseJlsJson, type JlsJail } from './parse.ts';
import type { CommandRunner, RunOptions } from './runner.ts';
import { HOST_PATH, TOOLS } from './tools.ts';

/** The driver's options resolved: the parts take this instead of a closure's variables. */
export interface FreeBSDHost {
  runner: CommandRunner;
  sleep: (ms: number) => Promise<void>;
  now: () => number;
  getuid: () => number;
  /** How often destroy polls for processes left in the jail. */
  pollMs: number;
  /** Jail names jailyard made; other jails are never touched. */
  isOwnJail: (name: string) => boolean;
  /** Mount targets jailyard owns. */
  isOwnMount: (target: string) => boolean;
}

/** System tools run with a fixed PATH and nothing else of our environment. */
export const SYSTEM: RunOptions = { env: { PATH: HOST_PATH } };

export function outputOf(r: ExecResult): string {
  return (r.stderr || r.stdout).trim();
}

export function jidOf(facts: CreateFacts): string | undefined {
  return facts.nsIds?.jid;
}

/** Runs a command that must succeed; failure is `code` naming the jail and step. */
export async function must(
  host: FreeBSDHost,
  argv: string[],
  code: 'JY_ERR_STEP_FAILED' | 'JY_ERR_PLATFORM' | 'JY_ERR_MOUNT',
  what: string,
  place: { jail?: string; step: string },
): Promise<ExecResult> {
  const r = await host.runner.run(argv, SYSTEM);
  if (r.code !== 0)
    throw new JailyardError(code, `${what} failed (exit ${r.code}): ${outputOf(r)}`, {
      ...place,
      output: outputOf(r),
    });
  return r;
}

/** `jls --libxo json ARGS`, parsed. */
export async function jls(host: FreeBSDHost, args: string[]): Promise<JlsJail[]> {
  const r = await host.runner.run([TOOLS.jls, '--libxo', 'json', ...args], SYSTEM);
  if (r.code !== 0)
    throw new JailyardError('JY_ERR_PLATFORM', `jls ${args.join(' ')} failed: ${outputOf(r)}`, {
      step: 'jls',
      output: outputOf(r),
    });
  return parseJlsJson(r.stdout);
}
