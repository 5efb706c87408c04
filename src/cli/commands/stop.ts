// jailyard stop — see docs/cli.md#stop
import type { RegisterVerb } from '../context.ts';
import { printBatch, targets, withSession } from '../jails.ts';

export const register: RegisterVerb = (program, io) => {
  program
    .command('stop')
    .description("stop jails in reverse order (exec.prestop ... exec.release), dependents first")
    .argument('[name...]', 'jails to stop')
    .option('-l, --selector <selector>', 'every jail whose labels match, e.g. app=www,version=v1')
    .option('-p, --parallel <n>', 'run up to n independent jails at once', '1')
    .option('--json', 'print the outcome per jail as JSON')
    .action(async (names: string[], o: { selector?: string; parallel: string; json?: boolean }) => {
      await withSession(program, io, async ({ service }) => {
        const list = await targets(service, names, o.selector);
        printBatch(io, 'stopped', await service.stop(list, { parallel: Number(o.parallel) || 1 }), !!o.json);
      }, { progress: true });
    });
};
