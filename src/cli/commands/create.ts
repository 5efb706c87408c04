// jailyard create — define a jail from NAME param=value ... (jail(8)'s command-line form).
// See docs/cli.md#create
import type { RegisterVerb } from '../context.ts';
import { withSession } from '../jails.ts';
import { parseWords } from '../words.ts';

export const register: RegisterVerb = (program, io) => {
  program
    .command('create')
    .description('define a jail: jailyard create NAME [param=value ...] (meta=..., env.KEY=...)')
    .argument('<name>', 'jail name ("parent.child" for a nested jail)')
    .argument('[param...]', 'parameters as param=value, bare booleans (persist, nopersist), meta/env key operations')
    .option('--start', 'start the jail after creating it')
    .option('--json', 'print the created jail as JSON')
    .action(async (name: string, words: string[], o: { start?: boolean; json?: boolean }) => {
      const w = parseWords(words, name);
      await withSession(
        program,
        io,
        async ({ service }) => {
          const j = await service.create({
            spec: { name, params: { name, ...w.params } },
            meta: w.meta,
            env: w.env,
          });
          io.err(`${name}: created`);
          if (o.start) {
            const r = await service.start([j.name]);
            for (const x of r.outcomes) io.err(`${x.name}: ${x.status === 'ok' ? 'started' : x.message}`);
            if (!r.ok) {
              process.exitCode = 1;
              // like jail -c: a jail whose start failed is not left defined (its dependencies
              // that did start stay up: they are jails of their own)
              const gone = await service.remove([j.name]);
              for (const x of gone.outcomes) io.err(`${x.name}: ${x.status === 'ok' ? 'removed' : x.message}`);
              return;
            }
          }
          if (o.json) io.out(JSON.stringify(await service.get(j.name)));
        },
        { progress: !!o.start },
      );
    });
};
