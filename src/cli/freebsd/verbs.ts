// `jailyard jail|jls|jexec ARGS...`: the FreeBSD front as verbs of the jailyard command. Every
// word after the verb is the front's (FreeBSD's options, not jailyard's); the exit status is
// the front's. bin/jail, bin/jls and bin/jexec run these.

import type { Command } from 'commander';
import { processIO, type CliIO, type RegisterVerb } from '../context.ts';
import { frontIO } from './front-io.ts';
import { withJails, withSession } from '../jails.ts';

type Front = 'jail' | 'jls' | 'jexec';

const descriptions: Record<Front, string> = {
  jail: 'jail(8): create (-c), modify (-m), remove (-r) jails with FreeBSD arguments and output',
  jls: 'jls(8): list jails with FreeBSD arguments and output (--libxo json)',
  jexec: 'jexec(8): run a command in a jail by name or jid',
};

function registerFront(front: Front): RegisterVerb {
  return (program: Command, io: CliIO) => {
    program
      .command(front)
      .description(descriptions[front])
      .argument('[args...]', `${front}(8) arguments`)
      .helpOption(false)
      .allowUnknownOption()
      .allowExcessArguments()
      .passThroughOptions()
      .action(async (args: string[]) => {
        const { runJail, runJls, runJexec } = await import('./index.ts');
        if (front === 'jls') {
          // reading needs the store alone, not the service, driver and skeleton code
          await withJails(program, io, async ({ jails, stateDir }) => {
            const terminal = () => io === processIO && process.stdout.isTTY === true;
            process.exitCode = await runJls(args, frontIO(io, front, terminal), { service: jails, stateDir });
          });
          return;
        }
        const run = front === 'jail' ? runJail : runJexec;
        await withSession(program, io, async ({ service, stateDir, store }) => {
          if (front === 'jexec' && !store) {
            // like `jailyard exec`: the command runs through this host's driver
            io.err('jexec: runs on the jail host itself, not through --host');
            process.exitCode = 1;
            return;
          }
          process.exitCode = await run(args, frontIO(io, front), { service, stateDir });
        });
      });
  };
}

export const registerJail = registerFront('jail');
export const registerJls = registerFront('jls');
export const registerJexec = registerFront('jexec');
