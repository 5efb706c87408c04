// jailyard remove — stop (if running) and forget jails. See docs/cli.md#remove
import type { RegisterVerb } from '../context.ts';
import { ifRevisionOption, printBatch, targets, withSession } from '../jails.ts';

export const register: RegisterVerb = (program, io) => {
  program
    .command('remove')
    .alias('rm')
    .description('stop jails if they run, then remove them and their writable parts')
    .argument('[name...]', 'jails to remove')
    .option('-l, --selector <selector>', 'every jail whose labels match')
    .option('-p, --parallel <n>', 'stop up to n independent running jails at once first', '1')
    .option('--if-revision <n>', 'only if the jail is still at this revision when the removal starts (one jail)')
    .option('--json', 'print the outcome per jail as JSON')
    .action(
      async (names: string[], o: { selector?: string; parallel: string; ifRevision?: string; json?: boolean }) => {
        const cas = ifRevisionOption(o.ifRevision);
        await withSession(
          program,
          io,
          async ({ service }) => {
            const list = await targets(service, names, o.selector);
            printBatch(
              io,
              'removed',
              await service.remove(list, { parallel: Number(o.parallel) || 1, ...cas }),
              !!o.json,
            );
          },
          { progress: true },
        );
      },
    );
};
