// jailyard exec — run a command inside a running jail, like jexec(8). See docs/cli.md#exec
import type { RegisterVerb } from '../context.ts';
import { JailyardError } from '../../errors.ts';
import { withJails } from '../jails.ts';
import { contextFromRecords } from '../../runtime/jailplan.ts';
import { loadRunInJail } from '../../platform/index.ts';

export const register: RegisterVerb = (program, io) => {
  program
    .command('exec')
    .description('run a command in a jail (all its namespaces, its cgroup, a clean environment)')
    .argument('<name>', 'the jail')
    .argument('[command...]', 'the command and its arguments (default: /bin/sh)')
    .option('-U, --user <user>', 'run as this user of the jail')
    .option('-t, --tty', 'give the command a pty of its own even when stdin or stdout is not a terminal')
    .option('-T, --no-tty', "no pty: the command gets pipes (never the caller's terminal itself)")
    .passThroughOptions()
    .action(async (name: string, command: string[], o: { user?: string; tty?: boolean }) => {
      await withJails(program, io, async ({ store, stateDir }) => {
        if (!store) throw new JailyardError('JY_ERR_USAGE', 'exec runs on the jail host itself, not through --host');
        // a name or a jid, as jexec(8) takes
        const j = store.requireJailRef(name);
        if (j.state !== 'running' || !j.runtime?.create)
          throw new JailyardError('JY_ERR_INVALID_TRANSITION', `jail is ${j.state}, not running`, { jail: j.name });
        const runInJail = await loadRunInJail({ stateDir });
        const ctx = contextFromRecords(stateDir, j, (n) => store.getJail(n));
        // a pty of its own for an interactive caller (like ssh without a command, docker -t)
        const tty = o.tty ?? (process.stdin.isTTY === true && process.stdout.isTTY === true);
        const r = await runInJail(ctx, j.runtime.create, command.length ? command : ['/bin/sh'], {
          stdio: 'inherit',
          tty,
          ...(o.user ? { user: o.user } : {}),
        });
        process.exitCode = r.signal ? 128 + 9 : r.code;
      });
    });
};
