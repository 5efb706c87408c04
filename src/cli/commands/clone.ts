// jailyard clone — a new jail from a stopped one: its config, meta, env and a copy of its
// writable part (reflinks where the filesystem has them), with a new name, hostname and
// addresses. See docs/cli.md#clone and src/portable/clone.ts.
import type { RegisterVerb } from '../context.ts';
import { JailyardError, printableValue } from '../../errors.ts';
import { parseWords } from '../words.ts';
import { remoteOf, whileStopped, withLocal } from '../portable.ts';

interface Cloned {
  jail: { name: string; params: Record<string, unknown> };
  from: string;
  entries: number;
  bytes: number;
  notes: string[];
  started?: boolean;
}

export const register: RegisterVerb = (program, io) => {
  program
    .command('clone')
    .description('copy a stopped jail to a new one: jailyard clone NAME NEW [ip4.addr=...] [host.hostname=...]')
    .argument('<name>', 'the jail to copy')
    .argument('<new>', "the new jail's name")
    .argument('[param...]', 'parameters for the clone (param=value; "param=" drops one), meta/env operations')
    .option('--restart', 'stop the original for the copy if it runs, and start it again afterwards')
    .option('--start', 'start the clone')
    .option('--json', 'print the clone as JSON')
    .action(
      async (
        name: string,
        next: string,
        words: string[],
        o: { restart?: boolean; start?: boolean; json?: boolean },
      ) => {
        const parsed = parseWords(words, next);
        if ('name' in parsed.params)
          throw new JailyardError('JY_ERR_USAGE', 'the new name is the second argument, not name=', { param: 'name' });
        const report = (r: Cloned): void => {
          for (const n of r.notes) io.err(`${next}: note: ${printableValue(n)}`);
          const addr = [r.jail.params['ip4.addr'], r.jail.params['ip6.addr']].filter(Boolean).join(' ');
          io.err(
            `${next}: cloned from ${r.from}: ${r.entries} entries, ${r.bytes} bytes of files${addr ? `, ${addr}` : ''}`,
          );
        };
        const remote = remoteOf(program);
        if (remote) {
          const { cloneRemote } = await import('../../api/portable-client.ts');
          const r = await cloneRemote<Cloned>(
            remote.host,
            name,
            {
              name: next,
              params: words,
              ...(o.restart ? { restart: true } : {}),
              ...(o.start ? { start: true } : {}),
            },
            remote.token ? { token: remote.token } : {},
          );
          report(r);
          if (r.started !== undefined) io.err(`${next}: ${r.started ? 'started' : 'failed to start'}`);
          if (r.started === false) process.exitCode = 1;
          if (o.json) io.out(JSON.stringify(r.jail));
          return;
        }
        await withLocal(program, io, 'clone', async (w) => {
          const original = w.store.requireJailRef(name);
          const { cloneJail } = await import('../../portable/clone.ts');
          const r = await whileStopped(w, io, original.name, o.restart, () =>
            cloneJail(w.store, w.stateDir, w.store.requireJail(original.name), next, {
              params: parsed.params,
              meta: parsed.meta,
              env: parsed.env,
              mountsBelow: w.mountsBelow,
            }),
          );
          report(r);
          if (o.start) {
            const s = await w.service.start([next]);
            for (const x of s.outcomes) io.err(`${x.name}: ${x.status === 'ok' ? 'started' : x.message}`);
            if (!s.ok) process.exitCode = 1;
          }
          if (o.json) io.out(JSON.stringify(w.store.requireJail(next)));
        });
      },
    );
};
