// jailyard restart — see docs/cli.md#restart
import type { RegisterVerb } from '../context.ts';
import { printBatch, targets, withSession } from '../jails.ts';

export const register: RegisterVerb = (program, io) => {
  program
    .command('restart')
    .description("stop, then start jails (jail -rc)")
    .argument('[name...]', 'jails to restart')
    .option('-l, --selector <selector>', 'every jail whose labels match, e.g. app=www,version=v1')
    .option('-p, --parallel <n>', 'run up to n independent jails at once', '1')
    .option('--json', 'print the outcome per jail as JSON')
    .action(async (names: string[], o: { selector?: string; parallel: string; json?: boolean }) => {
      await withSession(program, io, async ({ service }) => {
        const list = await targets(service, names, o.selector);
        printBatch(io, 'restarted', await service.restart(list, { parallel: Number(o.parallel) || 1 }), !!o.json);
      }, { progress: true });
    });
};
