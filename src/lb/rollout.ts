// Zero-downtime rollout: replaces the jails matching `selector,from` by `replicas` new jails
// labelled `selector,to`, built from a jail.conf template. One step at a time, each recomputed
// from the jails as they are (so --resume after a crash just carries on), the progress saved
// after every step (temp file, then rename). New jails enter the pool only once healthy;
// old ones leave it (drain label → the controller drains and deletes the server) before they
// are stopped. A new jail that never becomes healthy is removed and the rollout stops.

import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { request } from 'undici';
import { JailyardError, describeError, isJailyardError } from '../errors.ts';
import { paramList, paramString, type JailSpec, type Params } from '../conf/spec.ts';
import type { MetaOp } from '../meta/ops.ts';
import { parseSelector } from '../meta/selector.ts';
import { labelsOf } from '../meta/labels.ts';
import type { JailService } from '../runtime/types.ts';
import { parentName } from '../runtime/jailplan.ts';
import type { JailRecord } from '../store/types.ts';
import { DRAIN_LABEL, PORT_LABEL, serverNameOf, waitForServer } from './controller.ts';
import { sleep } from './haproxy-process.ts';
import { HaproxyRuntime } from './haproxy-runtime.ts';
import { crashPoint } from '../runtime/crashpoint.ts';
import { parseCidr } from '../conf/ipv4.ts';
import { abortRequested, claimRollout } from './rollout-owner.ts';

export interface RolloutPlanInput {
  selector: string;
  from: string;
  to: string;
  replicas: number;
  maxSurge: number;
  maxUnavailable: number;
  /** Port the jails serve HTTP on (health check, `port` label). */
  port: number;
  /** Path of the health check (GET, expects 200). */
  healthPath: string;
  /** The template's file and jail, so --resume can load it again. */
  templateFile?: string;
  templateJail?: string;
  /** New jails are named `<prefix>-<to value>-<n>`. */
  prefix: string;
  /** Host numbers N of 198.51.100.N new jails may take (default 2..254). */
  addressRange?: [number, number];
  /** The HAProxy admin socket and backend the rollout waits on: saved so --resume/--abort
   * and the daemon (its pool view, an abort of a rollout nobody runs) reach the same one. */
  lb?: { adminSocket: string; backend: string };
}

export interface RolloutState extends RolloutPlanInput {
  version: 1;
  phase: 'running' | 'done' | 'failed' | 'aborted' | 'interrupted';
  /** New jails this rollout created (what --abort removes). */
  created: string[];
  /** Old jails it removed. */
  removed: string[];
  log: { at: string; text: string }[];
  error?: string;
}

/** A live node of a cluster, as GET /v1/nodes lists it. */
export interface RolloutNode {
  name: string;
  labels: Record<string, string>;
  range: string;
  capacity: number;
}

export interface RolloutDeps {
  service: JailService;
  /** Cluster mode: the live nodes (a new jail's address is then taken from the range of the
   * node placement would choose); undefined or none on one host. */
  nodes?: () => Promise<readonly RolloutNode[] | undefined>;
  template: JailSpec;
  /** The progress file. */
  stateFile: string;
  /** When given: new jails must be UP in this backend, old ones leave it before they stop. */
  lb?: { adminSocket: string; backend: string };
  /** How long a new jail may take to answer 200 (default 30 s). */
  healthTimeoutMs?: number;
  /** How long the controller may take to add / remove a server (default 30 s). */
  poolTimeoutMs?: number;
  progress?: (line: string) => void;
  /** Aborted by a signal to the CLI: the rollout stops between steps (a jail being started
   * is rolled back) and is saved as `interrupted`, for --resume or --abort. */
  signal?: AbortSignal;
}

/** `k=v,k2=v2` (or `k==v`) → labels; anything else is not something a new jail can carry. */
export function labelsFromPairs(text: string, param: string): Record<string, string> {
  parseSelector(text);
  const labels: Record<string, string> = {};
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^([^=!<>\s]+)\s*==?\s*([^=!<>\s]*)$/.exec(part);
    if (!m)
      throw new JailyardError(
        'JY_ERR_USAGE',
        `"${part}" is not key=value: --${param} must be labels a new jail can carry`,
        { param },
      );
    labels[m[1]!] = m[2]!;
  }
  return labels;
}

export function rolloutFileFor(stateDir: string, selector: string): string {
  return join(stateDir, 'rollouts', `${selector.replace(/[^A-Za-z0-9._-]/g, '_')}.json`);
}

export function readRolloutState(file: string): RolloutState | undefined {
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as RolloutState;
}

function saveState(file: string, state: RolloutState): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, file);
}

/** The first free 198.51.100.N (N in 2..254) not used by any jail's ip4.addr. */
export function freeAddress(jails: readonly Pick<JailRecord, 'params'>[], range: [number, number] = [2, 254]): string {
  const used = new Set<string>();
  for (const j of jails) {
    for (const a of paramList(j.params, 'ip4.addr').flatMap((x) => x.split(',')))
      used.add(
        a
          .trim()
          .replace(/^[^|]*\|/, '')
          .replace(/\/\d+$/, ''),
      );
  }
  for (let n = Math.max(2, range[0]); n <= Math.min(254, range[1]); n++) {
    const addr = `198.51.100.${n}`;
    if (!used.has(addr)) return addr;
  }
  throw new JailyardError('JY_ERR_ADDRESS', `no free address left in 198.51.100.${range[0]}-${range[1]}`, {
    param: 'ip4.addr',
  });
}

/**
 * A new jail's address. On one host: freeAddress. In a cluster, a jail's address decides its
 * node (placement takes it only where the address routes), so taking the first free address
 * of the range put every new jail on the node holding the low end of it. Here the node comes
 * first, among those with a free address in both their range and `range`, capacity left, and
 * the template's `node` and `node.selector`: the one with the fewest of `spread` (the new
 * jails so far: they spread over the nodes), then the fewest jails placed (placement's own
 * measure), ties by name; then the first free address there.
 */
export function placeAddress(
  jails: readonly Pick<JailRecord, 'params' | 'node'>[],
  nodes: readonly RolloutNode[] | undefined,
  template: Params,
  range: [number, number] = [2, 254],
  spread: readonly Pick<JailRecord, 'node'>[] = [],
): string {
  if (!nodes?.length) return freeAddress(jails, range);
  const wanted = paramString(template, 'node') || undefined;
  const selText = paramString(template, 'node.selector') || undefined;
  const selector = selText ? parseSelector(selText) : undefined;
  const placed = (n: string) => jails.filter((j) => j.node === n).length;
  const why: string[] = [];
  const candidates = nodes
    .filter((n) => (wanted === undefined || n.name === wanted) && (!selector || selector.matches(n.labels)))
    .map((n) => ({
      n,
      mine: spread.filter((j) => j.node === n.name).length,
      placed: placed(n.name),
      r: parseCidr(n.range),
    }))
    .sort((x, y) => x.mine - y.mine || x.placed - y.placed || (x.n.name < y.n.name ? -1 : x.n.name > y.n.name ? 1 : 0));
  for (const { n, placed: count, r } of candidates) {
    // host numbers of 198.51.100.N in this node's range
    const base = 198 * 2 ** 24 + 51 * 2 ** 16 + 100 * 2 ** 8;
    const lo = r ? Math.max(range[0], r.first - base) : 1;
    const hi = r ? Math.min(range[1], r.last - base) : 0;
    if (!r || lo > hi) {
      why.push(`${n.name}: ${n.range} has no address in 198.51.100.${range[0]}-${range[1]}`);
      continue;
    }
    if (count >= n.capacity) {
      why.push(`${n.name}: full (${count}/${n.capacity})`);
      continue;
    }
    try {
      return freeAddress(jails, [lo, hi]);
    } catch {
      why.push(`${n.name}: 198.51.100.${lo}-${hi} all taken`);
    }
  }
  throw new JailyardError(
    'JY_ERR_ADDRESS',
    `no node has a free address for a new jail in 198.51.100.${range[0]}-${range[1]} (${why.join('; ') || 'no node matches the template'})`,
    { param: 'ip4.addr' },
  );
}

function firstAddress(j: JailRecord): string | undefined {
  return paramList(j.params, 'ip4.addr')
    .flatMap((x) => x.split(','))
    .map((a) =>
      a
        .trim()
        .replace(/^[^|]*\|/, '')
        .replace(/\/\d+$/, ''),
    )
    .find(Boolean);
}

/** The template's parameters for a new jail: its name, its address; the template's own name
 * in host.hostname / path is replaced by the new one. */
export function specForNewJail(template: JailSpec, name: string, addr: string): JailSpec {
  const params: Params = {};
  for (const [k, v] of Object.entries(template.params)) {
    if ((k === 'host.hostname' || k === 'path') && typeof v === 'string') {
      // the template's own name where $name put it: a hostname label, a path component
      const sep = k === 'host.hostname' ? '.' : '/';
      params[k] = v
        .split(sep)
        .map((c) => (c === template.name ? name : c))
        .join(sep);
    } else {
      params[k] = v;
    }
  }
  params.name = name;
  params['ip4.addr'] = [`${addr}/24`];
  return { name, params };
}

/** GET http://addr:port/path answers 200 within timeoutMs (polled). */
export async function waitHttpHealthy(
  addr: string,
  port: number,
  path: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !signal?.aborted) {
    try {
      const r = await request(`http://${addr}:${port}${path}`, {
        headersTimeout: 1000,
        bodyTimeout: 1000,
        reset: true,
      });
      await r.body.dump();
      if (r.statusCode === 200) return true;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  return false;
}

export function newRolloutState(input: RolloutPlanInput): RolloutState {
  if (!Number.isInteger(input.replicas) || input.replicas < 1)
    throw new JailyardError('JY_ERR_USAGE', `--replicas must be a positive integer, got ${input.replicas}`, {
      param: 'replicas',
    });
  if (input.maxSurge < 0 || input.maxUnavailable < 0 || input.maxSurge + input.maxUnavailable === 0) {
    throw new JailyardError(
      'JY_ERR_USAGE',
      `--max-surge (${input.maxSurge}) and --max-unavailable (${input.maxUnavailable}) must not both be 0`,
      { param: 'max-surge' },
    );
  }
  const from = labelsFromPairs(input.from, 'from');
  const to = labelsFromPairs(input.to, 'to');
  if (!Object.entries(to).some(([k, v]) => from[k] !== undefined && from[k] !== v)) {
    throw new JailyardError(
      'JY_ERR_USAGE',
      `--from ${input.from} and --to ${input.to} must differ in a label's value, or old and new jails cannot be told apart`,
      { param: 'to' },
    );
  }
  labelsFromPairs(input.selector, 'selector');
  return { version: 1, ...input, phase: 'running', created: [], removed: [], log: [] };
}

/** What runRollout and abortRollout share: the HAProxy client, the pool timeout, and `step`,
 * which records a line in the state, saves it (so --resume/--abort can continue) and shows it. */
function rolloutTools(state: RolloutState, deps: Omit<RolloutDeps, 'template'>, op: 'rollout' | 'abort' = 'rollout') {
  return {
    rt: deps.lb ? new HaproxyRuntime(deps.lb.adminSocket) : undefined,
    poolTimeout: deps.poolTimeoutMs ?? 30_000,
    step: (text: string) => {
      state.log.push({ at: new Date().toISOString(), text });
      saveState(deps.stateFile, state);
      crashPoint(`${op}:saved`);
      deps.progress?.(text);
    },
  };
}

/** runSteps stopped for an abort request (never leaves runRollout). */
class AbortRequested extends Error {
  constructor(cause: unknown) {
    super('abort requested', { cause });
  }
}

/** How often a running rollout looks for an abort request (`<file>.abort`). */
const ABORT_POLL_MS = 200;

/**
 * Runs (or resumes) a rollout until done; throws (state saved as failed) when it cannot.
 * Holds the rollout's owner file meanwhile (JY_ERR_ROLLOUT when another live process runs
 * it). An abort request (requestAbort, POST /v1/rollouts/ID/abort) stops it as a signal
 * does, between steps or in a wait, and then runs the abort here, in the one writer: the
 * state ends `aborted` (returned, not thrown).
 */
export async function runRollout(state: RolloutState, deps: RolloutDeps): Promise<RolloutState> {
  const release = claimRollout(deps.stateFile, state.selector);
  const stop = new AbortController();
  let abortAsked = false;
  const onSignal = () => stop.abort(deps.signal?.reason);
  if (deps.signal?.aborted) onSignal();
  deps.signal?.addEventListener('abort', onSignal);
  const watcher = setInterval(() => {
    if (!stop.signal.aborted && abortRequested(deps.stateFile)) {
      abortAsked = true;
      stop.abort('an abort request (POST /v1/rollouts/ID/abort)');
    }
  }, ABORT_POLL_MS);
  try {
    try {
      return await runSteps(
        state,
        { ...deps, signal: stop.signal },
        () => abortAsked || abortRequested(deps.stateFile),
      );
    } catch (e) {
      if (!(e instanceof AbortRequested)) throw e;
    }
    clearInterval(watcher);
    const { lb, progress, healthTimeoutMs, poolTimeoutMs, nodes, stateFile, service } = deps;
    return await abortSteps(state, {
      service,
      stateFile,
      ...(lb ? { lb } : {}),
      ...(progress ? { progress } : {}),
      ...(healthTimeoutMs !== undefined ? { healthTimeoutMs } : {}),
      ...(poolTimeoutMs !== undefined ? { poolTimeoutMs } : {}),
      ...(nodes ? { nodes } : {}),
    });
  } finally {
    clearInterval(watcher);
    deps.signal?.removeEventListener('abort', onSignal);
    release();
  }
}

async function runSteps(state: RolloutState, deps: RolloutDeps, abortAsked: () => boolean): Promise<RolloutState> {
  const { service } = deps;
  const { rt, poolTimeout, step } = rolloutTools(state, deps);
  const oldSel = `${state.selector},${state.from}`;
  const newSel = `${state.selector},${state.to}`;
  const toLabels = labelsFromPairs(state.to, 'to');
  const newLabels = { ...labelsFromPairs(state.selector, 'selector'), ...toLabels, [PORT_LABEL]: String(state.port) };
  const suffix = Object.values(toLabels)[0]?.replace(/[^A-Za-z0-9_-]/g, '_') || 'new';
  state.phase = 'running';
  delete state.error;
  step(
    `rollout ${oldSel} → ${newSel}, ${state.replicas} replicas (surge ${state.maxSurge}, unavailable ${state.maxUnavailable})`,
  );

  const fail = async (e: unknown): Promise<never> => {
    if (abortAsked()) {
      // not saved as interrupted: runRollout goes on with the abort at once
      step(`abort requested: stopped ${describeError(e)}`);
      throw new AbortRequested(e);
    }
    if (deps.signal?.aborted) {
      state.phase = 'interrupted';
      const err = new JailyardError(
        'JY_ERR_INTERRUPTED',
        `rollout interrupted by ${String(deps.signal.reason)}; its jails as they are: ` +
          `\`jailyard rollout --selector '${state.selector}' --resume\` carries on (--abort goes back to ${state.from})`,
        { step: 'rollout' },
        { cause: e },
      );
      state.error = err.describe();
      step(`interrupted: ${state.error}`);
      throw err;
    }
    state.phase = 'failed';
    // HAProxy gone (killed, restarting): the jails stay as they are, every one of them either
    // serving or recognisable by its labels; the saved steps let --resume carry on
    const err =
      isJailyardError(e) && e.code === 'JY_ERR_HAPROXY'
        ? new JailyardError(
            'JY_ERR_HAPROXY',
            `${e.message}; the rollout stopped, its jails as they are: once HAProxy and its controller run again, ` +
              `\`jailyard rollout --selector '${state.selector}' --resume\` carries on (--abort goes back to ${state.from})`,
            e.place,
            { cause: e },
          )
        : e;
    state.error = describeError(err);
    step(`failed: ${state.error}`);
    throw err;
  };

  /** Between steps: a signal stops the rollout here (fail() saves it as interrupted). */
  const interrupted = (): void => {
    if (deps.signal?.aborted)
      throw new JailyardError('JY_ERR_INTERRUPTED', `interrupted by ${String(deps.signal.reason)}`, {
        step: 'rollout',
      });
  };

  /** Makes a new jail serve: start, HTTP health, pool. Unhealthy → removed, rollout fails. */
  const known = new Set<string>();
  const bringUp = async (j: JailRecord): Promise<void> => {
    if (known.has(j.name) && j.state === 'running') return;
    if (j.state !== 'running') {
      step(`start ${j.name}`);
      crashPoint('rollout:start');
      const r = await service.start([j.name], deps.signal ? { signal: deps.signal } : {});
      interrupted();
      if (!r.ok)
        throw new JailyardError('JY_ERR_UNHEALTHY', `new jail did not start: ${r.outcomes[0]?.message ?? 'failed'}`, {
          jail: j.name,
          step: 'start',
        });
      j = await service.get(j.name);
      crashPoint('rollout:started');
    }
    const addr = firstAddress(j);
    const healthy =
      addr !== undefined &&
      (await waitHttpHealthy(addr, state.port, state.healthPath, deps.healthTimeoutMs ?? 30_000, deps.signal));
    interrupted();
    if (!healthy) {
      throw new JailyardError(
        'JY_ERR_UNHEALTHY',
        `new jail never answered 200 on http://${addr}:${state.port}${state.healthPath} within ${deps.healthTimeoutMs ?? 30_000} ms; removed it, the old jails keep serving`,
        { jail: j.name, step: 'health' },
      );
    }
    step(`${j.name} healthy at ${addr}:${state.port}`);
    crashPoint('rollout:healthy');
    if (rt && deps.lb) {
      await waitForServer(rt, deps.lb.backend, serverNameOf(j.name), 'serving', poolTimeout, deps.signal);
      interrupted();
      step(`${j.name} serving in ${deps.lb.backend}`);
    }
    known.add(j.name);
  };

  const removeJail = async (name: string): Promise<void> => {
    const r = await service.remove([name]);
    if (!r.ok)
      throw new JailyardError('JY_ERR_STEP_FAILED', `cannot remove: ${r.outcomes[0]?.message ?? 'failed'}`, {
        jail: name,
        step: 'remove',
      });
  };

  try {
    for (;;) {
      interrupted();
      // top-level jails only: a nested one's labels are its parent jail's to write, so a jail
      // could otherwise make a child of its own count as a new replica (lb.ts NESTED_REASON)
      const olds = (await service.list({ selector: oldSel })).filter(topLevel);
      const news = (await service.list({ selector: newSel })).filter(topLevel);
      const healthyNews: JailRecord[] = [];
      for (const j of news) {
        try {
          await bringUp(j);
          healthyNews.push(j);
        } catch (e) {
          if (!isJailyardError(e) || e.code !== 'JY_ERR_UNHEALTHY') throw e;
          step(`${j.name} unhealthy: removing it`);
          await removeJail(j.name);
          state.created = state.created.filter((n) => n !== j.name);
          throw e;
        }
      }
      if (news.length >= state.replicas && olds.length === 0) break;
      if (news.length < state.replicas && olds.length + news.length < state.replicas + state.maxSurge) {
        const all = await service.list();
        const names = new Set(all.map((j) => j.name));
        let n = 1;
        while (names.has(`${state.prefix}-${suffix}-${n}`)) n++;
        const name = `${state.prefix}-${suffix}-${n}`;
        const addr = placeAddress(all, await deps.nodes?.(), deps.template.params, state.addressRange, news);
        // recorded before it exists: an abort after a crash here still finds it
        state.created.push(name);
        step(`create ${name} at ${addr} (${news.length + 1}/${state.replicas})`);
        crashPoint('rollout:create');
        const meta: MetaOp[] = Object.entries(newLabels).map(([key, value]) => ({ op: 'set', key, value }));
        // the version labels (--to) also go to env: the jail itself can read which version it is
        const env: MetaOp[] = Object.entries(labelsFromPairs(state.to, 'to')).map(([key, value]) => ({
          op: 'set',
          key,
          value,
        }));
        await service.create({ spec: specForNewJail(deps.template, name, addr), meta, env });
        crashPoint('rollout:created');
        continue;
      }
      const runningOlds = olds.filter(
        (j) => j.state === 'running' && labelsOf(j.meta, j.env)[DRAIN_LABEL] === undefined,
      );
      const available = healthyNews.length + runningOlds.length;
      const victim =
        olds.find((j) => j.state !== 'running' || labelsOf(j.meta, j.env)[DRAIN_LABEL] !== undefined) ?? olds[0];
      const stillAvailable = victim && runningOlds.includes(victim) ? available - 1 : available;
      if (victim && stillAvailable >= state.replicas - state.maxUnavailable) {
        if (rt && deps.lb) {
          step(`drain ${victim.name}`);
          crashPoint('rollout:drain');
          await service.modify(victim.name, { meta: [{ op: 'set', key: DRAIN_LABEL, value: '1' }] });
          await waitForServer(rt, deps.lb.backend, serverNameOf(victim.name), 'absent', poolTimeout, deps.signal);
          interrupted();
        }
        step(`remove ${victim.name} (${olds.length - 1} old left)`);
        crashPoint('rollout:remove');
        await removeJail(victim.name);
        crashPoint('rollout:removed');
        state.removed.push(victim.name);
        continue;
      }
      throw new JailyardError(
        'JY_ERR_ROLLOUT',
        `stuck: ${olds.length} old, ${news.length} new, ${available} available; raise --max-surge or --max-unavailable`,
        { step: 'rollout' },
      );
    }
  } catch (e) {
    return fail(e);
  }
  state.phase = 'done';
  step(`done: ${state.replicas} jails ${newSel}, no ${oldSel} left`);
  crashPoint('rollout:done');
  return state;
}

/** Back to the old version: old jails rejoin the pool, the new ones this rollout created leave
 * it and are removed. Old jails already removed are not recreated (no template for them). */
export async function abortRollout(state: RolloutState, deps: Omit<RolloutDeps, 'template'>): Promise<RolloutState> {
  const release = claimRollout(deps.stateFile, state.selector);
  try {
    // as saved now that no one else writes it (what the caller read may predate a last step)
    Object.assign(state, readRolloutState(deps.stateFile) ?? {});
    return await abortSteps(state, deps);
  } finally {
    release();
  }
}

/** The abort's steps; a failure is saved (phase failed, `abort failed: ...`) for another try. */
async function abortSteps(state: RolloutState, deps: Omit<RolloutDeps, 'template'>): Promise<RolloutState> {
  try {
    return await abortWalk(state, deps);
  } catch (e) {
    state.phase = 'failed';
    state.error = `abort failed: ${describeError(e)}`;
    rolloutTools(state, deps, 'abort').step(state.error);
    throw e;
  }
}

const topLevel = (j: JailRecord): boolean => parentName(j.name) === undefined;

async function abortWalk(state: RolloutState, deps: Omit<RolloutDeps, 'template'>): Promise<RolloutState> {
  const { service } = deps;
  const { rt, poolTimeout, step } = rolloutTools(state, deps, 'abort');
  step(`abort: back to ${state.selector},${state.from}`);
  for (const j of (await service.list({ selector: `${state.selector},${state.from}` })).filter(topLevel)) {
    if (labelsOf(j.meta, j.env)[DRAIN_LABEL] !== undefined) {
      step(`undrain ${j.name}`);
      crashPoint('abort:undrain');
      await service.modify(j.name, { meta: [{ op: 'remove', key: DRAIN_LABEL }] });
    }
    if (j.state === 'stopped') {
      step(`start ${j.name}`);
      crashPoint('abort:start');
      await service.start([j.name]);
    }
    if (rt && deps.lb) await waitForServer(rt, deps.lb.backend, serverNameOf(j.name), 'serving', poolTimeout);
  }
  for (const name of [...state.created]) {
    const exists = (await service.list()).some((j) => j.name === name);
    if (exists) {
      if (rt && deps.lb) {
        step(`drain ${name}`);
        crashPoint('abort:drain');
        await service.modify(name, { meta: [{ op: 'set', key: DRAIN_LABEL, value: '1' }] });
        await waitForServer(rt, deps.lb.backend, serverNameOf(name), 'absent', poolTimeout);
      }
      step(`remove ${name}`);
      crashPoint('abort:remove');
      const r = await service.remove([name]);
      crashPoint('abort:removed');
      if (!r.ok)
        throw new JailyardError('JY_ERR_STEP_FAILED', `cannot remove: ${r.outcomes[0]?.message ?? 'failed'}`, {
          jail: name,
          step: 'abort',
        });
    }
    state.created = state.created.filter((n) => n !== name);
  }
  state.phase = 'aborted';
  step('aborted: old jails serve, new ones removed');
  crashPoint('abort:done');
  return state;
}
