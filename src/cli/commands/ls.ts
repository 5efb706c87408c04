// jailyard ls — jls(8): list jails and their parameters. See docs/cli.md#ls
import type { RegisterVerb } from '../context.ts';
import { withJails } from '../jails.ts';
import { formatJls, jlsJson } from '../jls.ts';

export const register: RegisterVerb = (program, io) => {
  program
    .command('ls')
    .description('list jails like jls(8): running ones, or all with -a')
    .argument('[param...]', 'parameters to print (meta, env, meta.KEY, env.KEY, any jail parameter)')
    .option('-a, --all', 'include stopped jails')
    .option('-j, --jail <name>', 'only this jail')
    .option('-l, --selector <selector>', 'only jails whose labels match (app=www,version in (v1,v2))')
    .option('-h, --header', 'print a header line with the parameter names')
    .option('-n, --nameval', 'print name=value pairs')
    .option('-q, --quote', 'quote values that contain spaces or quotes')
    .option('-s, --settable', 'print parameters jail(8) can set, as name=value, quoted')
    .option('-v, --verbose', 'multi-line summary per jail')
    .option('-N, --name', 'show jail names instead of jids')
    .option('--json', 'libxo-style JSON on stdout')
    .helpOption('--help', 'display help for command')
    .action(
      async (
        params: string[],
        o: {
          all?: boolean;
          jail?: string;
          selector?: string;
          header?: boolean;
          nameval?: boolean;
          quote?: boolean;
          settable?: boolean;
          verbose?: boolean;
          name?: boolean;
          json?: boolean;
        },
      ) => {
        await withJails(program, io, async ({ jails: service }) => {
          // -j takes a name or a jid (jls(8))
          const one = o.jail !== undefined ? await service.get(o.jail) : undefined;
          let jails = one ? [one] : await service.list(o.selector !== undefined ? { selector: o.selector } : {});
          if (!o.all && !one) jails = jails.filter((j) => j.state !== 'stopped');
          if (one && o.selector !== undefined)
            jails = (await service.list({ selector: o.selector })).filter((j) => j.name === one.name);
          // in a cluster, `node` is where the jail is placed (empty on one host)
          jails = jails.map((j) => (j.node !== undefined ? { ...j, params: { ...j.params, node: j.node } } : j));
          const opts = {
            params,
            header: !!o.header,
            nameval: !!(o.nameval || o.settable),
            quoted: !!(o.quote || o.settable),
            skip: !!o.settable,
            verbose: !!o.verbose,
            jailName: !!o.name,
          };
          if (o.json) io.out(jlsJson(jails, opts));
          else {
            const text = formatJls(jails, opts);
            if (text) io.out(text);
          }
        });
      },
    );
};
