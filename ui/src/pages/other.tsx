// Skeletons (GET /v1/skeletons), nodes (GET /v1/nodes, cluster mode) and the rollout view.

import { useEffect, useState } from 'preact/hooks';
import { request } from '../api.ts';
import type { JailFeed } from '../feed.ts';
import { paramText, useFeed } from '../parts.tsx';

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

export function RolloutPage() {
  return (
    <section class="prose">
      <p>
        A rollout (<code>jailyard rollout</code>) and the HAProxy pool (<code>jailyard lb haproxy</code>) run in
        processes of their own, not in the daemon: the API exposes neither a rollout's steps nor the pool's members, so
        this page cannot show them or abort a rollout yet. What the daemon does show: each jail's state, readiness and
        labels, live, on the Jails page; filter it with the rollout's selectors (for example{' '}
        <code>app=www,version in (v1,v2)</code>) to watch the replacement happen.
      </p>
    </section>
  );
}
