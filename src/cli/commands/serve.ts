// jailyard serve — see docs/api.md and docs/cli.md#serve
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JailyardError } from '../../errors.ts';
import type { RegisterVerb } from '../context.ts';
import { openSession } from '../jails.ts';

interface ServeOptions {
  socket?: string;
  listen?: string;
  tokenFile?: string;
  bookmarkInterval: string;
}

export const register: RegisterVerb = (program, io) => {
  program
    .command('serve')
    .description('run the daemon: HTTP API and watch stream on a unix socket (and TCP with a token), guest sockets per jail')
    .option('--socket <path>', 'unix socket (mode 0600; default /var/run/jailyard.sock, or <state>/jailyard.sock with --state/$JAILYARD_STATE)')
    .option('--listen <host:port>', 'also listen on TCP (loopback unless a host is given); needs --token-file')
    .option('--token-file <file>', 'file holding the bearer token TCP clients must send')
    .option('--bookmark-interval <sec>', 'seconds between BOOKMARK events on idle watch streams', '30')
    .action(async (o: ServeOptions) => {
      if (program.opts<{ host?: string }>().host) throw new JailyardError('JY_ERR_USAGE', 'serve runs the daemon: --host makes no sense here', { param: '--host' });
      const { startDaemon, parseListen } = await import('../../api/daemon.ts');
      const { guestDir } = await import('../../runtime/jailplan.ts');
      const bookmarkIntervalSec = Number(o.bookmarkInterval);
      if (!(bookmarkIntervalSec > 0)) throw new JailyardError('JY_ERR_USAGE', `--bookmark-interval must be a positive number, got "${o.bookmarkInterval}"`, { param: '--bookmark-interval' });
      const listen = o.listen ? parseListen(o.listen) : undefined;
      let token: string | undefined;
      if (o.tokenFile) {
        try {
          token = readFileSync(o.tokenFile, 'utf8').trim();
        } catch (e) {
          throw new JailyardError('JY_ERR_USAGE', `cannot read the token file: ${(e as Error).message}`, { param: '--token-file' });
        }
        if (!token) throw new JailyardError('JY_ERR_USAGE', 'the token file is empty', { param: '--token-file' });
      }
      if (listen && !token) throw new JailyardError('JY_ERR_USAGE', '--listen needs --token-file', { param: '--token-file' });

      const explicitState = program.opts<{ state?: string }>().state ?? process.env.JAILYARD_STATE;
      const session = await openSession(program, io);
      const socketPath = o.socket ?? (explicitState ? join(session.stateDir, 'jailyard.sock') : '/var/run/jailyard.sock');
      if (!session.store) throw new JailyardError('JY_ERR_USAGE', 'serve needs the local store', { step: 'serve' });
      const daemon = await startDaemon({
        store: session.store,
        service: session.service,
        socketPath,
        guestRoot: (name) => guestDir(session.stateDir, name),
        bookmarkIntervalSec,
        // warnings and errors (failed polls, guest sockets, internal errors) as JSON lines
        logger: { level: 'warn' },
        ...(listen ? { listen } : {}),
        ...(token ? { token } : {}),
      });
      io.err(`jailyard: serving on unix://${socketPath}${daemon.tcp ? ` and http://${daemon.tcp.host}:${daemon.tcp.port}` : ''}`);
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          process.off('SIGTERM', onTerm);
          process.off('SIGINT', onInt);
          io.err(`jailyard: ${signal}, closing`);
          daemon.close().finally(() => {
            session.close();
            resolve();
          });
        };
        const onTerm = () => stop('SIGTERM');
        const onInt = () => stop('SIGINT');
        process.on('SIGTERM', onTerm);
        process.on('SIGINT', onInt);
      });
    });
};
