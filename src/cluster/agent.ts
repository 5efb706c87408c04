// The node agent (kubelet-style): registers this node under a lease and keeps it alive, makes
// the node's local jails (the single-host service over its own state folder) match what etcd
// says for the jails placed on it, and writes back their status. It fences itself: a node that
// cannot reach etcd for half its lease TTL stops every local jail and reports nothing until it
// has re-registered, so a jail never runs on two nodes once another node re-places it.
//
// Everything read from etcd comes through the mirror (validated by records.ts). Every step is
// bounded in time and its error becomes the jail's status.lastError: nothing here may crash
// the daemon it runs in.

import type { MountPlan } from '../skeleton/plan.ts';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as WorkerThreads from 'node:worker_threads';
import { describeError, JailyardError } from '../errors.ts';
import type { Params } from '../conf/spec.ts';
import type { MetaOp } from '../meta/ops.ts';
import type { JailService } from '../runtime/types.ts';
import type { JailChange, JailRecord, Store } from '../store/types.ts';
import { manifestDigest, resolveSkeleton, skeletonDigests } from '../skeleton/registry.ts';
import { checkNodeAddresses, choosePlacement, type RestartPolicy, restartPolicy, skeletonOf } from './placement.ts';
import type { ClusterJail, JailStatus, NodeRecord, Placement } from './records.ts';
import type { ClusterState, NodeRegistration } from './state.ts';
import { type EtcdAccess, etcdClientOptions } from './etcd-access.ts';

/** Parameters that only mean something to the cluster: never handed to the local service. */
export const CLUSTER_ONLY_PARAMS: readonly string[] = ['node', 'node.selector', 'restart.policy'];

/** Chooses a node for a jail (placement.ts): a node name, or throws JY_ERR_NO_NODE. */
export type PlaceFn = (jail: ClusterJail, nodes: readonly NodeRecord[], jails: readonly ClusterJail[]) => string;

/** The local single-host service the agent drives (src/runtime/service.ts). */
export type LocalService = JailService & {
  recover?(name: string): Promise<JailRecord>;
  mountTransient?(name: string, plan: MountPlan): Promise<() => Promise<void>>;
};

export interface NodeAgentOptions {
  /** The cluster state, open (its mirror loaded). */
  state: ClusterState;
  /** Fail-over's choice of a node (default: placement.ts's, least loaded). */
  place?: PlaceFn;
  node: Omit<NodeRecord, 'startedAt' | 'version'>;
  local: {
    service: LocalService;
    store: Store;
    isAlive?: (j: JailRecord) => boolean;
    /** Kills every process of every jail of the local state folder at once (the driver's
     * killAll): the fence's last resort at its deadline (default: the platform driver's). */
    killAll?: () => Promise<number>;
  };
  /** Lease TTL in seconds (default 10). */
  leaseTtlSec?: number;
  /** Full pass over every jail (default 5000 ms). */
  passIntervalMs?: number;
  /** Poll of the local store for local changes (readiness, a jail that died); default 200 ms. */
  localPollMs?: number;
  /** Longest a start may take before it is rolled back (default 60 s). */
  stepTimeoutMs?: number;
  /** etcd's client URLs: asked for their health before fencing (see beforeFence). */
  endpoints?: string[];
  /** The node's skeleton versions, "NAME@VERSION" -> digest (default: registry.ts's
   * skeletonDigests of the local store's folder). */
  skeletonDigests?: () => Record<string, string>;
  /** Jails reconciled at once (default 4). */
  parallel?: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

export interface NodeAgent {
  readonly name: string;
  /** True while fenced (etcd unreachable): local jails are stopped, nothing is reported. */
  readonly fenced: boolean;
  /** Resolves when every jail queued so far has been reconciled (tests, shutdown). */
  settled(): Promise<void>;
  /** Stops the loops and revokes the lease; `stopJails` also stops every local jail. */
  stop(opts?: { stopJails?: boolean }): Promise<void>;
}

/** What a reconcile acted on: actions are taken once per fingerprint (a failed start is not
 * retried in a loop, unless the jail's restart.policy asks for it). */
interface Attempt {
  fp: string;
  error: string | null;
  at: number;
}

const sameStatus = (a: JailStatus | null, b: JailStatus): boolean =>
  !!a &&
  a.state === b.state &&
  a.jid === b.jid &&
  a.ready === b.ready &&
  a.lastError === b.lastError &&
  a.token === b.token &&
  JSON.stringify(a.addresses) === JSON.stringify(b.addresses);

/** The parameters the local jail gets: the cluster's, without the cluster-only ones. */
export function localParams(params: Params): Params {
  const out: Params = {};
  for (const [k, v] of Object.entries(params)) if (!CLUSTER_ONLY_PARAMS.includes(k)) out[k] = v;
  return out;
}

/** The parameter change that makes `have` (a local jail's) into `want`, or undefined. */
export function paramsChange(want: Params, have: Params): Pick<JailChange, 'params' | 'unset'> | undefined {
  const set: Params = {};
  const unset: string[] = [];
  for (const [k, v] of Object.entries(want)) if (JSON.stringify(v) !== JSON.stringify(have[k])) set[k] = v;
  // a numeric name's implicit jid is the local service's own addition
  for (const k of Object.keys(have)) if (!(k in want) && k !== 'jid') unset.push(k);
  if (!Object.keys(set).length && !unset.length) return undefined;
  return { ...(Object.keys(set).length ? { params: set } : {}), ...(unset.length ? { unset } : {}) };
}

const policyOf = (j: ClusterJail): RestartPolicy => restartPolicy(j.params);

/** placement.ts's choice, with each node's load counted from the jails placed on it. */
export const defaultPlace = (
  jail: ClusterJail,
  nodes: readonly NodeRecord[],
  jails: readonly ClusterJail[],
  skeletonRefs?: ReadonlyMap<string, string>,
): string =>
  choosePlacement(
    jail,
    nodes.map((record) => ({ record, placed: jails.filter((j) => j.placement?.node === record.name).length })),
    { skeletonRefs },
  );

/** A promise that rejects after `ms` (the step goes on; its result is no longer awaited). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new JailyardError('JY_ERR_STEP_FAILED', `${what} took longer than ${ms} ms`, { step: what })),
      ms,
    );
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

interface KeeperThread {
  stop(): void;
}

/** The keepalive thread: plain CommonJS (eval), so it runs the same from src/ and dist/.
 * Every `every` ms one keepalive of the lease through each member at once (a client per
 * member), each bounded by `every`; the first answer's time goes to beat[0], a lease etcd no
 * longer knows sets beat[1]. One client over all members picked a member per call and a call
 * to a stopped one was only abandoned (bounded), never counted against it: with one member of
 * three down, keepalives missed at random and a node fenced while etcd had a quorum (a CI
 * run: a jail stopped 1.1 s after a second member stopped, the last verdict taken while it
 * was up). */
const KEEPER = `
const { workerData } = require('node:worker_threads');
const { Etcd3 } = require(workerData.etcd3);
const beat = new BigInt64Array(workerData.shared);
const every = workerData.every;
// Buffers arrive as Uint8Arrays (structured clone): grpc wants Buffers
const o = workerData.options;
const buf = (u) => (u ? Buffer.from(u.buffer, u.byteOffset, u.byteLength) : undefined);
if (o.credentials) {
  const c = o.credentials;
  o.credentials = { rootCertificate: buf(c.rootCertificate), privateKey: buf(c.privateKey), certChain: buf(c.certChain) };
}
// no circuit breaker and no retries: etcd3's default opens a member's breaker for 5 s after
// three failed calls, longer than a short lease; after the quorum's return the keepalives
// then stayed refused while the new leader's renewal ran out, and the node fenced (a CI run
// of f2549e5: a jail stopped 12 s after a quorum's loss, the members back). Each tick is
// one bounded try per member; the next tick is the retry.
const { noop } = require(workerData.cockatiel);
o.faultHandling = { host: () => noop, global: noop };
const clients = workerData.endpoints.map((h) => new Etcd3({ hosts: [h], dialTimeout: every, ...o }));
const LATE = Symbol('late');
const late = () => new Promise((r) => setTimeout(() => r(LATE), every));
async function once(client) {
  const stream = await Promise.race([client.leaseClient.leaseKeepAlive().catch(() => LATE), late()]);
  if (stream === LATE) return;
  try {
    const answer = new Promise((resolve) => {
      stream.on('data', resolve);
      stream.on('error', () => resolve(LATE));
      stream.write({ ID: workerData.leaseId });
    });
    const res = await Promise.race([answer, late()]);
    if (res === LATE) return;
    if (Number(res.TTL) <= 0) Atomics.store(beat, 1, 1n);
    else Atomics.store(beat, 0, BigInt(Date.now()));
  } finally {
    try { stream.end(); } catch {}
  }
}
(async () => {
  for (;;) {
    const t = Date.now();
    await Promise.all(clients.map((c) => once(c).catch(() => {})));
    await new Promise((r) => setTimeout(r, Math.max(0, every - (Date.now() - t))));
  }
})();
`;

function startKeeperThread(
  endpoints: string[],
  access: EtcdAccess | undefined,
  leaseId: string,
  every: number,
  shared: SharedArrayBuffer,
  onError: (e: unknown) => void,
): KeeperThread {
  const { Worker } = process.getBuiltinModule('node:worker_threads') as typeof WorkerThreads;
  const etcd3 = createRequire(import.meta.url).resolve('etcd3');
  // etcd3's own fault-handling library, the one its policies are checked against
  const cockatiel = createRequire(etcd3).resolve('cockatiel');
  // the credentials go in memory (workerData), never through argv or the environment
  const options = etcdClientOptions(access);
  const worker = new Worker(KEEPER, {
    eval: true,
    workerData: { etcd3, cockatiel, endpoints, options, leaseId, every, shared },
  });
  worker.unref();
  worker.on('error', onError);
  return { stop: () => void worker.terminate() };
}

/** What one etcd member says of itself: its /health, or why it did not answer. With TLS
 * (https:// members) the probe shows the node's CA, client certificate and key. */
export async function probeMember(
  endpoint: string,
  timeoutMs: number,
  tls?: EtcdAccess['tls'],
): Promise<'healthy' | 'no-leader' | 'down' | 'unreachable'> {
  const url = new URL('/health', endpoint);
  try {
    if (tls) {
      const { Agent, request } = await import('undici');
      const dispatcher = new Agent({
        connect: { ca: tls.ca, ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}) },
      });
      try {
        const res = await request(url, { dispatcher, signal: AbortSignal.timeout(timeoutMs) });
        const body = (await res.body.json().catch(() => ({}))) as { health?: unknown };
        return body.health === 'true' ? 'healthy' : 'no-leader';
      } finally {
        void dispatcher.close().catch(() => {});
      }
    }
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await res.json().catch(() => ({}))) as { health?: unknown };
    return body.health === 'true' ? 'healthy' : 'no-leader';
  } catch (e) {
    const code = (e as { code?: string }).code ?? (e as { cause?: { code?: string } }).cause?.code;
    return code === 'ECONNREFUSED' ? 'down' : 'unreachable';
  }
}

export async function startNodeAgent(opts: NodeAgentOptions): Promise<NodeAgent> {
  const { state, local } = opts;
  const nodes = (): NodeRecord[] => state.nodeEntries().map((e) => e.record);
  const jails = (): ClusterJail[] => state.jailEntries().map((e) => e.jail);
  /** CAS update; `fn` returning undefined writes nothing; a jail gone meanwhile is no error. */
  const update = async (name: string, fn: (j: ClusterJail) => ClusterJail | undefined): Promise<void> => {
    try {
      await state.updateJail(name, (j) => fn(j) ?? null);
    } catch (e) {
      if (e instanceof JailyardError && e.code === 'JY_ERR_JAIL_NOT_FOUND') return;
      throw e;
    }
  };
  const me = opts.node.name;
  const ttl = opts.leaseTtlSec ?? 10;
  const ttlMs = ttl * 1000;
  const passMs = opts.passIntervalMs ?? 5000;
  const stepMs = opts.stepTimeoutMs ?? 60_000;
  const parallel = Math.max(1, opts.parallel ?? 4);
  const log = opts.log ?? (() => {});
  const readDigests = opts.skeletonDigests ?? (() => skeletonDigests(local.store.dir));
  const digestsNow = (): Record<string, string> => {
    try {
      return readDigests();
    } catch (e) {
      log('warn', 'cannot list the skeletons', { error: describeError(e) });
      return published;
    }
  };
  let published: Record<string, string> = {};
  published = digestsNow();
  const record = (): NodeRecord => ({
    ...opts.node,
    skeletons: published,
    startedAt: new Date().toISOString(),
    version: 1,
  });
  /** The first digest published for a version is the cluster's reference: record ours
   * where none is yet (a mismatch is the node's, found at placement and create). */
  const publishRefs = async (): Promise<void> => {
    try {
      await within(state.publishSkeletonRefs(published), stepMs, 'skeleton digests');
    } catch (e) {
      log('warn', 'cannot record the skeleton digests', { error: describeError(e) });
    }
  };
  let refreshing = false;
  /** A skeleton made or removed since the last record: publish the node record again. */
  const refreshSkeletons = async (): Promise<void> => {
    if (refreshing || fenced || stopped || !reg) return;
    const now = digestsNow();
    if (JSON.stringify(now) === JSON.stringify(published)) return;
    refreshing = true;
    try {
      published = now;
      await publishRefs();
      if (reg && !fenced && !stopped) await within(state.updateNode(reg, record()), stepMs, 'node record');
      log('info', 'skeletons changed: node record updated', { skeletons: Object.keys(now) });
    } catch (e) {
      log('warn', 'cannot update the node record', { error: describeError(e) });
    } finally {
      refreshing = false;
    }
  };
  /** Refuses a jail whose skeleton here differs from the cluster's reference content. */
  const checkSkeleton = (name: string, params: Params): void => {
    const skel = skeletonOf(params);
    if (!skel) return;
    let ref: string;
    let digest: string;
    try {
      const v = resolveSkeleton(local.store.dir, skel.text);
      ref = `${skel.name}@${v.version}`;
      digest = manifestDigest(readFileSync(v.manifest));
    } catch {
      return; // the local service says why the skeleton cannot be used
    }
    const want = state.skeletonRefs().get(ref);
    if (want !== undefined && want !== digest)
      throw new JailyardError(
        'JY_ERR_SKELETON_MISMATCH',
        `skeleton ${ref} on node ${me} has digest ${digest}, the cluster's reference is ${want}: this node's copy has other content under the same name and version`,
        { jail: name, param: 'skeleton' },
      );
  };

  // registration refuses a taken name or an overlapping range: the caller sees the error
  let lastAlive = Date.now();
  let fenced = false;
  let stopped = false;
  let reRegistering = false;
  const register = async (): Promise<NodeRegistration> => {
    published = digestsNow();
    await publishRefs();
    const r = await state.register(record(), { ttlSec: ttl });
    r.lease.on('keepaliveSucceeded', () => {
      if (reg === r) lastAlive = Date.now();
    });
    // etcd says the lease is gone (expired, revoked): fence at once, re-register later.
    // etcd3 also declares a lease lost by itself after two TTLs without an answer: that
    // silence is for beforeFence to judge (without quorum the lease cannot expire)
    r.lease.on('lost', (err: Error | undefined) => {
      if (reg === r && /^Lease \d+ is expired or revoked/.test(err?.message ?? ''))
        void fence('etcd says the node lease expired');
    });
    // who the members are, for the fence's judgement (beforeFence): while etcd answers
    void learnMembers();
    return r;
  };
  /** The voting members, and which of them each of the node's endpoints reaches. */
  let members: { count: number; of: Map<string, string> } | undefined;
  let learning = false;
  const learnMembers = async (): Promise<void> => {
    if (!opts.endpoints?.length || learning) return;
    learning = true;
    try {
      const list = await state.members(Math.min(2000, ttlMs / 2));
      const origin = (u: string) => {
        try {
          return new URL(u).origin;
        } catch {
          return u;
        }
      };
      const of = new Map<string, string>();
      for (const ep of opts.endpoints)
        for (const m of list) if (m.clientURLs.some((u) => origin(u) === origin(ep))) of.set(ep, m.id);
      members = { count: list.length, of };
    } catch {
      // kept from the last time; without it the rule without counting holds
    } finally {
      learning = false;
    }
  };
  let reg: NodeRegistration | undefined;
  reg = await register();

  const attempts = new Map<string, Attempt>();
  const dirty = new Set<string>();
  const busy = new Set<string>();
  let running = 0;
  let waiters: (() => void)[] = [];
  const timers: NodeJS.Timeout[] = [];

  const idle = (): boolean => running === 0 && dirty.size === 0;
  const wakeWaiters = (): void => {
    if (!idle()) return;
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };

  const fingerprint = (j: ClusterJail): string =>
    JSON.stringify([j.placement?.token, j.desired, j.params, j.meta, j.env]);

  /** Reports `status` for the jail's current placement token, if it changed. */
  const report = async (name: string, token: string, status: Omit<JailStatus, 'token' | 'at'>): Promise<void> => {
    if (fenced || stopped) return;
    const next: JailStatus = { ...status, token, at: new Date().toISOString() };
    await within(
      update(name, (j) => {
        // only for the placement it acts for: a re-placed jail's status is the new node's
        if (j.placement?.node !== me || j.placement.token !== token) return undefined;
        if (sameStatus(j.status, next)) return undefined;
        return { ...j, status: next };
      }),
      stepMs,
      'status report',
    );
  };

  /** Reports `to` ('starting', 'stopping') for the current token before the local step, in
   * the same CAS as the check that the record still asks for it (desired running for a
   * start, stopped for a stop). False: the record changed meanwhile, the step is not taken
   * (the change queues the jail again). An error (etcd unreachable) is the step's error. */
  const claim = async (name: string, token: string, to: 'starting' | 'stopping', l: JailRecord): Promise<boolean> => {
    if (fenced || stopped) return false;
    let ok = false;
    const want = to === 'starting' ? 'running' : 'stopped';
    await within(
      update(name, (j) => {
        ok = false;
        if (j.placement?.node !== me || j.placement.token !== token || j.desired !== want) return undefined;
        ok = true;
        const next: JailStatus = { ...statusOf(l, null), state: to, token, at: new Date().toISOString() };
        return { ...j, status: next };
      }),
      stepMs,
      'status report',
    );
    return ok && !fenced;
  };

  const statusOf = (l: JailRecord | undefined, error: string | null): Omit<JailStatus, 'token' | 'at'> => ({
    state: l?.state ?? 'stopped',
    jid: l?.jid ?? 0,
    ready: l?.ready ?? false,
    lastError: error ?? l?.lastError ?? null,
    addresses: l && l.state !== 'stopped' ? (l.runtime?.network?.addresses ?? []) : [],
  });

  /** Stops and forgets a local jail that is no longer placed here. */
  const removeLocal = async (name: string): Promise<void> => {
    const l = local.store.getJail(name);
    if (!l) return;
    log('info', 'removing local jail no longer placed on this node', { jail: name });
    const r = await within(local.service.remove([name]), stepMs, 'remove');
    const failed = r.outcomes.find((o) => o.status !== 'ok');
    if (failed)
      throw new JailyardError('JY_ERR_STEP_FAILED', `cannot remove local jail: ${failed.message}`, { jail: name });
  };

  const outcomeError = (r: { outcomes: { name: string; status: string; message?: string }[] }, name: string) => {
    const o = r.outcomes.find((x) => x.name === name && x.status !== 'ok');
    return o ? (o.message ?? o.status) : null;
  };

  /** Makes the local jail `name` match its cluster record, then reports its status. */
  const reconcileJail = async (name: string, periodic: boolean): Promise<void> => {
    // fenced: the fence stopped the local jails; nothing else changes until re-registered
    if (fenced) return;
    const entry = state.jailEntry(name);
    const cj = entry?.jail;
    const mine = !!cj && cj.placement?.node === me;
    // a record that fails validation is not an absent one: its local jail is left as it is
    if (!cj && state.invalidRecords().has(state.keys.jail(name))) {
      log('warn', 'the jail record in etcd is invalid: its local jail is left alone', { jail: name });
      return;
    }
    if (!mine) {
      attempts.delete(name);
      await removeLocal(name);
      return;
    }
    const token = cj.placement!.token;
    const fp = fingerprint(cj);
    const prev = attempts.get(name);
    let l = local.store.getJail(name);
    const wantRunning = cj.desired === 'running';
    const mismatch = !l || (wantRunning ? l.state === 'stopped' : l.state !== 'stopped');
    // act when the record changed since the last attempt; a jail that went down by itself
    // (or a failed start) is started again only as its restart.policy says, at a pass
    const policy = policyOf(cj);
    const retry =
      periodic &&
      mismatch &&
      wantRunning &&
      (policy === 'always' || (policy === 'on-failure' && (prev?.error !== null || l?.lastError))) &&
      Date.now() - (prev?.at ?? 0) >= passMs;
    if (prev?.fp === fp && !retry) {
      await report(name, token, statusOf(l, prev.error));
      return;
    }
    let error: string | null = null;
    try {
      const params = localParams(cj.params);
      // addresses outside this node's range (a record that never went through placement):
      // nothing is created, changed for a run, or started
      const checkAddresses = (): void => checkNodeAddresses(name, cj.params, opts.node);
      if (!l) {
        checkAddresses();
        checkSkeleton(name, params);
        const replace = (value: string): MetaOp[] => (value ? [{ op: 'replace', value }] : []);
        await within(
          local.service.create({
            spec: { name, params: { name, ...params } },
            meta: replace(cj.meta),
            env: replace(cj.env),
          }),
          stepMs,
          'create',
        );
      } else {
        const change: JailChange = { ...paramsChange(params, l.params) };
        if (l.meta !== cj.meta) change.meta = [{ op: 'replace', value: cj.meta }];
        if (l.env !== cj.env) change.env = [{ op: 'replace', value: cj.env }];
        if (wantRunning && (change.params || change.unset)) checkAddresses();
        if (change.params || change.unset || change.meta || change.env) {
          // what cannot change on a running jail is refused by the local service: with
          // desired running that stays an error (as on one host); stopped, it applies
          const stopFirst = !wantRunning && l.state !== 'stopped';
          if (stopFirst) {
            error = outcomeError(await within(local.service.stop([name]), stepMs, 'stop'), name);
            if (error) throw new JailyardError('JY_ERR_STEP_FAILED', error, { jail: name });
          }
          await within(local.service.modify(name, change), stepMs, 'modify');
        }
      }
      l = local.store.getJail(name);
      if (fenced) return;
      if (wantRunning && l?.state === 'stopped') {
        // the cluster sees 'starting' before anything runs: a stop waits for it and a move is
        // refused; a stop written first is seen here and nothing starts
        checkAddresses();
        if (!(await claim(name, token, 'starting', l))) return;
        error = outcomeError(await local.service.start([name], { signal: AbortSignal.timeout(stepMs) }), name);
      } else if (!wantRunning && l && l.state !== 'stopped') {
        await claim(name, token, 'stopping', l);
        error = outcomeError(await within(local.service.stop([name]), stepMs, 'stop'), name);
      }
    } catch (e) {
      error = describeError(e);
    }
    if (error) log('warn', 'reconcile failed', { jail: name, error });
    attempts.set(name, { fp, error, at: Date.now() });
    await report(name, token, statusOf(local.store.getJail(name), error));
  };

  const periodicNames = new Set<string>();
  const pump = (): void => {
    if (stopped) return;
    for (const name of [...dirty]) {
      if (running >= parallel) break;
      if (busy.has(name)) continue;
      dirty.delete(name);
      const periodic = periodicNames.delete(name);
      busy.add(name);
      running++;
      reconcileJail(name, periodic)
        .catch((e) => log('error', 'reconcile failed', { jail: name, error: describeError(e) }))
        .finally(() => {
          busy.delete(name);
          running--;
          pump();
          wakeWaiters();
        });
    }
    wakeWaiters();
  };
  const queue = (name: string, periodic = false): void => {
    dirty.add(name);
    if (periodic) periodicNames.add(name);
    pump();
  };

  /** Every jail placed here, every local jail, and every jail of a node that is gone. */
  const fullPass = (): void => {
    if (fenced || stopped) return;
    void refreshSkeletons();
    // a member added since would make the count too small, and the fence's judgement unsafe
    void learnMembers();
    const live = new Set(nodes().map((n) => n.name));
    for (const jail of jails()) {
      if (jail.placement?.node === me) queue(jail.name, true);
      else if (jail.placement && !live.has(jail.placement.node)) void failOver(jail.name, jail.placement.node);
    }
    for (const l of local.store.listJails()) queue(l.name, true);
  };

  /** A jail placed on a node that is gone: re-place it (restart.policy other than 'no') or
   * mark it stopped; the CAS on its mod_revision makes exactly one agent's write win. The
   * same transaction requires `nodes/<lost>` absent: this node's mirror may lag the lost
   * node's re-registration, and that node then starts the jail itself. */
  const failOver = async (name: string, lost: string): Promise<void> => {
    if (fenced || stopped) return;
    const lostKey = state.keys.node(lost);
    try {
      await within(
        state
          .updateJail(
            name,
            (j) => {
              if (j.placement?.node !== lost) return null;
              if (nodes().some((n) => n.name === lost)) return null;
              const now = new Date().toISOString();
              if (policyOf(j) === 'no') {
                const lastError = `node ${lost} lost`;
                if (
                  j.status?.token === j.placement.token &&
                  j.status.state === 'stopped' &&
                  j.status.lastError === lastError
                )
                  return null;
                const status: JailStatus = {
                  state: 'stopped',
                  jid: 0,
                  ready: false,
                  lastError,
                  addresses: [],
                  token: j.placement.token,
                  at: now,
                };
                return { ...j, status };
              }
              const node = opts.place
                ? opts.place(j, nodes(), jails())
                : defaultPlace(j, nodes(), jails(), state.skeletonRefs());
              const placement: Placement = { node, token: randomUUID(), at: now };
              return { ...j, placement, status: null };
            },
            { requireAbsent: [lostKey] },
          )
          .catch((e: unknown) => {
            if (e instanceof JailyardError && e.code === 'JY_ERR_JAIL_NOT_FOUND') return;
            throw e;
          }),
        stepMs,
        'fail-over',
      );
    } catch (e) {
      if (e instanceof JailyardError && e.place.key === lostKey) {
        log('info', 'fail-over not needed: the node is registered again', { jail: name, node: lost });
        return;
      }
      log('warn', 'fail-over failed', { jail: name, node: lost, error: describeError(e) });
    }
  };

  const unsubscribe = state.subscribe((c) => {
    if (stopped) return;
    if (c.kind === 'resync') fullPass();
    else if (c.kind === 'jail') {
      if (!fenced) queue(c.name);
    } else if (c.kind !== 'node' || c.type !== 'DELETED') return;
    else if (c.name !== me) {
      for (const jail of jails()) if (jail.placement?.node === c.name) void failOver(jail.name, c.name);
    } else if (!fenced) {
      // our own key is gone (lease expired or revoked by someone): fence, then re-register
      void fence('the node key was deleted');
    }
  });

  /** Stops every local jail; nothing is reported until the node has re-registered. The stop
   * has a deadline: the lease's end (TTL after the last renewal) less a margin, since another
   * node may start the jail from then on. A jail's own exec.stop or a process that ignores
   * SIGTERM could hold an ordinary stop for longer: at the deadline every process of every
   * jail of this state folder is killed at once, and the records are finished as after a crash. */
  let fencing: Promise<void> | undefined;
  const fenceMarginMs = Math.min(1000, ttlMs / 4);
  const fence = (why: string): Promise<void> => {
    if (fenced || stopped) return fencing ?? Promise.resolve();
    fenced = true;
    // a fenced node renews nothing: its lease is given up (others may take its jails at the
    // lease's end). A keepalive still sent after etcd came back kept the old lease, and with
    // it the node's name, alive for ever: the node could never register again
    keeper?.stop();
    keeper = undefined;
    reg?.lease.release();
    const deadline = lastAlive + ttlMs - fenceMarginMs;
    log('warn', 'fenced: stopping every local jail', { reason: why, deadlineInMs: deadline - Date.now() });
    attempts.clear();
    fencing = (async () => {
      let done = false;
      const graceful = (async () => {
        await stopAllLocal();
        // a reconcile under way may still start a jail: once they are done, stop again
        while (running > 0) await new Promise((r) => setTimeout(r, 50));
        await stopAllLocal();
      })().finally(() => {
        done = true;
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        graceful,
        new Promise((r) => {
          timer = setTimeout(r, Math.max(0, deadline - Date.now()));
        }),
      ]);
      clearTimeout(timer);
      if (done && local.store.listJails().every((j) => j.state === 'stopped')) return;
      await killAllLocal();
      // with its processes gone the ordinary stop ends soon; what it leaves is a crash's
      await within(graceful, stepMs, 'fence stop').catch(() => {});
      await recoverLocal();
    })().finally(() => {
      fencing = undefined;
    });
    return fencing;
  };
  const stopAllLocal = async (): Promise<void> => {
    const names = local.store
      .listJails()
      .filter((j) => j.state !== 'stopped')
      .map((j) => j.name);
    if (!names.length) return;
    try {
      await local.service.stop(names, { parallel: 8 });
    } catch (e) {
      log('error', 'stopping local jails failed', { error: describeError(e) });
    }
  };
  let killAllFn: (() => Promise<number>) | undefined = local.killAll;
  const killAllLocal = async (): Promise<void> => {
    try {
      if (!killAllFn) {
        const { loadDriver } = await import('../platform/index.ts');
        const driver = await loadDriver({ stateDir: local.store.dir });
        if (!driver.killAll) throw new JailyardError('JY_ERR_STEP_FAILED', `the ${driver.platform} driver cannot kill`);
        killAllFn = () => driver.killAll!();
      }
      const n = await killAllFn();
      log('warn', 'fence deadline: killed every jail process of this node', { killed: n });
    } catch (e) {
      log('error', 'killing the local jails failed', { error: describeError(e) });
    }
  };
  /** Finishes, as after a crash, every local jail the stop left not stopped. */
  const recoverLocal = async (): Promise<void> => {
    for (const j of local.store.listJails()) {
      if (j.state === 'stopped' || !local.service.recover) continue;
      try {
        if (j.state === 'running') local.store.transition(j.name, 'running', 'stopping', { lastError: 'fenced' });
        await within(local.service.recover(j.name), stepMs, 'recover');
      } catch (e) {
        log('error', 'finishing a fenced jail failed', { jail: j.name, error: describeError(e) });
      }
    }
  };
  /** The registration given up by a fence, until etcd has revoked its lease. */
  let staleReg: NodeRegistration | undefined;
  const reRegister = async (): Promise<void> => {
    if (reRegistering || stopped) return;
    reRegistering = true;
    try {
      const t0 = Date.now();
      if (reg) staleReg = reg;
      reg = undefined;
      // the old lease holds the node's name until it is revoked or expires: revoked again at
      // every attempt until etcd takes it (a client whose circuit breaker is still open
      // refuses the first ones). Bounded: without a quorum a revoke waits for a leader, and an
      // unbounded one could keep the node from ever registering again once the quorum was back
      if (staleReg) {
        await within(staleReg.revoke(), ttlMs, 'revoke');
        staleReg = undefined;
      }
      const revokedMs = Date.now() - t0;
      reg = await within(register(), ttlMs, 'register');
      lastAlive = Date.now();
      const registeredMs = lastAlive - t0;
      startKeeper();
      // the fencing stop ends before anything is reconciled again
      await fencing;
      const stoppedMs = Date.now() - t0;
      while (running > 0) await new Promise((r) => setTimeout(r, 50));
      attempts.clear();
      fenced = false;
      // where the time went, for an operator wondering why a node came back late
      log('info', 're-registered: reconciling from scratch', {
        revokedMs,
        registeredMs,
        fenceStopMs: stoppedMs,
        tookMs: Date.now() - t0,
      });
      fullPass();
    } catch (e) {
      log('warn', 're-registration failed', { error: describeError(e) });
    } finally {
      reRegistering = false;
    }
  };

  // keepalive: a few times per TTL; the fence comes at TTL/2 without a successful one. The
  // local service does much of its work synchronously (mounts, links, spawnSync): a start can
  // hold this thread for seconds, longer than a short lease. With the etcd URLs known, a
  // worker thread sends the keepalives (its own client, its own event loop) and shares the
  // time of the last answer; this thread only decides. A tick that comes late means this
  // thread was busy: the fence waits one more tick for the worker's news.
  const kaEvery = Math.max(200, Math.floor(ttlMs / 6));
  const beat = new BigInt64Array(new SharedArrayBuffer(16)); // [last answer ms, lease gone]
  let keeper: KeeperThread | undefined;
  /** The last keepalive answer seen (the keeper's beat[0]). */
  let lastAnswer = Date.now();
  const startKeeper = (): void => {
    keeper?.stop();
    keeper = undefined;
    lastAnswer = Date.now();
    Atomics.store(beat, 0, BigInt(lastAnswer));
    Atomics.store(beat, 1, 0n);
    if (!reg || !opts.endpoints?.length) return;
    try {
      keeper = startKeeperThread(
        opts.endpoints,
        state.access,
        reg.leaseId,
        kaEvery,
        beat.buffer as SharedArrayBuffer,
        (e) => {
          log('warn', 'keepalive thread failed: keepalives from the main thread', { error: describeError(e) });
          keeper = undefined;
        },
      );
    } catch (e) {
      log('warn', 'no keepalive thread: keepalives from the main thread', { error: describeError(e) });
    }
  };
  startKeeper();
  let kaBusy = false;
  let lastTick = Date.now();
  let graceUntil = 0;
  const keepalive = (): void => {
    if (kaBusy) return;
    const r = reg;
    if (!fenced && (keeper || !r)) return;
    kaBusy = true;
    const p = fenced
      ? reRegister()
      : within(r!.lease.keepaliveOnce(), kaEvery, 'keepalive').then(() => {
          if (reg === r) lastAlive = Date.now();
        });
    p.catch(() => {}).finally(() => {
      kaBusy = false;
    });
  };
  // Without quorum (a majority of members down) no lease can expire: etcd only expires
  // leases through a leader, and a new leader renews every lease in full. Fencing then would
  // stop every jail of the cluster for nothing. It is told from a partition (where the other
  // side may have a leader and expire this node's lease) by asking every member: held back
  // only when the members that answer have no leader and every other one refuses the
  // connection (its process is down); a member that does not answer at all may be alive
  // behind a partition, and then the node fences. The members are asked from TTL/3 on, so
  // the answer is there at TTL/2.
  let probing = false;
  let holding = false;
  let verdict: { at: number; lost: boolean; seen: string[] } | undefined;
  let doubtSince: number | undefined;
  const probe = (): void => {
    const endpoints = opts.endpoints ?? [];
    if (probing || !endpoints.length) return;
    probing = true;
    const at = Date.now();
    void Promise.all(endpoints.map((ep) => probeMember(ep, Math.max(300, Math.floor(ttlMs / 6)), state.access?.tls)))
      .then((seen) => {
        // no quorum is possible when a majority of the voting members refuse connections
        // (their processes are down): a member that is still up may answer slowly or not at
        // all at first (it waits for the leader it still believes in), and that must not
        // count as a partition
        const down = new Set(endpoints.flatMap((ep, k) => (seen[k] === 'down' && members?.of.get(ep)) || []));
        const noMajority = members !== undefined && down.size >= Math.floor(members.count / 2) + 1;
        const lost = noMajority || (seen.includes('no-leader') && seen.every((m) => m === 'no-leader' || m === 'down'));
        if (holding && seen.includes('healthy')) {
          // a leader again: it renewed every lease in full when it was elected
          holding = false;
          lastAlive = Math.max(lastAlive, at);
          log('info', 'etcd has a leader again');
        }
        verdict = { at, lost, seen };
      })
      .finally(() => {
        probing = false;
      });
  };
  const beforeFence = (now: number): void => {
    // the members as they are now: a verdict asked at the last tick or the one before (a
    // probe is bounded by about a tick). One asked earlier in the same silence may predate
    // the loss of the quorum (a second member stopped since), and fencing on it stops every
    // jail while no lease can expire. Waiting for a newer one is bounded: at two thirds of
    // the TTL the node fences whatever it knows.
    const fresh = verdict && now - verdict.at <= 2 * kaEvery + 50 ? verdict : undefined;
    if (fresh?.lost) {
      if (!holding)
        log('warn', 'etcd has no quorum: no lease can expire, local jails keep running', { seen: fresh.seen });
      holding = true;
      doubtSince = undefined;
      return;
    }
    // Holding, a member that was down may be starting again (its port open, no answer yet,
    // WAL replay). If it was behind a partition instead, a leader elected there renews every
    // lease in full first: this node still has a TTL from the moment of doubt, and spends at
    // most half of it waiting.
    if (holding && fresh && !fresh.seen.includes('healthy')) {
      doubtSince ??= now;
      if (now - doubtSince < ttlMs / 2) return;
    }
    // the members' answer is on its way (asked at every tick since TTL/3, each bounded by TTL/6)
    if (opts.endpoints?.length && !fresh && now - lastAlive < (2 * ttlMs) / 3) {
      probe();
      return;
    }
    void fence(`etcd unreachable for half the lease TTL${fresh ? ` (members: ${fresh.seen.join(', ')})` : ''}`);
  };
  timers.push(
    setInterval(() => {
      if (stopped) return;
      const now = Date.now();
      const answered = Number(Atomics.load(beat, 0));
      // the first keepalive answered after a silence: how long it was, for the log
      if (answered > lastAnswer) {
        if (answered - lastAnswer > ttlMs / 3)
          log('info', 'etcd answers keepalives again', { silentMs: answered - lastAnswer });
        lastAnswer = answered;
      }
      lastAlive = Math.max(lastAlive, answered);
      if (Atomics.load(beat, 1) === 1n && !fenced) {
        Atomics.store(beat, 1, 0n);
        void fence('etcd says the node lease expired');
      }
      if (now - lastAlive <= ttlMs / 3) {
        holding = false;
        verdict = undefined;
        doubtSince = undefined;
      } else if (!fenced) probe();
      if (now - lastTick > 2 * kaEvery) {
        graceUntil = now + kaEvery;
        kaBusy = false;
      }
      lastTick = now;
      if (!fenced && now - lastAlive > ttlMs / 2 && now >= graceUntil) beforeFence(now);
      keepalive();
    }, kaEvery),
  );

  // local changes (readiness, a jail that stopped by itself) show up in the local store
  let localRev = local.store.currentRevision();
  timers.push(
    setInterval(() => {
      if (stopped || fenced) return;
      try {
        const rev = local.store.currentRevision();
        if (rev === localRev) return;
        for (const e of local.store.eventsSince(localRev)) queue(e.name);
        localRev = rev;
      } catch (e) {
        // compacted or busy: a full pass covers it
        localRev = local.store.currentRevision();
        fullPass();
        log('warn', 'local poll failed', { error: describeError(e) });
      }
    }, opts.localPollMs ?? 200),
  );

  // the full pass also notices a jail whose pid 1 died (the local list reaps jails without
  // persist that exited; a persist jail's gone pid 1 is finished like reconcile does)
  timers.push(
    setInterval(() => {
      if (stopped || fenced) return;
      void checkLocalHealth().finally(fullPass);
    }, passMs),
  );
  const checkLocalHealth = async (): Promise<void> => {
    try {
      await local.service.list();
      if (!local.isAlive || !local.service.recover) return;
      for (const j of local.store.listJails()) {
        if (j.state !== 'running' || !j.runtime?.create || local.isAlive(j)) continue;
        local.store.transition(j.name, 'running', 'stopping', { lastError: 'pid 1 of the jail was gone' });
        await local.service.recover(j.name);
      }
    } catch (e) {
      log('warn', 'local health check failed', { error: describeError(e) });
    }
  };

  for (const t of timers) t.unref?.();
  fullPass();

  return {
    name: me,
    get fenced() {
      return fenced;
    },
    settled: () => (idle() ? Promise.resolve() : new Promise<void>((r) => waiters.push(r))),
    async stop(o = {}) {
      if (stopped) return;
      for (const t of timers) clearInterval(t);
      unsubscribe();
      // let reconciles under way finish (they are bounded), then stop taking work
      dirty.clear();
      while (running > 0) await new Promise((r) => setTimeout(r, 50));
      await fencing;
      stopped = true;
      if (o.stopJails) await stopAllLocal();
      keeper?.stop();
      if (reg) await within(reg.revoke(), 5000, 'revoke').catch(() => {});
      wakeWaiters();
    },
  };
}
