// The lifecycle as data (jail(8)'s command.c: startcommands[] / stopcommands[]): each start
// step is paired with the stop step that undoes it. Starting runs the pairs in order and
// records each finished one in the store at once; a failure undoes only the finished steps,
// newest first; stopping walks the recorded steps backwards. So stop, a failed start and
// crash recovery (reconcile) are one and the same loop.

import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { JailyardError, describeError, withContext } from '../errors.ts';
import type { Driver, ExecOptions, ExecResult, JailContext } from '../platform/driver.ts';
import type { JailRecord, JailSupervision, RuntimeFacts, Store } from '../store/types.ts';
import { pendingRestart, restartSpecOf, restartWanted } from './supervision.ts';
import type { MountPlan } from '../skeleton/plan.ts';
import { paramBool, paramInt, paramList, paramString } from '../conf/spec.ts';
import { exposeConflict, exposeRules, ruleText } from '../conf/expose.ts';
import { hookCommands, jailLimits, mayHaveDied } from './params.ts';
import { checkNestedParams, checkNestedStart, parentName } from './jailplan.ts';
import { selfOwner } from './owner.ts';
import { crashPoint } from './crashpoint.ts';
import { enterFiles, removeEnterFiles } from '../layout.ts';

export type StartStep =
  | 'exec.prepare'
  | 'addresses'
  | 'ports'
  | 'mounts'
  | 'exec.prestart'
  | 'create'
  | 'exec.created'
  | 'exec.start'
  | 'exec.poststart';

export type StopStep =
  | 'exec.prestop'
  | 'exec.stop'
  | 'remove'
  | 'exec.poststop'
  | 'unmount'
  | 'ports.remove'
  | 'addresses.remove'
  | 'exec.release';

/** jail(8)'s order. Reversed, the `undo` column is exactly jail -r's order. */
export const LIFECYCLE: readonly { step: StartStep; undo: StopStep | null }[] = [
  { step: 'exec.prepare', undo: 'exec.release' },
  { step: 'addresses', undo: 'addresses.remove' },
  // published ports (expose): forwarded to the jail's address once it exists
  { step: 'ports', undo: 'ports.remove' },
  { step: 'mounts', undo: 'unmount' },
  { step: 'exec.prestart', undo: 'exec.poststop' },
  { step: 'create', undo: 'remove' },
  { step: 'exec.created', undo: null },
  { step: 'exec.start', undo: 'exec.stop' },
  { step: 'exec.poststart', undo: 'exec.prestop' },
];

export interface LifecycleDeps {
  store: Store;
  driver: Driver;
  /** Builds the jail's driver context (path, state dir, parent facts). */
  contextFor(record: JailRecord): JailContext;
  /** Builds the jail's complete mount plan (skeleton, mount, mount.fstab, devfs, guest dir). */
  planFor(record: JailRecord, ctx: JailContext): MountPlan;
  /** Progress lines for humans ("www: exec.prestart"). */
  progress?(jail: string, text: string): void;
  /** The caller's own streams for the output of exec.* commands (jail(8) passes it through;
   * see hookSink): without it, that output only goes to the console log. */
  hookOutput?: HookOutput;
}

/** Receives the output of a jail's exec.* commands, one command's output at a time, in
 * jail(8)'s order. */
export type HookOutput = (jail: string, stream: 'stdout' | 'stderr', text: string) => void;

/** exec.consolelog values that name the caller's own output (jail(8) opens them in its own
 * process: they are its stdout or stderr). A relay or a spawned command cannot open them
 * (they are the CLI's descriptors, perhaps a socket: ENXIO), so they are never opened. */
const CALLER_STREAMS: Record<string, 'stdout' | 'stderr'> = {
  '/dev/stdout': 'stdout',
  '/dev/fd/1': 'stdout',
  '/proc/self/fd/1': 'stdout',
  '/dev/stderr': 'stderr',
  '/dev/fd/2': 'stderr',
  '/proc/self/fd/2': 'stderr',
};

/** Where one hook command's output goes: appended to `log` (`own`: jailyard's console log in
 * the state folder), and passed to the caller's stream `to` when there is one. */
interface HookSink {
  log: string;
  own: boolean;
  to?: 'stdout' | 'stderr';
}

/**
 * The sink of a jail's hook output, after jail(8)'s command.c: commands run on the host
 * write to the caller; exec.consolelog redirects only the commands run inside the jail
 * (exec.start, command, exec.stop). jailyard also keeps every line in the console log: the
 * state folder's unless exec.consolelog names a file. exec.consolelog=/dev/stdout or
 * /dev/stderr is the caller's stream (the console log keeps a copy); /dev/null keeps only
 * the state folder's log. A log inside the jail's own root is refused: the jail controls the
 * folders there, and a symlink among them would send the host's writes anywhere.
 */
function hookSink(ctx: JailContext, inJail: boolean, forward: boolean): HookSink {
  const own = `${ctx.stateDir}/console.log`;
  const log = paramString(ctx.spec.params, 'exec.consolelog');
  const caller = forward ? 'stdout' : undefined;
  if (log === undefined || log === '') return { log: own, own: true, ...(caller ? { to: caller } : {}) };
  const stream = CALLER_STREAMS[log];
  if (stream) return { log: own, own: true, ...(forward ? { to: inJail ? stream : 'stdout' } : {}) };
  if (log === '/dev/null') return { log: own, own: true, ...(caller && !inJail ? { to: caller } : {}) };
  const rel = relative(ctx.path, resolve(log));
  if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) {
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      `exec.consolelog ${log} lies inside the jail's root ${ctx.path}: the jail controls that tree`,
      { jail: ctx.name, param: 'exec.consolelog' },
    );
  }
  return { log, own: false, ...(caller && !inJail ? { to: caller } : {}) };
}

/**
 * Checks before a start or a stop changes anything that the console log can be written: a
 * log that cannot be opened fails here, naming the parameter, instead of in the middle of
 * the lifecycle (a stop that failed there left the jail 'stopping').
 */
export function checkConsoleLog(ctx: JailContext): void {
  const sink = hookSink(ctx, true, false);
  if (sink.own) return;
  openLog(ctx, sink, '');
}

/** Appends text to the console log, making its folder; jailyard's own log (in the host-only
 * state folder) is never written through a symlink at its name. An operator's
 * exec.consolelog is followed, as jail(8) does, but must be a regular file: a relay rotates
 * it by renaming it. */
function openLog(ctx: JailContext, sink: HookSink, text: string): void {
  let fd: number | undefined;
  try {
    mkdirSync(dirname(sink.log), { recursive: true });
    fd = openSync(
      sink.log,
      constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | (sink.own ? constants.O_NOFOLLOW : 0),
      0o644,
    );
    if (!fstatSync(fd).isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EINVAL' });
    if (text) writeSync(fd, text);
  } catch (e) {
    if (sink.own) throw e;
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      `exec.consolelog ${sink.log} cannot be written: ${(e as Error).message}`,
      { jail: ctx.name, param: 'exec.consolelog' },
      { cause: e },
    );
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Runs one exec.* hook list; a non-zero exit fails the step with the command's output.
 * With deps.hookOutput, each command's output is passed on once it has exited (read back
 * from the console log, stdout and stderr as one stream, as the log holds them). */
async function runHook(
  deps: LifecycleDeps,
  ctx: JailContext,
  hook: string,
  inJail: boolean,
  runtime: RuntimeFacts,
): Promise<void> {
  const commands = hookCommands(ctx.spec.params, hook);
  if (commands.length === 0) return;
  const sink = hookSink(ctx, inJail, deps.hookOutput !== undefined);
  const timeout = paramInt(ctx.spec.params, 'exec.timeout');
  for (const command of commands) {
    deps.progress?.(ctx.name, `${hook}: ${command}`);
    openLog(ctx, sink, `# ${new Date().toISOString()} ${hook}: ${command}\n`);
    const before = fileSize(sink.log);
    const opts: ExecOptions = {
      consoleLog: sink.log,
      ...(timeout ? { timeoutMs: timeout * 1000 } : {}),
      ...(sink.to ? { drain: true } : {}),
    };
    let result: ExecResult;
    if (inJail) {
      if (!runtime.create)
        throw new JailyardError('JY_ERR_INTERNAL', `${hook} needs a created jail`, { jail: ctx.name, step: hook });
      const user = paramString(ctx.spec.params, 'exec.jail_user');
      result = await deps.driver.runInJail(ctx, runtime.create, ['/bin/sh', '-c', command], {
        ...opts,
        ...(user ? { user } : {}),
      });
    } else {
      result = await deps.driver.runHost(ctx, command, opts);
    }
    if (sink.to) {
      const text = result.stdout + result.stderr + readSince(sink.log, before);
      if (text) deps.hookOutput?.(ctx.name, sink.to, text);
    }
    if (result.code !== 0) {
      const output = (result.stderr + result.stdout || readSince(sink.log, before))
        .trim()
        .split('\n')
        .slice(-20)
        .join('\n');
      const why = result.signal ? `killed by ${result.signal}` : `exited ${result.code}`;
      throw new JailyardError('JY_ERR_STEP_FAILED', `${hook} command failed (${why}): ${command}`, {
        jail: ctx.name,
        step: hook,
        output,
      });
    }
  }
}

function fileSize(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

/** What was appended to a log after `offset` (all of it when the relay rotated it since). */
function readSince(p: string, offset: number): string {
  try {
    const all = readFileSync(p);
    return all.subarray(all.length < offset ? 0 : offset).toString('utf8');
  } catch {
    return '';
  }
}

async function doStep(
  deps: LifecycleDeps,
  step: StartStep,
  ctx: JailContext,
  record: JailRecord,
  rt: RuntimeFacts,
): Promise<void> {
  switch (step) {
    case 'exec.prepare':
    case 'exec.prestart':
    case 'exec.created':
    case 'exec.poststart':
      return runHook(deps, ctx, step, false, rt);
    case 'addresses':
      rt.network = await deps.driver.setupNetwork(ctx);
      return;
    case 'ports': {
      if (!publishes(ctx)) return;
      const facts = await requirePorts(deps.driver, ctx).publishPorts(ctx, rt.network ?? { addresses: [] });
      if (facts.ports.length) rt.ports = facts;
      return;
    }
    case 'mounts':
      rt.mounts = await deps.driver.mount(ctx, deps.planFor(record, ctx));
      return;
    case 'create':
      rt.create = await deps.driver.create(
        ctx,
        rt.network ?? { addresses: [] },
        jailLimits(ctx.spec.params, ctx.name),
        rt.mounts,
      );
      return;
    case 'exec.start':
      await runHook(deps, ctx, 'exec.start', true, rt);
      await runHook(deps, ctx, 'command', true, rt);
      return;
  }
}

async function undoStep(deps: LifecycleDeps, step: StopStep, ctx: JailContext, rt: RuntimeFacts): Promise<void> {
  switch (step) {
    case 'exec.prestop':
    case 'exec.poststop':
    case 'exec.release':
      return runHook(deps, ctx, step, false, rt);
    case 'exec.stop':
      if (rt.create && deps.driver.isAlive(rt.create)) await runHook(deps, ctx, 'exec.stop', true, rt);
      return;
    case 'remove': {
      if (!rt.create) return;
      const timeout = paramInt(ctx.spec.params, 'stop.timeout') ?? 10;
      await deps.driver.destroy(ctx, rt.create, timeout * 1000);
      delete rt.create;
      return;
    }
    case 'unmount':
      if (rt.mounts) await deps.driver.unmount(ctx, rt.mounts);
      delete rt.mounts;
      return;
    case 'ports.remove':
      if (rt.ports) await requirePorts(deps.driver, ctx).unpublishPorts(ctx, rt.ports);
      delete rt.ports;
      return;
    case 'addresses.remove':
      if (rt.network) await deps.driver.teardownNetwork(ctx, rt.network);
      delete rt.network;
      return;
  }
}

/** Whether the jail publishes ports (expose). */
const publishes = (ctx: JailContext): boolean => paramList(ctx.spec.params, 'expose').length > 0;

/** The driver's ports step, or JY_ERR_PLATFORM naming the parameter where it has none. */
function requirePorts(driver: Driver, ctx: JailContext): Required<Pick<Driver, 'publishPorts' | 'unpublishPorts'>> {
  const { publishPorts, unpublishPorts } = driver;
  if (!publishPorts || !unpublishPorts)
    throw new JailyardError('JY_ERR_PLATFORM', `expose is not supported on ${driver.platform} yet`, {
      jail: ctx.name,
      param: 'expose',
    });
  return { publishPorts, unpublishPorts };
}

/**
 * Before a start changes anything: the jail's expose entries are valid, the driver can
 * publish them, and no other jail of this store that is not stopped publishes one of its
 * host ports (JY_ERR_PORT_IN_USE naming both). The driver checks again, host-wide and under
 * its lock, when it publishes them.
 */
function checkExpose(deps: LifecycleDeps, record: JailRecord): void {
  const rules = exposeRules(record.name, record.params);
  if (!rules.length) return;
  requirePorts(deps.driver, deps.contextFor(record));
  const others = deps.store
    .listJails()
    .filter((j) => j.name !== record.name && j.state !== 'stopped' && paramList(j.params, 'expose').length > 0)
    .flatMap((j) => {
      try {
        return [{ name: j.name, rules: exposeRules(j.name, j.params) }];
      } catch {
        return [];
      }
    });
  const clash = exposeConflict(rules, others);
  if (clash)
    throw new JailyardError(
      'JY_ERR_PORT_IN_USE',
      `expose "${clash.rule.entry}": host port ${clash.rule.proto} ${ruleText(clash.other).host} is published by jail "${clash.jail}" ("${clash.other.entry}")`,
      { jail: record.name, param: 'expose' },
    );
}

const undoOf = (step: StartStep): StopStep | null => LIFECYCLE.find((s) => s.step === step)?.undo ?? null;

/** Whether a start step changes anything: a hook with commands, a driver step. */
function startActs(ctx: JailContext, step: StartStep): boolean {
  switch (step) {
    case 'exec.prepare':
    case 'exec.prestart':
    case 'exec.created':
    case 'exec.poststart':
      return hookCommands(ctx.spec.params, step).length > 0;
    case 'exec.start':
      return hookCommands(ctx.spec.params, 'exec.start').length + hookCommands(ctx.spec.params, 'command').length > 0;
    case 'ports':
      return publishes(ctx);
    default:
      return true;
  }
}

/** Whether undoing a step changes anything (what undoStep would act on). */
function undoActs(ctx: JailContext, undo: StopStep | null, rt: RuntimeFacts): boolean {
  switch (undo) {
    case null:
      return false;
    case 'remove':
      return rt.create !== undefined;
    case 'unmount':
      return rt.mounts !== undefined;
    case 'addresses.remove':
      return rt.network !== undefined;
    case 'ports.remove':
      return rt.ports !== undefined;
    default:
      return hookCommands(ctx.spec.params, undo).length > 0;
  }
}

/**
 * Writes a jail's runtime facts when they must be: before the next step that acts (a hook
 * with commands, a driver step) begins, and on failure. A step that does nothing and whose
 * undo does nothing (a hook without commands, in a jail without the paired hook) is recorded
 * with the next write, the last steps with the transition that ends the start or stop. So a
 * crash at any point leaves in the store every step that changed the system or has an undo
 * to run, as when each step was written on its own: a start and a stop of a jail without
 * hooks are 4 store transactions each instead of 10 and 11.
 */
class Recorder {
  private dirty = false;
  /** Writing an undo's progress (unwind, a recovery): the store lets it use its reserve. */
  undoing = false;
  private readonly store: Store;
  private readonly name: string;
  private readonly rt: RuntimeFacts;
  constructor(store: Store, name: string, rt: RuntimeFacts) {
    this.store = store;
    this.name = name;
    this.rt = rt;
  }
  changed(): void {
    this.dirty = true;
  }
  flush(): void {
    if (!this.dirty) return;
    this.store.recordRuntime(this.name, this.rt, this.undoing ? { undo: true } : undefined);
    this.dirty = false;
  }
}

/**
 * Walks the finished steps of `rt` backwards, running each one's undo. Every undo is tried
 * even when an earlier one failed (so as much as possible is released); the first error is
 * rethrown at the end. Every undone step is in the store before the next undo acts.
 */
async function unwind(
  deps: LifecycleDeps,
  ctx: JailContext,
  rt: RuntimeFacts,
  failedStart: boolean,
  rec: Recorder,
): Promise<void> {
  let first: unknown;
  rec.undoing = true;
  while (rt.steps.length > 0) {
    const done = rt.steps[rt.steps.length - 1] as StartStep;
    // a jail that went away by itself runs no exec.* command on the way down (jail(8))
    const undo = rt.died && undoOf(done)?.startsWith('exec.') ? null : undoOf(done);
    const acts = undoActs(ctx, undo, rt);
    if (acts) rec.flush();
    if (undo) {
      deps.progress?.(ctx.name, failedStart ? `undo ${done}: ${undo}` : undo);
      try {
        crashPoint(`${undo}:begin`);
        await undoStep(deps, undo, ctx, rt);
        crashPoint(`${undo}:done`);
      } catch (e) {
        first ??= e;
        // hooks failing during a stop do not keep the jail's resources held; OS steps do
        if (!undo.startsWith('exec.')) {
          rec.changed();
          rec.flush();
          throw first;
        }
      }
    }
    rt.steps.pop();
    // undoing a step that changed nothing again after a crash changes nothing either
    if (acts) rec.changed();
  }
  if (first) throw first;
}

/**
 * A nested jail's start conditions (see checkNestedStart), read from the store. Checked
 * inside the store transaction that turns the jail 'starting' (a 'starting' sibling counts
 * as running), so two siblings started at once, by one process or two, cannot both pass
 * children.max.
 */
function checkNesting(store: Store, name: string): void {
  const child = store.requireJail(name);
  checkNestedParams(child);
  if (!parentName(name)) return;
  const all = store.listJails();
  const ancestors = [];
  for (let p = parentName(name); p; p = parentName(p)) {
    const below = `${p}.`;
    ancestors.push({
      record: store.requireJail(p),
      runningDescendants: all.filter((j) => j.name.startsWith(below) && j.name !== name && j.state !== 'stopped')
        .length,
    });
  }
  checkNestedStart(child, ancestors);
}

/** The supervisor's part in a transition (supervisor.ts): a check inside its transaction and
 * the supervision it writes (JailSupervision). */
export interface SupervisedTransition {
  guard?: (cur: JailRecord) => void;
  supervision?: (cur: JailSupervision | null) => JailSupervision | null;
}

/** Starts one jail (store state stopped → starting → running). `supervised`: the
 * supervisor's restart (its guard and supervision go into stopped → starting; `failed`
 * into starting → stopped when the start is undone). */
export async function startJail(
  deps: LifecycleDeps,
  name: string,
  signal?: AbortSignal,
  supervised?: SupervisedTransition & { failed?: SupervisedTransition['supervision'] },
): Promise<JailRecord> {
  const current = deps.store.requireJail(name);
  if (current.state !== 'stopped') {
    const dead =
      current.state === 'running' && (!current.runtime?.create || !deps.driver.isAlive(current.runtime.create));
    const why = dead
      ? 'it is recorded as running but its processes are gone (the host restarted?): run jailyard reconcile'
      : current.state === 'running'
        ? 'it is already running'
        : `it is ${current.state} (another jailyard process is working on it, or one stopped half-way: run jailyard reconcile)`;
    throw new JailyardError('JY_ERR_INVALID_TRANSITION', `cannot start: ${why}`, { jail: name });
  }
  // the kernel's rule (kern_jail.c): a jail created without persist must have a process to
  // attach; jail(8) holds persist while exec.start, command or exec.poststart are to run
  if (
    !paramBool(current.params, 'persist') &&
    ['exec.start', 'command', 'exec.poststart'].every((h) => hookCommands(current.params, h).length === 0)
  ) {
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      'new jail must persist or attach: set persist, or command, exec.start or exec.poststart',
      { jail: name, param: 'persist' },
    );
  }
  checkConsoleLog(deps.contextFor(current));
  checkExpose(deps, current);
  const rt: RuntimeFacts = { steps: [], owner: selfOwner() };
  let record = deps.store.transition(
    name,
    'stopped',
    'starting',
    { runtime: rt, lastError: null, ...(supervised?.supervision ? { supervision: supervised.supervision } : {}) },
    () => {
      supervised?.guard?.(deps.store.requireJail(name));
      checkNesting(deps.store, name);
    },
  );
  const ctx = deps.contextFor(record);
  rt.root = ctx.path;
  const rec = new Recorder(deps.store, name, rt);
  try {
    for (const { step } of LIFECYCLE) {
      if (signal?.aborted)
        throw new JailyardError('JY_ERR_INTERRUPTED', `interrupted by ${String(signal.reason)} before ${step}`, {
          jail: name,
          step,
        });
      deps.progress?.(name, step);
      if (startActs(ctx, step)) rec.flush();
      crashPoint(`${step}:begin`);
      await doStep(deps, step, ctx, record, rt);
      crashPoint(`${step}:done`);
      rt.steps.push(step);
      // a step that did nothing and whose undo does nothing need not be in the store
      if (startActs(ctx, step) || undoActs(ctx, undoOf(step), rt)) rec.changed();
    }
  } catch (e) {
    let cleanup = '';
    try {
      await unwind(deps, ctx, rt, true, rec);
    } catch (u) {
      cleanup = ` (and undoing it failed: ${describeError(u)}; run jailyard reconcile)`;
    }
    const message = describeError(e) + cleanup;
    if (rt.steps.length === 0)
      deps.store.transition(name, 'starting', 'stopped', {
        runtime: null,
        lastError: message,
        ...(supervised?.failed ? { supervision: supervised.failed } : {}),
      });
    throw e instanceof JailyardError && cleanup ? withContext(e, { after: cleanup }) : e;
  }
  delete rt.owner;
  record = deps.store.transition(name, 'starting', 'running', { runtime: rt });
  // `exec` without Node (bin/jailyard.js) from now on, as the CLI's exec: a driver's enter
  // file (Linux: written at create) is put in place once the jail is running. Not for a jail
  // without persist: one whose last process exited is gone, and only the CLI (reapDied)
  // notices that before entering it
  try {
    const enter = enterFiles(ctx.stateDir);
    if (paramBool(record.params, 'persist')) renameSync(enter.next, enter.live);
  } catch {
    // none: every exec goes through the CLI
  }
  // jail(8) keeps a jail without persist alive until its exec.poststart has run; then one
  // without a process of its own goes away
  if (!paramBool(record.params, 'persist') && startedIdle(deps, record)) {
    deps.progress?.(name, 'no persist and no process left: the jail is removed (set persist to keep it)');
    return await stopJail(deps, name, undefined, { died: true });
  }
  return record;
}

/** Right after a start: no process of the jail's own is left (a driver without the test has
 * a kernel that removes such a jail itself). */
function startedIdle(deps: LifecycleDeps, record: JailRecord): boolean {
  const create = record.runtime?.create;
  return create !== undefined && deps.driver.idle?.(create) === true;
}

/**
 * Whether a jail has gone away by itself in jail(8)'s sense: running, without persist, no
 * process of its own left, and no running child jail (a child keeps its parent).
 */
export function hasDied(deps: Pick<LifecycleDeps, 'driver'>, j: JailRecord, all: readonly JailRecord[]): boolean {
  if (!mayHaveDied(j) || !j.runtime?.create) return false;
  if (all.some((c) => c.state !== 'stopped' && c.name.startsWith(`${j.name}.`))) return false;
  return deps.driver.idle?.(j.runtime.create) === true;
}

/**
 * The clean-up of jails that went away by themselves (hasDied), done by whoever looks next:
 * there is no daemon to watch a jail's last process. Every CLI command that reads or changes
 * jails, `reconcile`, and the daemon's reads call it. Each is stopped without its exec.*
 * commands (deepest first, so a parent that had only children goes after them); another
 * process doing the same wins the transition and this one moves on.
 */
export async function reapDied(deps: LifecycleDeps, all: readonly JailRecord[]): Promise<string[]> {
  const reaped: string[] = [];
  const candidates = all.filter(mayHaveDied).sort((a, b) => b.name.split('.').length - a.name.split('.').length);
  for (const j of candidates) {
    const now = deps.store.listJails();
    if (!hasDied(deps, deps.store.getJail(j.name) ?? j, now)) continue;
    try {
      deps.progress?.(j.name, 'no persist and no process left: the jail is removed');
      // restart.policy=always brings it back (the daemon's supervisor, after its back-off):
      // the restart it owes is written with the stop's first transition (docs/health.md)
      await stopJail(deps, j.name, undefined, { died: true, ...exitedRestart(j) });
      reaped.push(j.name);
    } catch {
      // another process is stopping it, or a step failed: then it is 'stopping' with its
      // error recorded, for reconcile
    }
  }
  return reaped;
}

/** The restart a reaped jail without persist is owed: restart.policy=always only. */
function exitedRestart(j: JailRecord): { supervision?: SupervisedTransition['supervision'] } {
  let spec: ReturnType<typeof restartSpecOf>;
  try {
    spec = restartSpecOf(j.params, j.name);
  } catch {
    return {};
  }
  if (!restartWanted(spec.policy, 'exited')) return {};
  const now = Date.now();
  const lastStart = j.supervision?.lastStart ? Date.parse(j.supervision.lastStart) : undefined;
  return {
    supervision: (cur) => ({
      ...(cur ?? { restarts: 0 }),
      pending: pendingRestart(cur, 'exited', spec, now, lastStart),
    }),
  };
}

/** Stops one jail: the recorded start steps undone in reverse (jail -r's order). `guard` runs
 * inside the store transaction that turns it 'stopping' (throwing cancels the stop).
 * `how.supervision`: the supervisor's stop (a restart it owes, written in that transaction;
 * any other stop cancels a pending restart there). */
export async function stopJail(
  deps: LifecycleDeps,
  name: string,
  guard?: () => void,
  how: { died?: boolean; supervision?: SupervisedTransition['supervision'] } = {},
): Promise<JailRecord> {
  const state = deps.store.requireJail(name).state;
  if (state === 'starting' || state === 'stopping') {
    // another jailyard process is at it, or one died half-way: say what to do
    throw new JailyardError(
      'JY_ERR_INVALID_TRANSITION',
      `the jail is ${state} (another jailyard process is working on it, or one stopped half-way: run jailyard reconcile)`,
      { jail: name },
    );
  }
  // a console log that cannot be written fails the stop before it changes anything
  if (!how.died) checkConsoleLog(deps.contextFor(deps.store.requireJail(name)));
  // guard: a check run inside the transaction of the first change (remove's If-Match)
  const running = deps.store.requireJail(name).runtime;
  const record = deps.store.transition(
    name,
    'running',
    'stopping',
    {
      runtime: { ...(running ?? { steps: [] }), owner: selfOwner(), ...(how.died ? { died: true } : {}) },
      ...(how.supervision ? { supervision: how.supervision } : {}),
    },
    guard,
  );
  return await finishStop(deps, record);
}

/** Completes a stop (also for a jail left 'starting' or 'stopping' by a crashed process). */
export async function finishStop(deps: LifecycleDeps, record: JailRecord): Promise<JailRecord> {
  const ctx = deps.contextFor(record);
  // a stopping jail is no longer entered without the CLI (which refuses it)
  removeEnterFiles(ctx.stateDir);
  const rt: RuntimeFacts = { ...structuredClone(record.runtime ?? { steps: [] }), owner: selfOwner() };
  const rec = new Recorder(deps.store, record.name, rt);
  rec.undoing = true;
  // stopJail's transition wrote this process as the owner already; a recovery writes it now
  if (JSON.stringify(record.runtime?.owner) !== JSON.stringify(rt.owner)) {
    rec.changed();
    rec.flush();
  }
  try {
    await unwind(deps, ctx, rt, false, rec);
  } catch (e) {
    let left = e instanceof JailyardError && e.code === 'JY_ERR_STORE';
    try {
      rec.changed();
      rec.flush();
      // only hooks failed: everything was undone, the jail is stopped (the error says which)
      if (rt.steps.length === 0)
        deps.store.transition(record.name, deps.store.requireJail(record.name).state, 'stopped', {
          runtime: null,
          lastError: describeError(e),
        });
    } catch {
      // the store itself failed (locked, unwritable): what is undone is undone, the rest is
      // the recorded steps' to finish
      left = true;
    }
    // a stop the store could not follow is left stopping: the store's "nothing was changed"
    // is true of that write, not of the stop
    if (left && e instanceof JailyardError)
      throw withContext(e, {
        after: `; the stop of "${record.name}" is left half done: run jailyard reconcile once the store can be written`,
      });
    throw e;
  }
  return deps.store.transition(record.name, deps.store.requireJail(record.name).state, 'stopped', { runtime: null });
}
