// jailyard set — change parameters, meta and env of a jail (jail -m). See docs/cli.md#set
import type { RegisterVerb } from '../context.ts';
import { ifRevisionOption, targets, withSession } from '../jails.ts';
import { parseWords } from '../words.ts';

export const register: RegisterVerb = (program, io) => {
  program
    .command('set')
    .description('modify a jail in place like jail -m: jailyard set NAME param=value meta.KEY=VALUE env.KEY ...')
    .argument('[name]', 'the jail (or use -l)')
    .argument('[param...]', 'param=value, meta=..., meta.KEY=VALUE, meta.KEY (remove), env.KEY=...')
    .option('-l, --selector <selector>', 'apply to every jail whose labels match')
    .option(
      '--unset <param>',
      'remove a parameter (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--if-revision <n>', 'only if the jail is still at this revision (compare-and-swap)')
    .option('--json', 'print the jail(s) after the change as JSON')
    .action(
      async (
        name: string | undefined,
        words: string[],
        o: { selector?: string; unset: string[]; ifRevision?: string; json?: boolean },
      ) => {
        // with -l the first word is a parameter, not a name
        if (o.selector !== undefined && name !== undefined) {
          words = [name, ...words];
          name = undefined;
        }
        const w = parseWords(words, name);
        const cas = ifRevisionOption(o.ifRevision);
        await withSession(program, io, async ({ service }) => {
          const names = await targets(service, name ? [name] : [], o.selector);
          const out = [];
          for (const n of names) {
            const j = await service.modify(n, { params: w.params, unset: o.unset, meta: w.meta, env: w.env }, cas);
            io.err(`${n}: updated (revision ${j.revision})`);
            out.push(j);
          }
          if (o.json) io.out(JSON.stringify(name && !o.selector ? out[0] : out));
        });
      },
    );
};
