// Skeletons (GET /v1/skeletons), nodes (GET /v1/nodes, cluster mode) and rollouts
// (GET /v1/rollouts; the pool as HAProxy has it, GET /v1/rollouts/ID/pool, or as the jails
// show it when HAProxy is not reachable; POST /v1/rollouts/ID/abort after a confirmation).

import { useEffect, useRef, useState } from 'preact/hooks';
import { parseSelector, type Selector } from '../../../src/meta/selector.ts';
import { eventStream, request, type JailView } from '../api.ts';
import type { JailFeed } from '../feed.ts';
import { Confirm, type Notice, NoticeLine, paramText, StateBadge, useFeed } from '../parts.tsx';

interface SkeletonView {
  name: string;
  versions: { version: number; kind: string; source: string; createdAt: string; entries: number; bytes: number }[];
}

interface NodeView {
  name: string;
  labels: Record<string, string>;
  range: string;
  capacity: number;
  jails: number;
  lease: { id: string; ttl: number | null };
  api?: string;
  startedAt: string;
}

function useLoad<T>(path: string, deps: unknown[] = []): { data?: T; error?: string } {
  const [out, setOut] = useState<{ data?: T; error?: string }>({});
  useEffect(() => {
    let gone = false;
    request<T>('GET', path).then(
      ({ data }) => !gone && setOut({ data }),
      (e: Error) => !gone && setOut({ error: e.message }),
    );
    return () => {
      gone = true;
    };
  }, deps);
  return out;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function SkeletonsPage({ feed }: { feed: JailFeed }) {
  useFeed(feed);
  const { data, error } = useLoad<{ items: SkeletonView[] }>('/v1/skeletons');
  if (error) return <p class="notice notice-error">{error}</p>;
  if (!data) return <p class="muted">Loading...</p>;
  // which jails name NAME or NAME@VERSION in their skeleton parameter
  const users = (name: string, version: number, latest: number): string[] =>
    [...feed.jails.values()]
      .filter((j) => {
        const s = paramText(j.params.skeleton);
        return s === `${name}@${version}` || (s === name && version === latest);
      })
      .map((j) => j.name)
      .sort();
  return (
    <section>
      <table class="skeletons">
        <thead>
          <tr>
            <th>skeleton</th>
            <th>version</th>
            <th>kind</th>
            <th>source</th>
            <th>entries</th>
            <th>size</th>
            <th>created</th>
            <th>used by</th>
          </tr>
        </thead>
        <tbody>
          {data.items.flatMap((s) => {
            const latest = Math.max(...s.versions.map((v) => v.version));
            return s.versions.map((v) => (
              <tr key={`${s.name}@${v.version}`} data-skeleton={`${s.name}@${v.version}`}>
                <td>{s.name}</td>
                <td>{v.version}</td>
                <td>{v.kind}</td>
                <td class="mono">{v.source}</td>
                <td>{v.entries}</td>
                <td>{mib(v.bytes)}</td>
                <td>{v.createdAt}</td>
                <td>{users(s.name, v.version, latest).join(', ')}</td>
              </tr>
            ));
          })}
        </tbody>
      </table>
      {data.items.length === 0 ? <p class="muted">No skeleton (jailyard skel create NAME --from /).</p> : null}
    </section>
  );
}

export function NodesPage() {
  const { data, error } = useLoad<{ cluster: boolean; items: NodeView[] }>('/v1/nodes');
  if (error) return <p class="notice notice-error">{error}</p>;
  if (!data) return <p class="muted">Loading...</p>;
  if (!data.cluster)
    return <p class="muted">This daemon serves one host, not a cluster (serve --etcd: docs/cluster.md).</p>;
  return (
    <table class="nodes">
      <thead>
        <tr>
          <th>node</th>
          <th>labels</th>
          <th>range</th>
          <th>jails / capacity</th>
          <th>lease ttl</th>
          <th>api</th>
          <th>started</th>
        </tr>
      </thead>
      <tbody>
        {data.items.map((n) => (
          <tr key={n.name}>
            <td>{n.name}</td>
            <td>
              {Object.entries(n.labels)
                .map(([k, v]) => `${k}=${v}`)
                .join(', ')}
            </td>
            <td class="mono">{n.range}</td>
            <td>
              {n.jails} / {n.capacity}
            </td>
            <td>{n.lease.ttl === null ? '?' : `${n.lease.ttl} s`}</td>
            <td class="mono">{n.api ?? ''}</td>
            <td>{n.startedAt}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

interface RolloutView {
  id: string;
  selector: string;
  from: string;
  to: string;
  replicas: number;
  phase: string;
  created: string[];
  removed: string[];
  log: { at: string; text: string }[];
  error?: string;
  active: boolean;
  abortRequested: boolean;
  haproxy?: { adminSocket: string; backend: string };
}

interface PoolView {
  source: 'haproxy' | 'jails';
  backend?: string;
  servers: { server: string; jail?: string; addr: string; port: number; status: string; sessions: number }[];
  reason?: string;
}

const DRAIN_LABEL = 'jailyard.lb/drain';
const READINESS_LABEL = 'jailyard.lb/readiness';

/** A jail's place in the load balancer's pool as the controller decides it from the jail
 * (docs/lb.md): drained when labelled so, up when running and healthy (and ready where the
 * jail asks the balancer to wait for readiness), else down. */
export function poolStatus(j: JailView): 'up' | 'draining' | 'down' {
  if (j.labels[DRAIN_LABEL] !== undefined) return 'draining';
  if (j.state !== 'running') return 'down';
  if (j.health && j.health !== 'healthy') return 'down';
  if (j.labels[READINESS_LABEL] === 'guest' && !j.ready) return 'down';
  return 'up';
}

function selectorOrNone(text: string): Selector | undefined {
  try {
    return parseSelector(text);
  } catch {
    return undefined;
  }
}

/** How often HAProxy's view of a pool is read while the page shows it. */
const POOL_MS = 3000;

/** HAProxy's servers for the rollout's backend, read again whenever `version` changes. */
function useHaproxyPool({ r, version }: { r: RolloutView; version: number }) {
  const [pool, setPool] = useState<PoolView | undefined>(undefined);
  // HAProxy's states change without a jail changing (checks, drains): with a socket named,
  // read again every POOL_MS as well
  const [tick, setTick] = useState(0);
  const named = r.haproxy !== undefined;
  useEffect(() => {
    if (!named) return;
    const timer = setInterval(() => setTick((t) => t + 1), POOL_MS);
    return () => clearInterval(timer);
  }, [named]);
  useEffect(() => {
    let gone = false;
    request<PoolView>('GET', `/v1/rollouts/${encodeURIComponent(r.id)}/pool`).then(
      ({ data }) => void (gone || setPool(data)),
      (e: Error) => void (gone || setPool({ source: 'jails', servers: [], reason: e.message })),
    );
    return () => {
      gone = true;
    };
  }, [r.id, version, tick]);
  return pool;
}

function Rollout({ r, feed, version }: { r: RolloutView; feed: JailFeed; version: number }) {
  const service = selectorOrNone(r.selector);
  const versions = [r.from, r.to].map((v) => selectorOrNone(v));
  const keys = [...new Set(versions.flatMap((v) => v?.requirements.map((q) => q.key) ?? []))];
  const pool = [...feed.jails.values()]
    .filter((j) => service?.matches(j.labels) && versions.some((v) => v?.matches(j.labels)))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const hp = useHaproxyPool({ r, version });
  const [asking, setAsking] = useState(false);
  const [notice, setNotice] = useState<Notice | undefined>(undefined);
  const abortable = r.phase !== 'done' && r.phase !== 'aborted';
  const answer = (yes: boolean) => {
    setAsking(false);
    if (!yes) return;
    request<{ id: string; how: string }>('POST', `/v1/rollouts/${encodeURIComponent(r.id)}/abort`).then(
      ({ data }) =>
        setNotice({
          kind: 'ok',
          text:
            data.how === 'requested'
              ? 'Abort requested: the process running the rollout stops at its current step and goes back.'
              : 'Abort started by the daemon: going back.',
        }),
      (e: Error) => setNotice({ kind: 'error', text: e.message }),
    );
  };
  const fromHaproxy = hp?.source === 'haproxy';
  return (
    <section class="rollout" data-rollout={r.selector} data-rollout-id={r.id}>
      <h3>
        {r.selector}: {r.from} → {r.to}, {r.replicas} replicas{' '}
        <span class={`state phase-${r.phase}`} data-testid="phase">
          {r.phase}
        </span>
        {r.abortRequested ? <span class="muted"> (abort requested)</span> : null}
      </h3>
      {r.error ? <p class="notice notice-error">{r.error}</p> : null}
      <NoticeLine notice={notice} />
      {abortable ? (
        <p>
          <button type="button" class="danger" data-testid="abort" onClick={() => setAsking(true)}>
            Abort
          </button>{' '}
          <span class="muted">
            back to {r.from}: the old jails serve again, the new ones it made are removed
            {r.active ? ' (asked of the process running it)' : ' (run by the daemon: nobody runs this rollout now)'}
          </span>
        </p>
      ) : null}
      {asking ? (
        <Confirm title={`Abort the rollout of ${r.selector}?`} onAnswer={answer}>
          <p>
            Back to {r.from}: the {r.from} jails rejoin the pool, the {r.created.length} new jail(s) this rollout made
            are drained and removed.
          </p>
        </Confirm>
      ) : null}
      {fromHaproxy ? (
        <>
          <h4>Pool</h4>
          <p class="muted" data-testid="pool-source" data-source="haproxy">
            HAProxy's view of backend {hp.backend} (read from its admin socket now)
          </p>
          <table class="pool">
            <thead>
              <tr>
                <th>server</th>
                <th>jail</th>
                <th>address</th>
                <th>HAProxy</th>
                <th>sessions</th>
              </tr>
            </thead>
            <tbody>
              {hp.servers.map((s) => (
                <tr key={s.server} data-haproxy-server={s.server} data-haproxy-status={s.status}>
                  <td class="mono">{s.server}</td>
                  <td>{s.jail ?? ''}</td>
                  <td class="mono">
                    {s.addr}:{s.port}
                  </td>
                  <td class={`pool-${s.status === 'up' ? 'up' : s.status === 'drain' ? 'draining' : 'down'}`}>
                    {s.status.toUpperCase()}
                  </td>
                  <td>{s.sessions}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : (
        <>
          <h4>Pool</h4>
          <p class="muted" data-testid="pool-source" data-source="jails">
            Computed from the jails' labels and states, not read from HAProxy
            {hp?.reason ? ` (${hp.reason})` : ''}
          </p>
          <table class="pool">
            <thead>
              <tr>
                <th>jail</th>
                {keys.map((k) => (
                  <th key={k}>{k}</th>
                ))}
                <th>state</th>
                <th>pool</th>
              </tr>
            </thead>
            <tbody>
              {pool.map((j) => (
                <tr key={j.name} data-pool-jail={j.name} data-pool={poolStatus(j)}>
                  <td>{j.name}</td>
                  {keys.map((k) => (
                    <td key={k}>{j.labels[k] ?? ''}</td>
                  ))}
                  <td>
                    <StateBadge state={j.state} />
                  </td>
                  <td class={`pool-${poolStatus(j)}`}>{poolStatus(j)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <h4>Steps</h4>
      <ol class="steps" data-testid="steps">
        {r.log.map((l, i) => (
          <li key={i}>
            <span class="muted mono">{l.at.slice(11, 19)}</span> {l.text}
          </li>
        ))}
      </ol>
    </section>
  );
}

export function RolloutPage({ feed }: { feed: JailFeed }) {
  useFeed(feed);
  const [data, setData] = useState<{ items: RolloutView[] } | undefined>(undefined);
  // counts the reads: each one reads HAProxy's pool again too
  const [version, setVersion] = useState(0);
  const [error, setError] = useState<string | undefined>(undefined);
  const running = data?.items.some((r) => r.phase === 'running' || r.active) ?? false;
  // The rollouts as a stream (GET /v1/rollouts/watch: the daemon watches the folder, so a step
  // saved, a health wait's end, an abort request arrive as they happen); dropped, it is opened
  // again after 2 s. Meanwhile (and with a daemon without it) the page reads the rollouts after
  // changes of the jails (at most every 200 ms: a throttle, a rollout makes events without
  // pause) and every 2 s while one runs.
  const [live, setLive] = useState(false);
  useEffect(() => {
    const stop = new AbortController();
    void (async () => {
      while (!stop.signal.aborted) {
        try {
          for await (const text of eventStream('/v1/rollouts/watch', stop.signal)) {
            setData(JSON.parse(text) as { items: RolloutView[] });
            setVersion((v) => v + 1);
            setError(undefined);
            setLive(true);
          }
        } catch {
          // dropped, refused or aborted: read below until it is back
        }
        if (stop.signal.aborted) return;
        setLive(false);
        await new Promise((r) => setTimeout(r, 2000));
      }
    })();
    return () => stop.abort();
  }, []);
  const pendingRead = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const read = () =>
    request<{ items: RolloutView[] }>('GET', '/v1/rollouts').then(
      ({ data }) => {
        setData(data);
        setVersion((v) => v + 1);
        setError(undefined);
      },
      (e: Error) => setError(e.message),
    );
  useEffect(() => {
    if (live || pendingRead.current !== undefined) return;
    pendingRead.current = setTimeout(
      () => {
        pendingRead.current = undefined;
        void read();
      },
      data ? 200 : 0,
    );
  }, [feed.revision, live]);
  useEffect(() => () => clearTimeout(pendingRead.current), []);
  useEffect(() => {
    if (!running || live) return;
    const timer = setInterval(
      () =>
        request<{ items: RolloutView[] }>('GET', '/v1/rollouts').then(
          ({ data }) => {
            setData(data);
            setVersion((v) => v + 1);
          },
          () => {},
        ),
      2000,
    );
    return () => clearInterval(timer);
  }, [running, live]);
  if (error) return <p class="notice notice-error">{error}</p>;
  if (!data) return <p class="muted">Loading...</p>;
  return (
    <section>
      {data.items.length === 0 ? (
        <p class="muted">
          No rollout saved in this host's state folder (
          <code>jailyard rollout -l app=www --from version=v1 --to version=v2 ...</code>).
        </p>
      ) : null}
      {data.items.map((r) => (
        <Rollout key={r.id} r={r} feed={feed} version={version} />
      ))}
      <p class="muted">
        A rollout runs in the <code>jailyard rollout</code> that started it and saves its steps in the state folder. Its
        pool is read from HAProxy's admin socket when the rollout names one (<code>--admin-socket</code>) and the daemon
        reaches it; else it is what the load-balancer controller decides from each jail (drain label, state, health,
        readiness), said so above the table (docs/ui.md).
      </p>
    </section>
  );
}
