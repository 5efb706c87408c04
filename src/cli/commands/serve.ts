// jailyard serve — see docs/api.md and docs/cli.md#serve
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JailyardError } from '../../errors.ts';
import type { RegisterVerb } from '../context.ts';
import { openSession } from '../jails.ts';
import type { ApiLimits } from '../../api/limits.ts';

interface ServeOptions {
  socket?: string;
  listen?: string;
  tokenFile?: string;
  bookmarkInterval: string;
  maxConnections?: string;
  maxClientConnections?: string;
  guestMaxConnections?: string;
  headersTimeout?: string;
  requestTimeout?: string;
  idleTimeout?: string;
  authTimeout?: string;
}

/** The limit options given on the command line, over the defaults file's "api" section. */
function limitOptions(o: ServeOptions): Partial<ApiLimits> {
  const out: Partial<ApiLimits> = {};
  const count = (flag: string, text: string | undefined, name: keyof ApiLimits): void => {
    if (text === undefined) return;
    const n = Number(text);
    if (!Number.isInteger(n) || n <= 0)
      throw new JailyardError('JY_ERR_USAGE', `${flag} must be a positive integer, got "${text}"`, { param: flag });
    out[name] = n;
  };
  const seconds = (flag: string, text: string | undefined, name: keyof ApiLimits): void => {
    if (text === undefined) return;
    const ms = Math.round(Number(text) * 1000);
    if (!(ms > 0))
      throw new JailyardError('JY_ERR_USAGE', `${flag} must be a positive number of seconds, got "${text}"`, {
        param: flag,
      });
    out[name] = ms;
  };
  count('--max-connections', o.maxConnections, 'maxConnections');
  count('--max-client-connections', o.maxClientConnections, 'maxConnectionsPerClient');
  count('--guest-max-connections', o.guestMaxConnections, 'guestMaxConnections');
  seconds('--headers-timeout', o.headersTimeout, 'headersTimeoutMs');
  seconds('--request-timeout', o.requestTimeout, 'requestTimeoutMs');
  seconds('--idle-timeout', o.idleTimeout, 'keepAliveTimeoutMs');
  seconds('--auth-timeout', o.authTimeout, 'authTimeoutMs');
  return out;
}

export const register: RegisterVerb = (program, io) => {
  program
    .command('serve')
    .description(
      'run the daemon: HTTP API and watch stream on a unix socket (and TCP with a token), guest sockets per jail',
    )
    .option(
      '--socket <path>',
      'unix socket (mode 0600; default /var/run/jailyard.sock, or <state>/jailyard.sock with --state/$JAILYARD_STATE)',
    )
    .option('--listen <host:port>', 'also listen on TCP (loopback unless a host is given); needs --token-file')
    .option('--token-file <file>', 'file holding the bearer token TCP clients must send')
    .option('--bookmark-interval <sec>', 'seconds between BOOKMARK events on idle watch streams', '30')
    // defaults: the "api" section of defaults/defaults.json
    .option('--max-connections <n>', 'open connections per listener (TCP, unix socket), watch streams included')
    .option('--max-client-connections <n>', 'open TCP connections per client address')
    .option('--guest-max-connections <n>', 'open connections per guest socket')
    .option('--headers-timeout <sec>', "time to send a request's headers")
    .option('--request-timeout <sec>', 'time to send a whole request')
    .option('--idle-timeout <sec>', 'idle time allowed between requests on a kept-alive connection')
    .option('--auth-timeout <sec>', 'TCP: time to send a first request with the right token')
    .action(async (o: ServeOptions) => {
      if (program.opts<{ host?: string }>().host)
        throw new JailyardError('JY_ERR_USAGE', 'serve runs the daemon: --host makes no sense here', {
          param: '--host',
        });
      const { startDaemon, parseListen } = await import('../../api/daemon.ts');
      const { guestDir } = await import('../../layout.ts');
      const bookmarkIntervalSec = Number(o.bookmarkInterval);
      if (!(bookmarkIntervalSec > 0))
        throw new JailyardError(
          'JY_ERR_USAGE',
          `--bookmark-interval must be a positive number, got "${o.bookmarkInterval}"`,
          { param: '--bookmark-interval' },
        );
      const listen = o.listen ? parseListen(o.listen) : undefined;
      const { apiLimits } = await import('../../api/limits.ts');
      // checked before anything is opened
      const limits = apiLimits(limitOptions(o));
      let token: string | undefined;
      if (o.tokenFile) {
        try {
          token = readFileSync(o.tokenFile, 'utf8').trim();
        } catch (e) {
          throw new JailyardError('JY_ERR_USAGE', `cannot read the token file: ${(e as Error).message}`, {
            param: '--token-file',
          });
        }
        if (!token) throw new JailyardError('JY_ERR_USAGE', 'the token file is empty', { param: '--token-file' });
      }
      if (listen && !token)
        throw new JailyardError('JY_ERR_USAGE', '--listen needs --token-file', { param: '--token-file' });

      const explicitState = program.opts<{ state?: string }>().state ?? process.env.JAILYARD_STATE;
      const session = await openSession(program, io);
      const socketPath =
        o.socket ?? (explicitState ? join(session.stateDir, 'jailyard.sock') : '/var/run/jailyard.sock');
      if (!session.store) throw new JailyardError('JY_ERR_USAGE', 'serve needs the local store', { step: 'serve' });
      // the jail(8) and jls(8) jails run inside themselves, answered on their guest sockets
      const { runJail, runJls } = await import('../freebsd/index.ts');
      const { rootsFrom } = await import('../../api/guest-tools.ts');
      const daemon = await startDaemon({
        store: session.store,
        service: session.service,
        socketPath,
        guestRoot: (name) => guestDir(session.stateDir, name),
        tools: { front: { jail: runJail, jls: runJls }, scope: { rootOf: rootsFrom(session.stateDir, session.store) } },
        // the host's own jail(8), jls(8) and ls for native/jy-ctl
        hostTools: (await import('../host-front.ts')).hostFront(session.service, session.stateDir),
        bookmarkIntervalSec,
        limits,
        // warnings and errors (failed polls, guest sockets, internal errors) as JSON lines
        logger: { level: 'warn' },
        ...(listen ? { listen } : {}),
        ...(token ? { token } : {}),
      });
      io.err(
        `jailyard: serving on unix://${socketPath}${daemon.tcp ? ` and http://${daemon.tcp.host}:${daemon.tcp.port}` : ''}`,
      );
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
