// jailyard lb — see docs/lb.md
import { JailyardError } from '../../errors.ts';
import type { RegisterVerb } from '../context.ts';
import { runHaproxyController } from '../../lb/controller.ts';
import { apiSource, pollingSource } from '../../lb/source.ts';
import { openSession } from '../jails.ts';

export const register: RegisterVerb = (program, io) => {
  const lb = program
    .command('lb')
    .description('keep a load balancer pool equal to the running, healthy jails matching a selector');
  lb.command('haproxy')
    .description('drive a HAProxy backend through its Runtime API (admin socket) until SIGINT/SIGTERM')
    .requiredOption('-l, --selector <selector>', 'jails to serve, e.g. app=www')
    .requiredOption('--admin-socket <path>', "HAProxy's `stats socket ... level admin`")
    .option('--backend <name>', 'HAProxy backend (balance roundrobin, option httpchk)', 'www')
    .option('--port <port>', 'port for jails without a `port` label')
    .option('--drain-timeout <seconds>', 'longest wait for sessions to end before cutting them', '30')
    .option('--nested', "serve matching nested jails too (their labels are their parent jail's to write)")
    .action(
      async (o: {
        selector: string;
        adminSocket: string;
        backend: string;
        port?: string;
        drainTimeout: string;
        nested?: boolean;
      }) => {
        const port = o.port === undefined ? undefined : Number(o.port);
        if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
          throw new JailyardError('JY_ERR_USAGE', `--port must be 1..65535, got "${o.port}"`, { param: 'port' });
        }
        const host = program.opts<{ host?: string }>().host ?? process.env.JAILYARD_HOST;
        const log = (line: string) => io.err(`lb: ${line}`);
        const abort = new AbortController();
        const stop = () => abort.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        // with a daemon: its watch stream; without one: poll the local store
        const session = host ? undefined : await openSession(program, io);
        try {
          const token = process.env.JAILYARD_TOKEN;
          const source = host
            ? apiSource(host, { log, ...(token ? { token } : {}) })
            : pollingSource(session!.service, { log });
          log(`serving ${o.selector} in backend ${o.backend} via ${o.adminSocket}`);
          await runHaproxyController({
            source,
            selector: o.selector,
            backend: o.backend,
            adminSocket: o.adminSocket,
            ...(port !== undefined ? { port } : {}),
            ...(o.nested ? { nested: true } : {}),
            drainTimeoutMs: Number(o.drainTimeout) * 1000,
            signal: abort.signal,
            log,
          });
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          session?.close();
        }
      },
    );
};
