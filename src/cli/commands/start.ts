// jailyard start — see docs/cli.md#start
import type { RegisterVerb } from '../context.ts';
import { printBatch, targets, withSession } from '../jails.ts';

export const register: RegisterVerb = (program, io) => {
  program
    .command('start')
    .description("start jails in jail(8)'s order (exec.prepare ... exec.poststart), dependencies first")
    .argument('[name...]', 'jails to start')
    .option('-l, --selector <selector>', 'every jail whose labels match, e.g. app=www,version=v1')
    .option('-p, --parallel <n>', 'run up to n independent jails at once', '1')
    .option('--json', 'print the outcome per jail as JSON')
    .action(async (names: string[], o: { selector?: string; parallel: string; json?: boolean }) => {
      await withSession(program, io, async ({ service }) => {
        const list = await targets(service, names, o.selector);
        printBatch(io, 'started', await service.start(list, { parallel: Number(o.parallel) || 1 }), !!o.json);
      }, { progress: true });
    });
};
