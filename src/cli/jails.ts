// What the jail verbs share: the service they talk to (local store + driver, or a daemon with
// --host), how targets are chosen (names or -l selector), how a batch result is printed.

import type { Command } from 'commander';
import { JailyardError } from '../errors.ts';
import type { JailService, BatchResult } from '../runtime/types.ts';
import type { Store, WriteOptions } from '../store/types.ts';
import type { MountPlan } from '../skeleton/plan.ts';
import { stateDir, type CliIO } from './context.ts';
import { interruptible } from './signals.ts';

export interface Session {
  service: JailService;
  /** Mounts a plan for a stopped jail for a while (local sessions only). */
  mountTransient?: (name: string, plan: MountPlan) => Promise<() => Promise<void>>;
  /** The local store (undefined with --host). */
  store?: Store;
  stateDir: string;
  close(): void;
}

/** Opens the service the verbs work on: the daemon named by --host, else the local store. */
export async function openSession(program: Command, io: CliIO, opts: { progress?: boolean } = {}): Promise<Session> {
  const host = program.opts<{ host?: string }>().host ?? process.env.JAILYARD_HOST;
  const dir = stateDir(program);
  if (host) {
    const { createRemoteService } = await import('../api/client.ts');
    const token = process.env.JAILYARD_TOKEN;
    return { service: createRemoteService(host, token ? { token } : {}), stateDir: dir, close: () => {} };
  }
  const { openStore } = await import('../store/sqlite.ts');
  const { createLocalService } = await import('../runtime/service.ts');
  const { skeletonHooks } = await import('../skeleton/hooks.ts');
  const store = openStore(dir);
  const service = createLocalService({
    store,
    stateDir: dir,
    skeletons: skeletonHooks(),
    ...(opts.progress ? { progress: (jail: string, text: string) => io.err(`${jail}: ${text}`) } : {}),
  });
  return {
    service,
    store,
    stateDir: dir,
    mountTransient: (name, plan) => service.mountTransient(name, plan),
    close: () => store.close(),
  };
}

/** Jail names from the arguments, or from `-l/--selector` (every jail whose labels match). */
export async function targets(service: JailService, names: string[], selector: string | undefined): Promise<string[]> {
  if (selector !== undefined) {
    const matched = (await service.list({ selector })).map((j) => j.name);
    return [...new Set([...names, ...matched])];
  }
  if (names.length === 0) throw new JailyardError('JY_ERR_USAGE', 'name at least one jail, or select jails with -l');
  return names;
}

/** `--if-revision N` as write options: {} without it, a usage error unless N is an integer. */
export function ifRevisionOption(text: string | undefined): WriteOptions {
  if (text === undefined) return {};
  const ifRevision = Number(text);
  if (!Number.isInteger(ifRevision))
    throw new JailyardError('JY_ERR_USAGE', `--if-revision needs an integer, not ${JSON.stringify(text)}`);
  return { ifRevision };
}

/** One line per jail to stderr (jail(8) style), JSON on stdout with --json; sets the exit code. */
export function printBatch(io: CliIO, verb: string, result: BatchResult, json: boolean): void {
  if (json) io.out(JSON.stringify(result));
  for (const o of result.outcomes) {
    if (o.status === 'ok') io.err(`${o.name}: ${verb}`);
    else io.err(`${o.name}: ${o.status === 'skipped' ? '' : 'failed: '}${o.message ?? o.status}`);
  }
  if (!result.ok) process.exitCode = 1;
}

/** Runs a verb's body with a session, closing it whatever happens. */
export async function withSession<T>(
  program: Command,
  io: CliIO,
  fn: (s: Session) => Promise<T>,
  opts: { progress?: boolean } = {},
): Promise<T> {
  const s = await openSession(program, io, opts);
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}

/** What a verb that only reads jails uses: `list` and `get`. */
export type JailReader = Pick<JailService, 'list' | 'get'>;

/**
 * Runs a verb that only reads jails (ls, exec) with the local store alone, without loading
 * the service, driver or skeleton code (most of such a command's time was loading code it
 * did not run); with --host, the daemon's service.
 */
export async function withJails<T>(
  program: Command,
  io: CliIO,
  fn: (s: { jails: JailReader; store?: Store; stateDir: string }) => Promise<T>,
): Promise<T> {
  const served = servedReaders.get(program);
  if (served) return fn({ jails: await derivedReader(served), stateDir: stateDir(program) });
  if (program.opts<{ host?: string }>().host ?? process.env.JAILYARD_HOST)
    return withSession(program, io, async ({ service, stateDir }) =>
      fn({ jails: await derivedReader(service), stateDir }),
    );
  const dir = stateDir(program);
  const { openStore } = await import('../store/sqlite.ts');
  // read-only through node:sqlite until something writes (no better-sqlite3 for a plain ls)
  const store = openStore(dir, { readOnly: true });
  try {
    // jails without persist whose processes all exited go away before anyone reads them
    // (runtime/lifecycle.ts reapDied): only then is the service (and the driver) loaded
    const { mayHaveDied } = await import('../runtime/params.ts');
    if (store.listJails().some(mayHaveDied)) {
      const { createLocalService } = await import('../runtime/service.ts');
      await createLocalService({ store, stateDir: dir }).list();
    }
    const jails: JailReader = {
      list: async (filter) => store.listJails(filter),
      get: async (ref) => store.requireJailRef(ref),
    };
    return await fn({ jails: await derivedReader(jails), store, stateDir: dir });
  } finally {
    store.close();
  }
}

/** The reader of a program the daemon runs for a client (main's `served`: src/cli/host-front.ts):
 * its own service, instead of a store the verb would open. */
export const servedReaders = new WeakMap<Command, JailReader>();

/** A reader whose records carry what jls(8) reads beside the stored parameters:
 * children.max's default, children.cur and parent (runtime/params.ts withDerived), for every
 * reader of the CLI (ls, the jls front). */
export async function derivedReader(jails: JailReader): Promise<JailReader> {
  const { withDerived } = await import('../runtime/params.ts');
  return {
    list: async (filter) => {
      const some = await jails.list(filter);
      return withDerived(some, filter?.selector !== undefined ? await jails.list() : some);
    },
    get: async (ref) => withDerived([await jails.get(ref)], await jails.list())[0]!,
  };
}

/** After a signal: which jails a stop or restart did not finish, and the command that does. */
export function unfinishedBatch(verb: string, requested: string[], result: BatchResult | undefined): string[] {
  const left = result ? result.outcomes.filter((x) => x.status !== 'ok').map((x) => x.name) : requested;
  if (!left.length) return [`every jail was ${verb === 'stop' ? 'stopped' : 'restarted'}`];
  return [
    `not ${verb === 'stop' ? 'stopped' : 'restarted'}: ${left.join(', ')}`,
    `run \`jailyard ${verb} ${left.join(' ')}\``,
  ];
}

/** What a batch verb does after a signal: take down what it did, and say what is left. */
export type BatchUndo = (
  service: JailService,
  requested: string[],
  result: BatchResult | undefined,
  parallel: number,
) => Promise<string[]>;

/** start, stop and restart share one shape: jails by name or selector, -p, --json, and a
 * signal that begins no further jail (then `undo`; by default: name what is left). */
export function registerBatchVerb(
  program: Command,
  io: CliIO,
  verb: { name: 'start' | 'stop' | 'restart'; description: string; past: string; undo?: BatchUndo },
): void {
  program
    .command(verb.name)
    .description(verb.description)
    .argument('[name...]', `jails to ${verb.name}`)
    .option('-l, --selector <selector>', 'every jail whose labels match, e.g. app=www,version=v1')
    .option('-p, --parallel <n>', 'run up to n independent jails at once', '1')
    .option('--json', 'print the outcome per jail as JSON')
    .action(async (names: string[], o: { selector?: string; parallel: string; json?: boolean }) => {
      await withSession(
        program,
        io,
        async ({ service, store }) => {
          const list = await targets(service, names, o.selector);
          const parallel = Number(o.parallel) || 1;
          let result: BatchResult | undefined;
          await interruptible(
            io,
            `the ${verb.name}`,
            async (signal) => {
              // a daemon's service (--host) hands its progress lines to this call; the local
              // one prints them itself (openSession)
              const progress = store ? {} : { progress: (j: string, t: string) => io.err(`${j}: ${t}`) };
              result = await service[verb.name](list, { parallel, signal, ...progress });
              printBatch(io, verb.past, result, !!o.json);
            },
            // a jail already in hand finished its step; the rest were not begun
            async () =>
              verb.undo ? await verb.undo(service, list, result, parallel) : unfinishedBatch(verb.name, list, result),
          );
        },
        { progress: true },
      );
    });
}
