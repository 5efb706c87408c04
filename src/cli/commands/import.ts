// jailyard import — a jail from an export archive (hostile input: checked entry by entry,
// nothing is left when it is refused). With --host the archive is sent to the daemon. See
// docs/cli.md#import and src/portable/import.ts.
import { resolve } from 'node:path';
import type { RegisterVerb } from '../context.ts';
import { JailyardError, printableValue } from '../../errors.ts';
import { parseSize } from '../../conf/spec.ts';
import { parseWords } from '../words.ts';
import { remoteOf, withLocal } from '../portable.ts';

interface Imported {
  jail: { name: string };
  skeleton: { name: string; version: number; made: boolean } | null;
  entries: number;
  bytes: number;
  notes: string[];
  started?: boolean;
}

export const register: RegisterVerb = (program, io) => {
  program
    .command('import')
    .description('make a jail from an export archive: jailyard import FILE [--name NEW] [param=value ...]')
    .argument('<file>', 'the archive (jailyard export)')
    .argument(
      '[param...]',
      'parameters replacing the archive\'s (param=value; "param=" drops one), meta/env operations',
    )
    .option('--name <name>', "the new jail's name (default: the archive's)")
    .option(
      '--trust',
      'accept parameters that act on this host (exec.* host commands, mounts, path, ...) from the archive',
    )
    .option('--max-size <size>', 'refuse an archive whose files need more than this (default: the free space)')
    .option('--start', 'start the jail after importing it')
    .option('--json', 'print the imported jail as JSON')
    .action(
      async (
        file: string,
        words: string[],
        o: { name?: string; trust?: boolean; maxSize?: string; start?: boolean; json?: boolean },
      ) => {
        const parsed = parseWords(words, o.name);
        if ('name' in parsed.params)
          throw new JailyardError('JY_ERR_USAGE', 'give the new name with --name, not name=', { param: 'name' });
        if (o.maxSize) parseSize(o.maxSize, { param: '--max-size' });
        const report = (r: Imported): void => {
          const name = r.jail.name;
          if (r.skeleton)
            io.err(
              `${name}: skeleton ${r.skeleton.name}@${r.skeleton.version}${r.skeleton.made ? ' made from the archive' : ' (same digest)'}`,
            );
          for (const n of r.notes) io.err(`${name}: note: ${printableValue(n)}`);
          io.err(`${name}: imported from ${file}: ${r.entries} entries, ${r.bytes} bytes of files`);
        };
        const remote = remoteOf(program);
        if (remote) {
          const { importRemote } = await import('../../api/portable-client.ts');
          const r = await importRemote<Imported>(
            remote.host,
            resolve(file),
            {
              words,
              ...(o.name ? { name: o.name } : {}),
              ...(o.trust ? { trust: true } : {}),
              ...(o.maxSize ? { maxSize: o.maxSize } : {}),
              ...(o.start ? { start: true } : {}),
            },
            remote.token ? { token: remote.token } : {},
          );
          report(r);
          if (r.started !== undefined) io.err(`${r.jail.name}: ${r.started ? 'started' : 'failed to start'}`);
          if (r.started === false) process.exitCode = 1;
          if (o.json) io.out(JSON.stringify(r.jail));
          return;
        }
        await withLocal(program, io, 'import', async (w) => {
          const { importJail } = await import('../../portable/import.ts');
          const r = await importJail(w.store, w.stateDir, resolve(file), {
            ...(o.name ? { name: o.name } : {}),
            params: parsed.params,
            meta: parsed.meta,
            env: parsed.env,
            ...(o.trust ? { trust: true } : {}),
            ...(o.maxSize ? { maxBytes: parseSize(o.maxSize, { param: '--max-size' }) } : {}),
          });
          report(r);
          const name = r.jail.name;
          if (o.start) {
            const s = await w.service.start([name]);
            for (const x of s.outcomes) io.err(`${x.name}: ${x.status === 'ok' ? 'started' : x.message}`);
            if (!s.ok) process.exitCode = 1;
          }
          if (o.json) io.out(JSON.stringify(w.store.requireJail(name)));
        });
      },
    );
};
