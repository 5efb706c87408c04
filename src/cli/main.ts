// The jailyard command line: a thin dispatcher. One verb = one file in ./commands.

import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { isJailyardError, printable } from '../errors.ts';
import { processIO, type CliIO } from './context.ts';
import { verbsFor, verbs } from './commands/index.ts';
import type { JailReader } from './jails.ts';

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** The program with the verbs `argv` needs (every verb without `argv`). */
export async function buildProgram(io: CliIO = processIO, argv?: readonly string[]): Promise<Command> {
  const program = new Command('jailyard')
    .description('a jail manager: FreeBSD jail(8) semantics on Linux and FreeBSD')
    .option('--state <dir>', 'state folder (default $JAILYARD_STATE or /var/db/jailyard)')
    .option('--host <url>', 'talk to a daemon (unix:///path or https://host:port) instead of the local store')
    .version(packageVersion(), '-V, --version')
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, '')), writeErr: (s) => io.err(s.replace(/\n$/, '')) });
  const files = await Promise.all((argv ? verbsFor(argv) : verbs).map((v) => v.load()));
  for (const { register } of files) register(program, io);
  return program;
}

/** Runs the CLI; returns the exit code (0 ok, 1 failure, 2 usage). `served`: the jails a
 * reading verb (ls) reads, when the daemon runs it for a client (src/cli/host-front.ts). */
export async function main(argv: string[], io: CliIO = processIO, served?: JailReader): Promise<number> {
  const program = await buildProgram(io, argv);
  if (served) (await import('./jails.ts')).servedReaders.set(program, served);
  // verbs report failure through process.exitCode; main() owns it and hands it back. Run by
  // the daemon for a client (served), it is the daemon's own (serve's, a signal's), which
  // this run must leave as it found it
  const before = process.exitCode;
  process.exitCode = 0;
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help')
        return 0;
      return 2;
    }
    if (isJailyardError(e)) {
      // a message may name a jail's file (a copy's ENOSPC): no control character of it reaches
      // the operator's terminal
      io.err(`jailyard: ${printable(e.describe())}`);
      return e.code === 'JY_ERR_USAGE' ? 2 : 1;
    }
    io.err(`jailyard: ${printable(e instanceof Error ? (e.stack ?? e.message) : String(e))}`);
    return 1;
  } finally {
    process.exitCode = served ? before : undefined;
  }
}
