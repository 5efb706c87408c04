// The local JailService: jail operations over the store and the platform driver. The CLI
// uses it directly (no daemon needed); the daemon serves the same object over HTTP.

import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JailyardError } from '../errors.ts';
import { implicitJid, paramString, type JailSpec, type Params } from '../conf/spec.ts';
import { checkKeyOps, type MetaOp } from '../meta/ops.ts';
import { exposeRules } from '../conf/expose.ts';
import type { Driver, JailContext } from '../platform/driver.ts';
import type { MountPlan } from '../skeleton/plan.ts';
import { checkRevision } from '../store/revision.ts';
import type { JailChange, JailRecord, Store, WriteOptions } from '../store/types.ts';
import type { BatchOptions, BatchResult, JailOutcome, JailService } from './types.ts';
import { guestDir, jailRoot, jailStateDir, removeEnterFiles, skeletonOf } from '../layout.ts';
import {
  buildContext,
  checkNestedParams,
  completePlan,
  markJailTrees,
  parentName,
  type ParentInfo,
} from './jailplan.ts';
import { finishStop, reapDied, startJail, stopJail, type LifecycleDeps } from './lifecycle.ts';
import { crashPoint } from './crashpoint.ts';
import { dropIntent, refuseUnfinished, saveIntent } from './intent.ts';
import { buildGraph, failedOutcome, runBatch, withDependencies } from './order.ts';
import { dependsOf, jailLimits, mayHaveDied } from './params.ts';
import { loadDriver } from '../platform/index.ts';
import { checkSupervisionParams } from './supervision.ts';

/** Parameters jail(8) cannot change on a running jail (jail -m refuses them). */
export const IMMUTABLE_WHILE_RUNNING = new Set([
  'path',
  'skeleton',
  'skeleton.strategy',
  'skeleton.romounts',
  'skeleton.rwmounts',
  'mount',
  'mount.fstab',
  'mount.devfs',
  'mount.procfs',
  'ip4.addr',
  'ip6.addr',
  'vnet',
  'interface',
  'children.max',
]);

/** Hooks the skeleton module provides: seeding a jail's writable part and its base plan. */
export interface SkeletonHooks {
  /** Called at create for a jail with a `skeleton`: makes its writable part (the driver
   * makes a disk image for limits.disk). */
  prepare(stateDir: string, record: JailRecord, driver: Driver): Promise<void>;
  /** The skeleton's mount plan for the jail (before mount/fstab/devfs/guest). */
  plan(stateDir: string, record: JailRecord, root: string): MountPlan;
  /** Called at remove, after the jail is stopped. */
  release?(stateDir: string, record: JailRecord): Promise<void>;
  /** Runs WORK as a batch (a start of many jails): what plan() reads of a skeleton within
   * WORK may be read once for all of its jails. */
  batch?<T>(work: () => Promise<T>): Promise<T>;
}

export interface LocalServiceOptions {
  store: Store;
  stateDir: string;
  driver?: Driver;
  skeletons?: SkeletonHooks;
  progress?: (jail: string, text: string) => void;
}

/** Writes the jail's env where the jail reads it (/run/jailyard/env): temp file, then rename,
 * so a reader never sees half a value. */
export function writeGuestEnv(stateDir: string, name: string, env: string): void {
  const dir = guestDir(stateDir, name);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = join(dir, `.env.${process.pid}.tmp`);
  writeFileSync(tmp, env, { mode: 0o644 });
  renameSync(tmp, join(dir, 'env'));
}

/**
 * The checks of a create that read no state (the parent's existence is the caller's, through
 * `requireParent`), shared by the local and the cluster service: the parameters as the
 * jail gets them (without name/meta/env, with the jid a numeric name implies).
 */
export function checkCreate(
  input: { spec: JailSpec; meta?: MetaOp[]; env?: MetaOp[] },
  opts: { requireParent?: (parent: string) => void } = {},
): { name: string; params: Params } {
  const { name, params } = input.spec;
  const { name: _n, meta: _m, env: _e, ...given } = params;
  // a numeric name is the jail's jid, as a numeric jail.conf block is (and as the kernel
  // names a jail created without a name)
  const jid = implicitJid(name.slice(name.lastIndexOf('.') + 1));
  const rest = jid !== undefined && given.jid === undefined ? { jid, ...given } : given;
  // a key operation writes one line, never a label of its own
  checkKeyOps('meta', input.meta, name);
  checkKeyOps('env', input.env, name);
  const nested = parentName(name);
  if (nested) opts.requireParent?.(nested);
  checkNestedParams({ name, params: rest });
  jailLimits(rest, name); // validates sizes before anything is written
  exposeRules(name, rest); // and published ports (an API body's parameters come untyped)
  checkSupervisionParams(rest, name); // health.* and restart.* (docs/health.md)
  return { name, params: rest };
}

/** The checks of a change to an existing jail (jail -m), shared by the local and the
 * cluster service: key operations, and on a jail that is not stopped, what cannot change
 * while it runs and the limits. */
/** A conditional remove (If-Match, --if-revision) compares one revision: it takes one jail
 * without child jails (`names`: the requested jails with their descendants). */
export function checkConditionalRemove(cas: number | undefined, requested: string[], names: string[]): void {
  if (cas !== undefined && names.length !== 1) {
    throw new JailyardError(
      'JY_ERR_USAGE',
      'a conditional remove (If-Match, --if-revision) takes one jail without child jails',
      { jail: requested[0] ?? '' },
    );
  }
}

export function checkChange(before: JailRecord, change: JailChange): void {
  const name = before.name;
  checkKeyOps('meta', change.meta, name);
  checkKeyOps('env', change.env, name);
  if (change.params?.expose !== undefined) exposeRules(name, change.params);
  if (change.params || change.unset) {
    const after = { ...before.params, ...change.params };
    for (const p of change.unset ?? []) delete after[p];
    checkSupervisionParams(after, name);
  }
  if (before.state === 'stopped') return;
  const touched = [...Object.keys(change.params ?? {}), ...(change.unset ?? [])];
  const fixed = touched.find(
    (p) => IMMUTABLE_WHILE_RUNNING.has(p) && JSON.stringify(change.params?.[p]) !== JSON.stringify(before.params[p]),
  );
  if (fixed) {
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      `${fixed} cannot be changed while the jail is ${before.state}; stop it first`,
      {
        jail: name,
        param: fixed,
      },
    );
  }
  if (change.params) jailLimits({ ...before.params, ...change.params }, name);
}

/** The cluster's placement parameters on one host: an empty value is fine, any other is
 * refused, so a configuration written for a cluster never runs unplaced. */
export function refuseClusterParams(name: string, params: Params): void {
  for (const p of ['node', 'node.selector']) {
    const v = params[p];
    if (v === undefined || v === '' || (Array.isArray(v) && v.length === 0)) continue;
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      `${p} = ${JSON.stringify(v)} needs a cluster (jailyard serve --etcd); this host places no jail on a node`,
      { jail: name, param: p },
    );
  }
}

function summarize(outcomes: JailOutcome[]): BatchResult {
  return { outcomes, ok: outcomes.every((o) => o.status === 'ok') };
}

const isConflict = (e: unknown): boolean => e instanceof JailyardError && e.code === 'JY_ERR_REVISION_CONFLICT';

export function createLocalService(opts: LocalServiceOptions): JailService & {
  /** The complete mount plan start would execute (for --dry-run). */
  planOf(name: string): MountPlan;
  /** The driver context of a jail (root, state folder, parent), e.g. for jexec. */
  contextOf(name: string): JailContext;
  /** Finishes stopping jails left half-started or half-stopped by a crashed process. */
  recover(name: string): Promise<JailRecord>;
  /** Mounts `plan` for a (stopped) jail through the driver, e.g. to merge its copy-on-write
   * dirs on upgrade; returns the undo. */
  mountTransient(name: string, plan: MountPlan): Promise<() => Promise<void>>;
  /** The lifecycle's dependencies, for the daemon's supervisor (supervisor.ts). */
  lifecycle(): Promise<LifecycleDeps>;
} {
  const { store, stateDir } = opts;
  let driver: Driver | undefined = opts.driver;
  const getDriver = async (): Promise<Driver> => (driver ??= await loadDriver({ stateDir }));

  /** A jail's host root; a nested jail's path is read inside its parent's root. */
  const rootOf = (record: Pick<JailRecord, 'name' | 'params'>): string => {
    const p = parentName(record.name);
    const parent = p ? store.getJail(p) : undefined;
    return jailRoot(stateDir, record, parent ? rootOf(parent) : undefined);
  };
  const parentInfo = (record: JailRecord): ParentInfo | undefined => {
    const p = parentName(record.name);
    const parent = p ? store.getJail(p) : undefined;
    if (!parent) return undefined;
    return { root: rootOf(parent), ...(parent.runtime?.create ? { facts: parent.runtime.create } : {}) };
  };
  /** Every jail below `name` ("name.x", "name.x.y", ...), deepest first. */
  const descendantsOf = (name: string): JailRecord[] =>
    store
      .listJails()
      .filter((j) => j.name.startsWith(`${name}.`))
      .sort((a, b) => b.name.split('.').length - a.name.split('.').length);

  const planOf = (record: JailRecord): MountPlan => {
    const root = rootOf(record);
    const base = skeletonOf(record) && opts.skeletons ? opts.skeletons.plan(stateDir, record, root) : undefined;
    const plan = completePlan(stateDir, record, root, base);
    // a `mount` line may name a directory of a jail's tree: every jail's (this one's too)
    if (!plan.mounts.some((m) => m.kind === 'bind' && (m.origin === 'mount' || m.origin === 'mount.fstab')))
      return plan;
    const trees = store.listJails().flatMap((j) => {
      try {
        return [rootOf(j), jailStateDir(stateDir, j.name)];
      } catch {
        return [jailStateDir(stateDir, j.name)];
      }
    });
    return markJailTrees(plan, trees);
  };

  const deps = async (bopts: BatchOptions = {}): Promise<LifecycleDeps> => ({
    store,
    driver: await getDriver(),
    contextFor: (r) => buildContext(stateDir, r, parentInfo(r)),
    planFor: (r) => planOf(r),
    ...((bopts.progress ?? opts.progress) ? { progress: bopts.progress ?? opts.progress } : {}),
    ...(bopts.hookOutput ? { hookOutput: bopts.hookOutput } : {}),
  });

  /** Jails without persist whose processes have all exited go away (jail(8)); with no
   * daemon to notice, whoever looks next cleans them up (lifecycle.ts reapDied). */
  const reap = async (bopts: BatchOptions = {}): Promise<void> => {
    if (bopts.dryRun) return;
    const all = store.listJails();
    if (all.some(mayHaveDied)) await reapDied(await deps(bopts), all);
  };

  // A nested jail depends on its parent like on a `depend` entry (jail(8) does the same):
  // start brings a stopped parent up first, stop takes the child down first.
  const dependsOfName = (n: string): string[] => {
    const p = parentName(n);
    return [...dependsOf(store.requireJail(n).params), ...(p && store.getJail(p) ? [p] : [])];
  };

  /** The jails' names, each reference resolved as jail(8) does (a jid or a name, see
   * Store.resolveJail); every one must exist before a batch changes anything: one missing
   * reference changes nothing. */
  const requireAll = (refs: string[]): string[] => {
    const found = refs.map((r) => store.resolveJail(r));
    const missing = refs.filter((_, i) => !found[i]);
    if (missing.length === 1) store.requireJailRef(missing[0]!);
    if (missing.length > 1)
      throw new JailyardError(
        'JY_ERR_JAIL_NOT_FOUND',
        `jails ${missing.map((n) => `"${n}"`).join(', ')} not found; nothing was changed`,
        { jail: missing[0]! },
      );
    return [...new Set(found.map((j) => j!.name))];
  };
  /** One reference (a name or a jid) to the jail's name. */
  const nameOf = (ref: string): string => store.requireJailRef(ref).name;

  /**
   * The stop of a conditional remove: the revision is compared inside the transaction of
   * its first change (running -> stopping); a stopped jail's removal compares by itself.
   */
  const stopIfUnchanged = async (
    n: string,
    running: boolean,
    cas: number,
    bopts: BatchOptions,
  ): Promise<BatchResult> => {
    if (!running) return summarize([]);
    try {
      await stopJail(await deps(bopts), n, () => checkRevision(store.requireJail(n), cas));
      return summarize([{ name: n, status: 'ok' }]);
    } catch (e) {
      if (isConflict(e)) throw e;
      return summarize([failedOutcome(n, e)]);
    }
  };

  /** Removes a stopped jail: its skeleton share, its record, then its state folder. */
  const forget = async (n: string, wopts: WriteOptions): Promise<void> => {
    crashPoint('jail.remove:stopped');
    const record = store.requireJail(n);
    const children = descendantsOf(n).map((j) => j.name);
    if (children.length)
      throw new JailyardError('JY_ERR_DEPEND', `child jail(s) ${children.join(', ')} could not be removed`, {
        jail: n,
      });
    const dir = jailStateDir(stateDir, n);
    const left = (await getDriver()).mountsBelow(dir);
    if (left.length) {
      throw new JailyardError(
        'JY_ERR_MOUNT',
        `still mounted below ${dir}: ${left.join(', ')}; run jailyard reconcile`,
        { jail: n },
      );
    }
    if (opts.skeletons?.release) await opts.skeletons.release(stateDir, record);
    store.removeJail(n, wopts);
    crashPoint('jail.remove:forgotten');
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    crashPoint('jail.remove:done');
    await (await getDriver()).forget?.(dir);
  };

  /** Cancels the pending restarts of `names`; returns the stopped ones that had one. */
  const cancelRestarts = (names: string[]): string[] => {
    const cancelled: string[] = [];
    for (const n of names) {
      if (!store.getJail(n)?.supervision?.pending || !store.supervise) continue;
      let stopped = false;
      store.supervise(n, (cur) => {
        if (!cur.supervision?.pending) return undefined;
        stopped = cur.state === 'stopped';
        const { pending: _p, ...rest } = cur.supervision;
        return rest;
      });
      if (stopped) cancelled.push(n);
    }
    return cancelled;
  };

  const service = {
    async list(filter?: { selector?: string }): Promise<JailRecord[]> {
      await reap();
      return store.listJails(filter);
    },

    async get(ref: string): Promise<JailRecord> {
      await reap();
      return store.requireJailRef(ref);
    },

    async create(input: { spec: JailSpec; meta?: MetaOp[]; env?: MetaOp[] }): Promise<JailRecord> {
      const { name, params: rest } = checkCreate(input, {
        // FreeBSD: a child is made inside an existing parent
        requireParent: (p) => void store.requireJail(p),
      });
      refuseClusterParams(name, rest);
      rootOf({ name, params: rest }); // and the root's rules: a refused create writes no event
      // saved before the record: a crash before the end is undone by reconcile
      saveIntent(stateDir, { kind: 'create', jail: name });
      crashPoint('jail.create:intent');
      let record: JailRecord;
      try {
        record = store.createJail({
          name,
          params: rest,
          ...(input.meta ? { meta: input.meta } : {}),
          ...(input.env ? { env: input.env } : {}),
        });
      } catch (e) {
        dropIntent(stateDir, 'create', name);
        throw e;
      }
      crashPoint('jail.create:recorded');
      try {
        rootOf(record);
        mkdirSync(jailStateDir(stateDir, name), { recursive: true, mode: 0o700 });
        writeGuestEnv(stateDir, name, record.env);
        crashPoint('jail.create:folder');
        if (skeletonOf(record) && opts.skeletons) await opts.skeletons.prepare(stateDir, record, await getDriver());
        crashPoint('jail.create:seeded');
      } catch (e) {
        // nothing half-created: forget the jail and its folder again
        store.removeJail(name);
        if ((await getDriver()).mountsBelow(jailStateDir(stateDir, name)).length === 0)
          rmSync(jailStateDir(stateDir, name), { recursive: true, force: true });
        dropIntent(stateDir, 'create', name);
        throw e;
      }
      dropIntent(stateDir, 'create', name);
      return store.requireJail(name);
    },

    async modify(ref: string, change: JailChange, wopts?: WriteOptions): Promise<JailRecord> {
      const name = nameOf(ref);
      checkKeyOps('meta', change.meta, name);
      checkKeyOps('env', change.env, name);
      const before = store.requireJail(name);
      checkChange(before, change);
      refuseClusterParams(name, change.params ?? {});
      const after = store.modifyJail(name, change, wopts);
      // the Linux driver's enter file (`exec` without Node, bin/jailyard.js) holds the
      // parameters of the start (allow.*: the filter, the capabilities): once they change,
      // every exec goes through the CLI, which reads them from the store
      if (JSON.stringify(after.params) !== JSON.stringify(before.params))
        removeEnterFiles(jailStateDir(stateDir, name));
      if (after.env !== before.env) writeGuestEnv(stateDir, name, after.env);
      if (after.state === 'running' && after.runtime?.create) {
        const hostChanged = after.params['host.hostname'] !== before.params['host.hostname'];
        const limitsChanged = ['limits.memory', 'limits.procs', 'limits.cpu'].some(
          (p) => after.params[p] !== before.params[p],
        );
        const metaChanged = after.meta !== before.meta;
        const envChanged = after.env !== before.env;
        if (hostChanged || limitsChanged || metaChanged || envChanged) {
          const d = await getDriver();
          await d.modify(buildContext(stateDir, after, parentInfo(after)), after.runtime.create, {
            ...(hostChanged ? { hostname: paramString(after.params, 'host.hostname') ?? name } : {}),
            ...(limitsChanged ? { limits: jailLimits(after.params, name) } : {}),
            ...(metaChanged ? { meta: after.meta } : {}),
            ...(envChanged ? { env: after.env } : {}),
          });
        }
      }
      return after;
    },

    async start(refs: string[], bopts: BatchOptions = {}): Promise<BatchResult> {
      await reap(bopts);
      const names = requireAll(refs);
      for (const n of names) refuseUnfinished(stateDir, n);
      // like jail -c: what a jail depends on is started first, unless it already runs
      const all = withDependencies(names, dependsOfName).filter(
        (n) => names.includes(n) || store.requireJail(n).state === 'stopped',
      );
      const graph = buildGraph(all, dependsOfName);
      const d = await deps(bopts);
      const work = () =>
        runBatch(
          all,
          graph,
          'start',
          bopts.parallel ?? 1,
          // a dry run: the order, the skips and the refusals above, nothing started
          async (n) => void (bopts.dryRun ? undefined : await startJail(d, n, bopts.signal)),
          bopts.signal,
        );
      const batch = all.length > 1 ? opts.skeletons?.batch : undefined;
      return summarize(batch ? await batch(work) : await work());
    },

    async stop(refs: string[], bopts: BatchOptions = {}): Promise<BatchResult> {
      await reap(bopts);
      const asked = requireAll(refs);
      // a stop cancels the restart the supervisor owes a jail (docs/health.md): a stopped jail
      // waiting for its back-off stays stopped (its stop succeeds), one being stopped by the
      // supervisor is not started again
      const cancelled = bopts.dryRun ? [] : cancelRestarts(asked);
      const requested = asked.filter((n) => !cancelled.includes(n));
      // a parent stops only after its running children (jail -r removes children first)
      const names = [
        ...new Set(
          requested.flatMap((n) => [
            ...descendantsOf(n)
              .filter((j) => j.state !== 'stopped')
              .map((j) => j.name),
            n,
          ]),
        ),
      ];
      const graph = buildGraph(names, dependsOfName);
      const d = await deps(bopts);
      return summarize([
        ...cancelled.map((name): JailOutcome => ({ name, status: 'ok', message: 'restart cancelled' })),
        // a signal begins no further jail; a jail being stopped always finishes its stop
        ...(await runBatch(
          names,
          graph,
          'stop',
          bopts.parallel ?? 1,
          async (n) => void (bopts.dryRun ? undefined : await stopJail(d, n)),
          bopts.signal,
          // a stop that failed in an exec.* command only leaves the jail stopped (finishStop):
          // its parent, or the jail it depends on, is stopped after it all the same, so what a
          // jail's own commands do cannot keep its parent running against the operator's stop
          (n) => store.getJail(n)?.state === 'stopped',
        )),
      ]);
    },

    async restart(refs: string[], bopts: BatchOptions = {}): Promise<BatchResult> {
      await reap(bopts);
      const names = requireAll(refs);
      const running = names.filter((n) => store.requireJail(n).state === 'running');
      const stopped = await service.stop(running, bopts);
      const failedStops = new Set(stopped.outcomes.filter((o) => o.status !== 'ok').map((o) => o.name));
      const started = await service.start(
        names.filter((n) => !failedStops.has(n)),
        bopts,
      );
      const outcomes = names.map(
        (n) =>
          stopped.outcomes.find((o) => o.name === n && o.status !== 'ok') ??
          started.outcomes.find((o) => o.name === n)!,
      );
      return summarize(outcomes);
    },

    async remove(refs: string[], bopts: BatchOptions & WriteOptions = {}): Promise<BatchResult> {
      if (!bopts.dryRun) await reap();
      const requested = requireAll(refs);
      // removing a parent removes its children, deepest first
      const names = [...new Set(requested.flatMap((n) => [...descendantsOf(n).map((j) => j.name), n]))];
      const running = names.filter((n) => store.requireJail(n).state !== 'stopped');
      const cas = bopts.ifRevision;
      checkConditionalRemove(cas, requested, names);
      if (bopts.dryRun) {
        // what the remove would do, in its order: the revision compared, nothing changed
        if (cas !== undefined) checkRevision(store.requireJail(names[0]!), cas);
        const stops = running.length ? await service.stop(running, bopts) : summarize([]);
        return summarize(
          names.map((n) => stops.outcomes.find((o) => o.name === n && o.status !== 'ok') ?? { name: n, status: 'ok' }),
        );
      }
      const stopped =
        cas !== undefined
          ? await stopIfUnchanged(names[0]!, running.length > 0, cas, bopts)
          : running.length
            ? await service.stop(running, bopts)
            : summarize([]);
      const outcomes: JailOutcome[] = [];
      for (const n of names) {
        const failed = stopped.outcomes.find((o) => o.name === n && o.status !== 'ok');
        if (failed) {
          outcomes.push(failed);
          continue;
        }
        try {
          // a stopped jail removed under If-Match: the removal itself compares
          await forget(n, cas !== undefined && !running.includes(n) ? { ifRevision: cas } : {});
          outcomes.push({ name: n, status: 'ok' });
        } catch (e) {
          // a conditional remove that lost the race changed nothing: an error, not an outcome
          if (cas !== undefined && isConflict(e)) throw e;
          outcomes.push(failedOutcome(n, e));
        }
      }
      return summarize(outcomes);
    },

    contextOf(ref: string): JailContext {
      const r = store.requireJailRef(ref);
      return buildContext(stateDir, r, parentInfo(r));
    },

    planOf(ref: string): MountPlan {
      return planOf(store.requireJailRef(ref));
    },

    async recover(name: string): Promise<JailRecord> {
      return await finishStop(await deps(), store.requireJail(name));
    },

    lifecycle(): Promise<LifecycleDeps> {
      return deps();
    },

    async mountTransient(name: string, plan: MountPlan): Promise<() => Promise<void>> {
      const d = await getDriver();
      const ctx = service.contextOf(name);
      const facts = await d.mount(ctx, plan);
      return () => d.unmount(ctx, facts);
    },
  };
  return service;
}
