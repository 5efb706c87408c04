// jailyard quickstart — the main job (`npm start`): a skeleton from the host's root, the
// daemon on the embedded store in a local folder, three thin `www` jails behind a real
// HAProxy kept in sync by the controller; Ctrl-C takes everything down again.
// See README.md and docs/cli.md#quickstart
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { RegisterVerb } from '../context.ts';
import { JailyardError, describeError } from '../../errors.ts';
import { trapStopSignals } from '../signals.ts';
import type { BatchResult } from '../../runtime/types.ts';
import type { Store } from '../../store/types.ts';
import type { HaproxyProcess } from '../../lb/haproxy-process.ts';

const TEMPLATE = new URL('../../../examples/www.conf', import.meta.url).pathname;
/** The port the jails of examples/www.conf serve HTTP on (its exec.start), HAProxy's backend port. */
const WWW_PORT = 8080;
/** HAProxy's frontend port on 127.0.0.1 unless --port says otherwise (the README's URL). */
const DEFAULT_FRONTEND_PORT = 8080;
const SELECTOR = 'app=www';

type Say = (text: string) => void;
type Service = ReturnType<typeof import('../../runtime/service.ts').createLocalService>;

/** What the quick start undoes on the way out, newest first. */
class Cleanups {
  readonly #list: { what: string; run: () => Promise<unknown> }[] = [];

  push(what: string, run: () => Promise<unknown>): void {
    this.#list.push({ what, run });
  }

  /** Runs every clean-up, newest first; a failing one is reported and the rest still run. */
  async run(say: Say): Promise<void> {
    for (const c of this.#list.reverse()) {
      say(`stopping ${c.what}`);
      try {
        await c.run();
      } catch (e) {
        say(`${c.what}: ${describeError(e)}`);
        process.exitCode = 1;
      }
    }
    this.#list.length = 0;
  }
}

/** The failed outcomes of a batch as one error (the batch's own lines say which jail). */
function batchError(r: BatchResult): JailyardError {
  const failed = r.outcomes.filter((x) => x.status !== 'ok').map((x) => x.message);
  return new JailyardError('JY_ERR_STEP_FAILED', failed.join('; '));
}

/** The daemon on a unix socket, HAProxy on `port`, and the controller keeping its pool. */
async function startServing(
  state: string,
  port: number,
  store: Store,
  service: Service,
  cleanups: Cleanups,
  say: Say,
): Promise<{ socketPath: string; hp: HaproxyProcess }> {
  const { startDaemon } = await import('../../api/daemon.ts');
  const { guestDir } = await import('../../layout.ts');
  const { startHaproxy } = await import('../../lb/haproxy-process.ts');
  const { runHaproxyController } = await import('../../lb/controller.ts');
  const { apiSource } = await import('../../lb/source.ts');

  const socketPath = join(state, 'jailyard.sock');
  const daemon = await startDaemon({
    store,
    service,
    socketPath,
    guestRoot: (n) => guestDir(state, n),
    logger: { level: 'warn' },
  });
  cleanups.push('the daemon', () => daemon.close());
  say(`daemon on unix://${socketPath}`);

  const hp = await startHaproxy({ dir: join(state, 'haproxy'), port, backend: 'www' });
  cleanups.push(`haproxy (pid ${hp.pid})`, () => hp.stop());
  say(`haproxy (pid ${hp.pid}) on http://127.0.0.1:${port}/, admin socket ${hp.adminSocket}`);

  const abort = new AbortController();
  const controller = runHaproxyController({
    source: apiSource(`unix://${socketPath}`),
    selector: SELECTOR,
    backend: 'www',
    adminSocket: hp.adminSocket,
    port: WWW_PORT,
    signal: abort.signal,
    log: (l) => say(`lb: ${l}`),
  });
  cleanups.push('the load balancer controller', async () => {
    abort.abort();
    await controller.catch(() => {});
  });
  return { socketPath, hp };
}

/** Creates the missing www-v1-N jails from the template and starts the stopped ones. */
async function startReplicas(store: Store, service: Service, replicas: number): Promise<string[]> {
  const { freeAddress, specForNewJail } = await import('../../lb/rollout.ts');
  const { parseConfString } = await import('../../conf/evaluate.ts');
  const template = parseConfString(readFileSync(TEMPLATE, 'utf8'), TEMPLATE)[0]!;
  const names: string[] = [];
  for (let i = 1; i <= replicas; i++) {
    const name = `www-v1-${i}`;
    if (!store.getJail(name)) {
      await service.create({
        spec: specForNewJail(template, name, freeAddress(store.listJails())),
        meta: [
          { op: 'set', key: 'port', value: String(WWW_PORT) },
          { op: 'set', key: 'version', value: 'v1' },
          { op: 'set', key: 'app', value: 'www' },
        ],
        env: [{ op: 'set', key: 'version', value: 'v1' }],
      });
    }
    names.push(name);
  }
  const started = await service.start(
    names.filter((n) => store.requireJail(n).state === 'stopped'),
    { parallel: 3 },
  );
  if (!started.ok) throw batchError(started);
  return names;
}

/** What to try once everything is up. */
function nextSteps(state: string, replicas: number, port: number, socketPath: string, adminSocket: string): string {
  const bin = existsSync(join(process.cwd(), 'bin/jailyard.js')) ? 'node bin/jailyard.js' : 'jailyard';
  const st = `--state ${state}`;
  return [
    '',
    `jailyard is up: ${replicas} thin jails (app=www, version=v1) behind HAProxy.`,
    '',
    `  curl http://127.0.0.1:${port}/env            # a jail answers with its env (version=v1)`,
    `  ${bin} ${st} ls -v                            # the jails, jls(8) style`,
    `  ${bin} ${st} ls -l app=www name state meta.version ip4.addr`,
    `  curl --unix-socket ${socketPath} http://x/v1/jails?labelSelector=app%3Dwww`,
    `  echo "show servers state www" | socat - ${adminSocket}   # HAProxy's pool (if socat is installed)`,
    '',
    '  # replace v1 by v2 with zero failed requests, while HAProxy follows:',
    `  ${bin} ${st} --host unix://${socketPath} rollout -l app=www --from version=v1 --to version=v2 --replicas ${replicas} \\`,
    `      --template ${TEMPLATE} --port ${WWW_PORT} --admin-socket ${adminSocket}`,
    '',
    'Ctrl-C stops everything and leaves nothing mounted.',
    '',
  ].join('\n');
}

export const register: RegisterVerb = (program, io) => {
  program
    .command('quickstart')
    .description('bring up 3 thin www jails behind HAProxy with the daemon; Ctrl-C stops everything')
    .option('--port <port>', 'HAProxy frontend port on 127.0.0.1', String(DEFAULT_FRONTEND_PORT))
    .option('--replicas <n>', 'how many www jails', '3')
    .option('--exit-when-ready', 'tear everything down as soon as it is up (for tests)')
    .action(async (o: { port: string; replicas: string; exitWhenReady?: boolean }) => {
      if (process.getuid?.() !== 0)
        throw new JailyardError('JY_ERR_NOT_ROOT', 'the quick start makes real jails: run it as root');
      const opt = program.opts<{ state?: string }>();
      const state = resolve(opt.state ?? process.env.JAILYARD_STATE ?? '.jailyard');
      const port = Number(o.port);
      const replicas = Number(o.replicas);
      const say: Say = (t) => io.err(`quickstart: ${t}`);

      const { openStore } = await import('../../store/sqlite.ts');
      const { createLocalService } = await import('../../runtime/service.ts');
      const { skeletonHooks } = await import('../../skeleton/hooks.ts');
      const { createSkeleton, listSkeletons } = await import('../../skeleton/registry.ts');
      const { waitForServer, serverNameOf } = await import('../../lb/controller.ts');
      const { loadDriver } = await import('../../platform/index.ts');

      const driver = await loadDriver({ stateDir: state });
      await driver.preflight();
      const store = openStore(state);
      const service = createLocalService({
        store,
        stateDir: state,
        driver,
        skeletons: skeletonHooks(),
        progress: (j, t) => say(`${j}: ${t}`),
      });
      const cleanups = new Cleanups();

      const stop = trapStopSignals(io, 'the quick start');
      try {
        if (!listSkeletons(state).some((s) => s.name === 'host')) {
          say('creating skeleton "host" from / (a reference: nothing is copied)');
          await createSkeleton(state, 'host', { type: 'from', path: '/' });
        }
        const { socketPath, hp } = await startServing(state, port, store, service, cleanups, say);
        // jails go before haproxy and the daemon (cleanups run in reverse)
        cleanups.push('the www jails', async () => {
          const all = await service.list({ selector: SELECTOR });
          const r = await service.remove(
            all.map((j) => j.name),
            { parallel: 3 },
          );
          if (!r.ok) throw batchError(r);
          // the rollouts' progress speaks of jails that are gone now
          rmSync(join(state, 'rollouts'), { recursive: true, force: true });
        });

        const names = await startReplicas(store, service, replicas);
        for (const n of names) await waitForServer(hp.runtime, 'www', serverNameOf(n), 'serving', 30_000);
        const answer = await fetch(`http://127.0.0.1:${port}/env`).then((r) => r.text());
        say(`HAProxy answered GET /env with: ${answer.trim().replace(/\n/g, ', ')}`);
        io.err(nextSteps(state, replicas, port, socketPath, hp.adminSocket));
        if (!o.exitWhenReady) await stop.requested;
      } finally {
        // Signals that arrive from here on only say that clean-up is under way.
        try {
          await cleanups.run(say);
          store.close();
          say('everything stopped');
        } finally {
          stop.dispose();
        }
      }
    });
};
