// jailyard logs — a jail's console log: what its processes and its exec.* commands inside it
// wrote, the rotated part first; -f goes on like `tail -F`. See docs/cli.md#logs
import { StringDecoder } from 'node:string_decoder';
import type { RegisterVerb } from '../context.ts';
import { processIO, type CliIO } from '../context.ts';
import { JailyardError, printable } from '../../errors.ts';

/** Writes chunks as they come: bytes untouched to a pipe or file (like `tail`), escaped to a
 * terminal unless --raw; through the CLI's io (in-process callers) line by line. */
function writerFor(io: CliIO, escapeAll: boolean): { write(chunk: Buffer): Promise<void>; end(): void } {
  const direct = io === processIO;
  const decoder = new StringDecoder('utf8');
  let partial = '';
  const text = (chunk: Buffer): string => {
    const t = decoder.write(chunk);
    // a CR whose LF is in the next chunk: decided with the next chunk
    if (!escapeAll) return t;
    const all = partial + t;
    const keep = all.endsWith('\r') ? 1 : 0;
    partial = all.slice(all.length - keep);
    return printable(all.slice(0, all.length - keep));
  };
  let pendingLine = '';
  return {
    async write(chunk) {
      if (direct) {
        const out = escapeAll ? text(chunk) : chunk;
        if (!process.stdout.write(out)) {
          await new Promise<void>((resolve) => {
            process.stdout.once('drain', resolve);
            process.stdout.once('error', resolve);
          });
        }
        return;
      }
      const all = pendingLine + (escapeAll ? text(chunk) : decoder.write(chunk));
      const nl = all.lastIndexOf('\n');
      if (nl >= 0) io.out(all.slice(0, nl + 1));
      pendingLine = all.slice(nl + 1);
    },
    end() {
      const rest = escapeAll ? printable(partial + decoder.end()) : decoder.end();
      if (direct) {
        if (rest) process.stdout.write(rest);
      } else if (pendingLine + rest) io.out(pendingLine + rest);
    },
  };
}

export const register: RegisterVerb = (program, io) => {
  program
    .command('logs')
    .description("a jail's console log: its services' and exec.* commands' output (-f: follow it like tail -F)")
    .argument('<name>', 'the jail')
    .option(
      '-f, --follow',
      'go on with what the jail writes, across rotations, until interrupted or the jail is removed',
    )
    .option(
      '--since <time>',
      'only what was written since: a duration (30s, 5m, 1h30m, 2d), a time (ISO 8601) or @UNIXSECONDS',
    )
    .option('-n, --lines <n>', 'only the last N lines')
    .option(
      '--raw',
      "pass the jail's bytes to a terminal as they are (default: control characters are escaped on a terminal)",
    )
    .option('--escape', 'escape control characters also when the output is not a terminal')
    .action(
      async (
        name: string,
        o: { follow?: boolean; since?: string; lines?: string; raw?: boolean; escape?: boolean },
      ) => {
        const { parseSince, readConsoleLog } = await import('../../runtime/logs.ts');
        const sinceMs = o.since === undefined ? undefined : parseSince(o.since);
        if (o.lines !== undefined && !/^\d+$/.test(o.lines))
          throw new JailyardError('JY_ERR_USAGE', `-n takes a number of lines, not ${JSON.stringify(o.lines)}`, {
            param: '--lines',
          });
        const lines = o.lines === undefined ? undefined : Number(o.lines);
        const escaped = o.escape === true || (o.raw !== true && io === processIO && process.stdout.isTTY === true);
        const abort = new AbortController();
        // a reader gone (`jailyard logs -f J | head`) ends the follow
        const gone = () => abort.abort();
        if (io === processIO) process.stdout.once('error', gone);
        const read = {
          follow: o.follow === true,
          signal: abort.signal,
          ...(sinceMs !== undefined ? { sinceMs } : {}),
          ...(lines !== undefined ? { lines } : {}),
        };
        const host = program.opts<{ host?: string }>().host ?? process.env.JAILYARD_HOST;
        let chunks: AsyncIterable<Buffer>;
        if (host) {
          const { logs } = await import('../../api/client.ts');
          const token = process.env.JAILYARD_TOKEN;
          chunks = logs(host, name, { ...read, ...(token ? { token } : {}) });
        } else {
          const { withJails } = await import('../jails.ts');
          const { consoleLogFile } = await import('../../layout.ts');
          // an unknown jail is an error (a name or a jid, as exec takes); a jail that never
          // ran has no log yet: nothing to print (with -f: what it writes once it runs)
          const log = await withJails(program, io, async ({ jails, stateDir }) =>
            consoleLogFile(stateDir, (await jails.get(name)).name),
          );
          chunks = readConsoleLog(log, read);
        }
        const out = writerFor(io, escaped);
        try {
          for await (const chunk of chunks) {
            if (abort.signal.aborted) break;
            await out.write(chunk);
          }
        } finally {
          out.end();
          if (io === processIO) process.stdout.off('error', gone);
        }
      },
    );
};
