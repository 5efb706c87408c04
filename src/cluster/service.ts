// The JailService of a cluster: the same operations the API routes and the CLI use on one
// host, over ClusterState. It writes what the API side owns (params, meta, env, desired,
// placement) with compare-and-swap, and for start/stop waits for the agent of the jail's
// node to report the outcome in the jail's status (docs/cluster.md).

import { JailyardError, withContext } from '../errors.ts';
import type { JailSpec, Params } from '../conf/spec.ts';
import { jailRoot } from '../layout.ts';
import { applyMetaOps, type MetaOp } from '../meta/ops.ts';
import { buildGraph, failedOutcome, runBatch, withDependencies } from '../runtime/order.ts';
import { dependsOf } from '../runtime/params.ts';
import { checkChange, checkConditionalRemove, checkCreate } from '../runtime/service.ts';
import type { BatchOptions, BatchResult, JailOutcome, JailService } from '../runtime/types.ts';
import { isJidRef, validateJailName, wantedJid } from '../store/names.ts';
import type { JailChange, JailRecord, WriteOptions } from '../store/types.ts';
import { choosePlacement, type NodeLoad } from './placement.ts';
import type { ClusterJail, Desired, Placement } from './records.ts';
import { type ClusterState, type JailEntry, newToken } from './state.ts';

export interface ClusterServiceOptions {
  /** How long start/stop/remove wait for the node's report, ms (default 60000). */
  waitMs?: number;
}

/** Parameters whose change moves the jail (re-placement), refused while it runs. */
const PLACEMENT_PARAMS = ['node', 'node.selector', 'ip4.addr'];

function summarize(outcomes: JailOutcome[]): BatchResult {
  return { outcomes, ok: outcomes.every((o) => o.status === 'ok') };
}

const sameStatus = (a: ClusterJail['status'], b: ClusterJail['status']): boolean =>
  JSON.stringify(a) === JSON.stringify(b);

export function createClusterService(state: ClusterState, opts: ClusterServiceOptions = {}): JailService {
  const waitMs = opts.waitMs ?? 60_000;
  const now = (): string => new Date().toISOString();

  /** jail_getid() over the cluster: a name first; an all-digit reference is then the jid of
   * the one running jail reporting it (jids are per node: two nodes may both have jid 5). */
  const resolve = (ref: string): JailEntry | undefined => {
    const named = state.jailEntry(ref);
    if (named || !isJidRef(ref)) return named;
    const jid = Number(ref);
    const running = state.jailEntries().filter((e) => {
      const r = state.recordOf(e);
      return r.state !== 'stopped' && r.jid === jid;
    });
    return running.length === 1 ? running[0] : undefined;
  };
  const requireRef = (ref: string): JailEntry => {
    const e = resolve(ref);
    if (!e) throw new JailyardError('JY_ERR_JAIL_NOT_FOUND', `jail "${ref}" not found`, { jail: ref });
    return e;
  };
  /** Every reference resolved before anything changes; one missing changes nothing. */
  const requireAll = (refs: string[]): string[] => {
    const found = refs.map(resolve);
    const missing = refs.filter((_, i) => !found[i]);
    if (missing.length === 1) requireRef(missing[0]!);
    if (missing.length > 1)
      throw new JailyardError(
        'JY_ERR_JAIL_NOT_FOUND',
        `jails ${missing.map((n) => `"${n}"`).join(', ')} not found; nothing was changed`,
        { jail: missing[0]! },
      );
    return [...new Set(found.map((e) => e!.jail.name))];
  };
  const descendantsOf = (name: string): string[] =>
    state
      .jailEntries()
      .map((e) => e.jail.name)
      .filter((n) => n.startsWith(`${name}.`))
      .sort((a, b) => b.split('.').length - a.split('.').length);

  const loads = (): NodeLoad[] => {
    const placed = new Map<string, number>();
    for (const e of state.jailEntries()) {
      const n = e.jail.placement?.node;
      if (n !== undefined) placed.set(n, (placed.get(n) ?? 0) + 1);
    }
    return state.nodeEntries().map((n) => ({ record: n.record, placed: placed.get(n.record.name) ?? 0 }));
  };

  /** The node for a jail: a nested jail runs on its parent's node (inside its parent). */
  const place = (name: string, params: Params, current?: Placement | null): Placement => {
    const dot = name.lastIndexOf('.');
    if (dot > 0) {
      const parent = state.jailEntry(name.slice(0, dot))?.jail.placement;
      if (parent) return { node: parent.node, token: newToken(), at: now() };
    }
    const nodes = loads();
    // the current node, when it still fits, keeps the jail (its load counts the jail itself)
    if (current) {
      const mine = nodes.find((n) => n.record.name === current.node);
      if (mine) {
        try {
          choosePlacement({ name, params }, [{ ...mine, placed: mine.placed - 1 }], {
            skeletonRefs: state.skeletonRefs(),
          });
          return current;
        } catch {
          // it no longer fits: choose again below
        }
      }
    }
    return {
      node: choosePlacement({ name, params }, nodes, { skeletonRefs: state.skeletonRefs() }),
      token: newToken(),
      at: now(),
    };
  };

  const applyOps = (name: string, param: 'meta' | 'env', buf: string, ops: MetaOp[] | undefined): string => {
    if (!ops?.length) return buf;
    try {
      return applyMetaOps(buf, ops, state.settings().meta_maxbufsize);
    } catch (e) {
      throw e instanceof JailyardError ? withContext(e, { before: `${param}: `, place: { jail: name, param } }) : e;
    }
  };

  const nodeLost = (j: ClusterJail): string | undefined => {
    const n = j.placement?.node;
    return n !== undefined && !state.nodeEntry(n) ? n : undefined;
  };

  /**
   * Sets `desired` (placing the jail first when it has no live placement and should run),
   * then waits for the node's status for the current placement to reach it. The status an
   * agent writes after the change decides: running (or stopped, for a stop) is success, a
   * stopped status with an error is the failure it reports.
   */
  const drive = async (name: string, desired: Desired, bopts: BatchOptions, cas?: number): Promise<boolean> => {
    let before: ClusterJail['status'] = null;
    let changed = false;
    const written = await state.updateJail(
      name,
      (cur) => {
        before = cur.status;
        let placement = cur.placement;
        if (desired === 'running' && (placement === null || nodeLost(cur) !== undefined))
          placement = place(name, cur.params, null);
        changed = !(cur.desired === desired && placement === cur.placement);
        if (!changed) return null;
        return { ...cur, desired, placement, updatedAt: now() };
      },
      cas !== undefined ? { ifRevision: cas } : {},
    );
    const token = written.jail.placement?.token;
    const reached = (): boolean | Error => {
      const e = state.jailEntry(name);
      if (!e)
        return desired === 'stopped'
          ? true
          : new JailyardError('JY_ERR_JAIL_NOT_FOUND', `jail "${name}" was removed`, { jail: name });
      const j = e.jail;
      if (j.desired !== desired)
        return new JailyardError(
          'JY_ERR_CLUSTER',
          `another client set the jail's desired state to ${j.desired} meanwhile`,
          {
            jail: name,
          },
        );
      const lost = nodeLost(j);
      if (desired === 'stopped') {
        // nothing runs where there is no placement, no report yet, or no node any more
        if (!j.placement || !j.status || j.status.token !== j.placement.token || lost !== undefined) return true;
        return j.status.state === 'stopped';
      }
      if (lost !== undefined) return new JailyardError('JY_ERR_CLUSTER', `node ${lost} lost`, { jail: name });
      const s = j.status;
      if (!s || !j.placement || s.token !== j.placement.token || j.placement.token !== token) return false;
      if (s.state === 'running') return true;
      if (s.state === 'stopped' && s.lastError !== null && !sameStatus(s, before))
        return new JailyardError('JY_ERR_STEP_FAILED', s.lastError, { jail: name });
      return false;
    };
    const last: { outcome: boolean | Error } = { outcome: false };
    const ok = await state.waitUntil(
      () => {
        last.outcome = reached();
        return last.outcome !== false;
      },
      { timeoutMs: waitMs, ...(bopts.signal ? { signal: bopts.signal } : {}) },
    );
    if (last.outcome instanceof JailyardError && last.outcome.code === 'JY_ERR_STEP_FAILED') {
      // a failed start leaves the jail stopped, as on one host: the node does not retry it
      // until the next start asks again
      await state
        .updateJail(name, (cur) =>
          cur.desired === 'running' && cur.placement?.token === token
            ? { ...cur, desired: 'stopped', updatedAt: now() }
            : null,
        )
        .catch(() => {});
    }
    if (last.outcome instanceof Error) throw last.outcome;
    if (!ok) {
      const node = state.jailEntry(name)?.jail.placement?.node ?? '(none)';
      throw new JailyardError(
        'JY_ERR_CLUSTER',
        `node ${node} did not report the jail ${desired} within ${Math.round(waitMs / 1000)} s (desired stays ${desired})`,
        { jail: name },
      );
    }
    return changed;
  };

  // `depend` and nesting order the batch as on one host (runtime/order.ts): a jail starts
  // after what it depends on (a parent first) and stops before it; a failure skips the rest
  const dependsOfName = (n: string): string[] => {
    const e = state.jailEntry(n);
    const dot = n.lastIndexOf('.');
    const parent = dot > 0 && state.jailEntry(n.slice(0, dot)) ? [n.slice(0, dot)] : [];
    return [...(e ? dependsOf(e.jail.params) : []), ...parent].filter((d) => state.jailEntry(d) !== undefined);
  };
  /** A dry run's step: what `drive` would refuse, decided on the mirror, nothing written (a
   * start that needs a placement must find a node; a conditional one checks the revision). */
  const dryDrive = (name: string, desired: Desired, cas?: number): void => {
    const e = state.jailEntry(name);
    if (!e) throw new JailyardError('JY_ERR_JAIL_NOT_FOUND', `jail "${name}" not found`, { jail: name });
    if (cas !== undefined && e.revision !== cas)
      throw new JailyardError(
        'JY_ERR_REVISION_CONFLICT',
        `revision conflict: expected revision ${cas}, jail is at revision ${e.revision}`,
        { jail: name },
      );
    const cur = e.jail;
    if (desired === 'running' && (cur.placement === null || nodeLost(cur) !== undefined)) place(name, cur.params, null);
  };
  const batch = async (names: string[], desired: Desired, bopts: BatchOptions): Promise<BatchResult> => {
    const graph = buildGraph(names, dependsOfName);
    return summarize(
      await runBatch(
        names,
        graph,
        desired === 'running' ? 'start' : 'stop',
        bopts.parallel ?? 1,
        async (n) => void (bopts.dryRun ? dryDrive(n, desired) : await drive(n, desired, bopts)),
        bopts.signal,
      ),
    );
  };

  const service: JailService = {
    async list(filter) {
      return state.listJails(filter);
    },

    async get(ref) {
      // the mirror may lag a write made through another node: etcd has the last word
      const e = resolve(ref) ?? (await state.fetchJail(ref));
      return state.recordOf(e ?? requireRef(ref));
    },

    async create(input: { spec: JailSpec; meta?: MetaOp[]; env?: MetaOp[] }): Promise<JailRecord> {
      const { name, params } = checkCreate(input, {
        requireParent: (p) => {
          if (!state.jailEntry(p))
            throw new JailyardError('JY_ERR_JAIL_NOT_FOUND', `jail "${p}" not found`, { jail: p });
        },
      });
      validateJailName(name, wantedJid(params, name));
      // the root's rules (an absolute path without ".."; the folder itself is the node's)
      if (!name.includes('.')) jailRoot('/nonexistent', { name, params });
      const meta = applyOps(name, 'meta', '', input.meta);
      const env = applyOps(name, 'env', '', input.env);
      const placement = place(name, params);
      const at = now();
      const entry = await state.createJail({
        name,
        params,
        meta,
        env,
        desired: 'stopped',
        placement,
        status: null,
        createdAt: at,
        updatedAt: at,
        version: 1,
      });
      return state.recordOf(entry);
    },

    async modify(ref: string, change: JailChange, wopts?: WriteOptions): Promise<JailRecord> {
      // a name the mirror does not know yet goes to etcd, which has the last word
      const name = resolve(ref)?.jail.name ?? ref;
      for (const p of ['meta', 'env']) {
        if (change.params && Object.hasOwn(change.params, p))
          throw new JailyardError('JY_ERR_PARAM_VALUE', `${p} is not set through params; use the ${p} operations`, {
            jail: name,
            param: p,
          });
      }
      const touched = [...Object.keys(change.params ?? {}), ...(change.unset ?? [])];
      const entry = await state.updateJail(
        name,
        (cur, revision) => {
          const before = state.recordOf({ jail: cur, revision });
          checkChange(before, change);
          const params: Params = { ...cur.params };
          for (const k of change.unset ?? []) delete params[k];
          Object.assign(params, change.params ?? {});
          if (params.jid !== cur.params.jid) validateJailName(name, wantedJid(params, name));
          let placement = cur.placement;
          const moves = touched.filter(
            (p) => PLACEMENT_PARAMS.includes(p) && JSON.stringify(params[p]) !== JSON.stringify(cur.params[p]),
          );
          if (moves.length) {
            if (before.state !== 'stopped' || cur.desired !== 'stopped') {
              throw new JailyardError(
                'JY_ERR_PARAM_VALUE',
                `${moves[0]} cannot be changed while the jail is ${before.state === 'stopped' ? 'meant to run' : before.state}; stop it first`,
                { jail: name, param: moves[0]! },
              );
            }
            placement = place(name, params, cur.placement);
          }
          return {
            ...cur,
            params,
            meta: applyOps(name, 'meta', cur.meta, change.meta),
            env: applyOps(name, 'env', cur.env, change.env),
            placement,
            updatedAt: now(),
          };
        },
        wopts?.ifRevision !== undefined ? { ifRevision: wopts.ifRevision } : {},
      );
      return state.recordOf(entry);
    },

    async start(refs, bopts = {}) {
      const names = requireAll(refs);
      // like jail -c: what a jail depends on is started first, unless it already runs
      const all = withDependencies(names, dependsOfName).filter(
        (n) => names.includes(n) || state.getJail(n)?.state === 'stopped',
      );
      return batch(all, 'running', bopts);
    },

    async stop(refs, bopts = {}) {
      const requested = requireAll(refs);
      const names = [...new Set(requested.flatMap((n) => [...descendantsOf(n), n]))];
      return batch(names, 'stopped', bopts);
    },

    async restart(refs, bopts = {}) {
      const names = requireAll(refs);
      const running = names.filter((n) => state.getJail(n)?.state === 'running');
      const stopped = await service.stop(running, bopts);
      const failedStops = new Set(stopped.outcomes.filter((o) => o.status !== 'ok').map((o) => o.name));
      const started = await service.start(
        names.filter((n) => !failedStops.has(n)),
        bopts,
      );
      return summarize(
        names.map(
          (n) =>
            stopped.outcomes.find((o) => o.name === n && o.status !== 'ok') ??
            started.outcomes.find((o) => o.name === n)!,
        ),
      );
    },

    async remove(refs, bopts: BatchOptions & WriteOptions = {}) {
      const requested = requireAll(refs);
      const names = [...new Set(requested.flatMap((n) => [...descendantsOf(n), n]))];
      const cas = bopts.ifRevision;
      checkConditionalRemove(cas, requested, names);
      const outcomes: JailOutcome[] = [];
      if (bopts.dryRun) {
        // what the remove would do, in its order; nothing is written to etcd
        for (const n of names) {
          try {
            dryDrive(n, 'stopped', cas);
            outcomes.push({ name: n, status: 'ok' });
          } catch (e) {
            if (cas !== undefined && e instanceof JailyardError && e.code === 'JY_ERR_REVISION_CONFLICT') throw e;
            outcomes.push(failedOutcome(n, e));
          }
        }
        return summarize(outcomes);
      }
      for (const n of names) {
        // the first change compares the caller's revision; a lost race changes nothing
        let compare = cas;
        try {
          if (await drive(n, 'stopped', bopts, cas)) compare = undefined;
        } catch (e) {
          if (cas !== undefined && e instanceof JailyardError && e.code === 'JY_ERR_REVISION_CONFLICT') throw e;
          outcomes.push(failedOutcome(n, e));
          continue;
        }
        try {
          // the agent may write its last status meanwhile: delete the version that is stopped
          for (let i = 0; ; i++) {
            const cur = await state.fetchJail(n);
            if (!cur) break;
            if (cur.jail.desired !== 'stopped')
              throw new JailyardError('JY_ERR_CLUSTER', 'another client asked the jail to run meanwhile', { jail: n });
            if (compare !== undefined && cur.revision !== compare) {
              throw new JailyardError(
                'JY_ERR_REVISION_CONFLICT',
                `revision conflict: expected revision ${compare}, jail is at revision ${cur.revision}`,
                { jail: n },
              );
            }
            if (await state.deleteJailAt(n, cur.revision)) break;
            if (i >= 50)
              throw new JailyardError('JY_ERR_CLUSTER', 'the jail kept changing; it was not removed', { jail: n });
          }
          outcomes.push({ name: n, status: 'ok' });
        } catch (e) {
          if (compare !== undefined && e instanceof JailyardError && e.code === 'JY_ERR_REVISION_CONFLICT') throw e;
          outcomes.push(failedOutcome(n, e));
        }
      }
      return summarize(outcomes);
    },
  };
  return service;
}

/** A live node as `jailyard nodes` and GET /v1/nodes show it. */
export interface NodeInfo {
  name: string;
  labels: Record<string, string>;
  range: string;
  capacity: number;
  /** Jails placed on the node. */
  jails: number;
  /** The node's lease and the seconds left on it (-1: gone meanwhile; null: etcd did not
   * answer, e.g. without quorum: the list itself comes from the mirror). */
  lease: { id: string; ttl: number | null };
  api?: string;
  startedAt: string;
}

/** The live nodes, by name, with their jail counts and the time left on their leases. */
export async function listNodes(state: ClusterState): Promise<NodeInfo[]> {
  const placed = new Map<string, number>();
  for (const e of state.jailEntries()) {
    const n = e.jail.placement?.node;
    if (n !== undefined) placed.set(n, (placed.get(n) ?? 0) + 1);
  }
  return Promise.all(
    state.nodeEntries().map(async (n) => ({
      name: n.record.name,
      labels: n.record.labels,
      range: n.record.range,
      capacity: n.record.capacity,
      jails: placed.get(n.record.name) ?? 0,
      lease: { id: n.lease, ttl: n.lease === '0' ? -1 : await state.leaseTtl(n.lease).catch(() => null) },
      ...(n.record.api !== undefined ? { api: n.record.api } : {}),
      startedAt: n.record.startedAt,
    })),
  );
}
