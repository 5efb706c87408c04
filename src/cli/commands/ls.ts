// jailyard ls — jls(8): list jails and their parameters. See docs/cli.md#ls
// Its options and output are in ../ls-view.ts, shared with the fast path (../ls-fast.ts) that
// runs a plain `ls` before the CLI is loaded.
import { processIO, type RegisterVerb } from '../context.ts';
import { withJails } from '../jails.ts';
import { LS_OPTIONS, lsShown, lsText, type LsSwitches } from '../ls-view.ts';

export const register: RegisterVerb = (program, io) => {
  const ls = program
    .command('ls')
    .description('list jails like jls(8): running ones, or all with -a')
    .argument('[param...]', 'parameters to print (meta, env, meta.KEY, env.KEY, any jail parameter)');
  for (const o of LS_OPTIONS) ls.option(o.flags, o.help);
  ls.helpOption('--help', 'display help for command').action(
    async (params: string[], o: LsSwitches & { jail?: string; selector?: string }) => {
      await withJails(program, io, async ({ jails: service }) => {
        // -j takes a name or a jid (jls(8))
        const one = o.jail !== undefined ? await service.get(o.jail) : undefined;
        let jails = one ? [one] : await service.list(o.selector !== undefined ? { selector: o.selector } : {});
        if (one && o.selector !== undefined)
          jails = (await service.list({ selector: o.selector })).filter((j) => j.name === one.name);
        // -j shows its jail, stopped or not
        const terminal = () => io === processIO && process.stdout.isTTY === true;
        const text = lsText(lsShown(jails, one ? { all: true } : o), params, o, terminal);
        if (text) io.out(text);
      });
    },
  );
};
