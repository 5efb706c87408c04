// The cluster's store (issue #16): etcd (three members, Debian's etcd 3.4, in the test
// topology's router namespace: test/cluster/topology.ts) against the embedded SQLite store.
// 1. writes/s of a meta key write (what `jailyard set J meta.k=v` does): etcd through
//    ClusterState.updateJail (read, compare-and-swap txn on mod_revision, then wait until the
//    writer's own mirror has the event), one writer and 16 writers on 16 jails; SQLite through
//    modifyJail (one transaction, synchronous=NORMAL, WAL); and 16 writers on ONE jail through
//    two clients (CAS races between them).
// 2. write-to-event: from the write's start until ANOTHER ClusterState (a second node's
//    mirror: its own etcd client and watch) has the event; p50/p99. For SQLite the event is in
//    the log when modifyJail returns (a daemon wakes its watchers then): that time is given.
// 3. list latency with 10,000 jails placed over 3 nodes: the records are written straight to
//    etcd (starting 10,000 real jails is another benchmark: bench/scale.bench.ts), then a
//    fresh ClusterState opens (a node's start-up: range + watch), and listJails() with and
//    without a label selector, against SQLite's listJails over the same 10,000 jails.
// Needs root (namespaces) and etcd; the measurements run in a child inside the router's
// network namespace (the host's gets nothing).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { percentile, report } from './lib.ts';

const JAILS = Number(process.env.JAILS ?? 10_000);
const WRITES = Number(process.env.WRITES ?? 1000);
const ROUNDS = Number(process.env.ROUNDS ?? 30);

async function outer(): Promise<void> {
  if (process.getuid?.() !== 0 || spawnSync('which', ['etcd']).status !== 0) {
    console.log('[bench cluster] skipped: needs root and etcd (scripts/system-deps.sh)');
    return;
  }
  const { Topology } = await import('../test/cluster/topology.ts');
  const t = await Topology.build({ nodes: [] });
  try {
    const r = spawnSync(
      'ip',
      ['netns', 'exec', t.routerNs, process.execPath, new URL(import.meta.url).pathname, '--inner', t.etcdUrls],
      { stdio: 'inherit', env: process.env },
    );
    if (r.status !== 0) process.exitCode = 1;
  } finally {
    await t.teardown();
  }
}

async function inner(endpoints: string[]): Promise<void> {
  const { ClusterState } = await import('../src/cluster/state.ts');
  const { applyMetaOps } = await import('../src/meta/ops.ts');
  const { openStore } = await import('../src/store/sqlite.ts');
  type CJ = import('../src/cluster/records.ts').ClusterJail;
  const base = mkdtempSync(join(tmpdir(), 'jy-bench-cluster-'));
  const now = new Date().toISOString();
  const record = (name: string, i: number, node: string | null): CJ => ({
    name,
    params: { path: '/', persist: true },
    meta: `app=app${i % 50}\ntier=${['web', 'db', 'cache', 'lb'][i % 4]}\nzone=z${i % 8}\n`,
    env: '',
    desired: node ? 'running' : 'stopped',
    placement: node ? { node, token: `t-${i}`, at: now } : null,
    status: node
      ? { state: 'running', jid: i + 1, ready: true, lastError: null, addresses: [], token: `t-${i}`, at: now }
      : null,
    createdAt: now,
    updatedAt: now,
    version: 1,
  });
  const setKey = (j: CJ, n: number): CJ => ({
    ...j,
    meta: applyMetaOps(j.meta, [{ op: 'set', key: 'k', value: String(n) }], 4096),
    updatedAt: new Date().toISOString(),
  });

  const writer = await ClusterState.open({ endpoints, prefix: '/bench/w/' });
  const observer = await ClusterState.open({ endpoints, prefix: '/bench/w/' });
  try {
    // ------------------------------------------------------------ writes and events: etcd
    for (let i = 0; i < 16; i++) await writer.createJail(record(`w${i}`, i, null));
    const seenAt = new Map<number, number>();
    const unsubscribe = observer.subscribe((c) => {
      if (c.kind === 'jail') seenAt.set(c.revision, performance.now());
    });
    const waitSeen = (rev: number): Promise<number> =>
      new Promise((resolve) => {
        const check = () => {
          const at = seenAt.get(rev);
          if (at !== undefined) resolve(at);
          else setImmediate(check);
        };
        check();
      });
    const lat: number[] = [];
    let t0 = performance.now();
    for (let n = 0; n < WRITES; n++) {
      const start = performance.now();
      const e = await writer.updateJail(`w${n % 16}`, (j) => setKey(j, n));
      lat.push((await waitSeen(e.revision)) - start);
    }
    const etcdSeqPerS = WRITES / ((performance.now() - t0) / 1000);
    // 16 writers, each on its own jail
    t0 = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async (_, w) => {
        for (let n = w; n < WRITES; n += 16) await writer.updateJail(`w${w}`, (j) => setKey(j, n));
      }),
    );
    const etcdParPerS = WRITES / ((performance.now() - t0) / 1000);
    // 16 writers on ONE jail through two clients (two nodes): one client's writers take
    // turns in its process, the two clients race by CAS (the retry loop's cost)
    t0 = performance.now();
    const contended = Math.min(WRITES, 400);
    // a writer that loses its CAS race 100 times gives up with JY_ERR_CLUSTER (nothing
    // written): counted, not fatal
    let gaveUp = 0;
    await Promise.all(
      Array.from({ length: 16 }, async (_, w) => {
        for (let n = w; n < contended; n += 16)
          await (w % 2 ? observer : writer)
            .updateJail('w0', (j) => setKey(j, n))
            .catch((e: { code?: string }) => {
              if (e.code !== 'JY_ERR_CLUSTER') throw e;
              gaveUp++;
            });
      }),
    );
    const etcdContendedPerS = contended / ((performance.now() - t0) / 1000);
    unsubscribe();

    // ------------------------------------------------------------ writes and events: SQLite
    const store = openStore(join(base, 'w'));
    for (let i = 0; i < 16; i++) store.createJail({ name: `w${i}`, params: { path: '/', persist: true } });
    const sqlLat: number[] = [];
    t0 = performance.now();
    for (let n = 0; n < WRITES; n++) {
      const start = performance.now();
      const before = store.currentRevision();
      store.modifyJail(`w${n % 16}`, { meta: [{ op: 'set', key: 'k', value: String(n) }] });
      if (store.eventsSince(before).length !== 1) throw new Error('SQLite: no event for a write');
      sqlLat.push(performance.now() - start);
    }
    const sqlPerS = WRITES / ((performance.now() - t0) / 1000);
    store.close();

    report({
      name: 'cluster-writes',
      ratioOf: 'etcd writes/s (1 writer, CAS + own mirror caught up) / SQLite modifyJail writes/s',
      ratio: etcdSeqPerS / sqlPerS,
      metrics: {
        writes: WRITES,
        etcd_members: endpoints.length,
        etcd_1_writer_per_s: etcdSeqPerS,
        etcd_16_writers_per_s: etcdParPerS,
        etcd_16_writers_one_jail_2_clients_per_s: etcdContendedPerS,
        etcd_16_writers_one_jail_2_clients_gave_up: gaveUp,
        sqlite_per_s: sqlPerS,
        etcd_write_to_other_mirror_p50_ms: percentile(lat, 50),
        etcd_write_to_other_mirror_p99_ms: percentile(lat, 99),
        sqlite_write_to_event_p50_ms: percentile(sqlLat, 50),
        sqlite_write_to_event_p99_ms: percentile(sqlLat, 99),
      },
    });
  } finally {
    await writer.close();
    await observer.close();
  }

  // -------------------------------------------------------------- list over 10,000 jails
  const loader = await ClusterState.open({ endpoints, prefix: '/bench/l/' });
  const nodes = ['a', 'b', 'c'];
  let t0 = performance.now();
  const names = Array.from({ length: JAILS }, (_, i) => `j${String(i).padStart(5, '0')}`);
  // straight to etcd, 64 puts in flight
  for (let i = 0; i < names.length; i += 64) {
    await Promise.all(
      names
        .slice(i, i + 64)
        .map((name, k) =>
          loader.client.put(loader.keys.jail(name)).value(JSON.stringify(record(name, i + k, nodes[(i + k) % 3]!))),
        ),
    );
  }
  const populateS = (performance.now() - t0) / 1000;
  await loader.close();
  t0 = performance.now();
  const mirror = await ClusterState.open({ endpoints, prefix: '/bench/l/' });
  const openMs = performance.now() - t0;
  const all = mirror.listJails();
  if (all.length !== JAILS) throw new Error(`mirror has ${all.length} jails, not ${JAILS}`);
  const perNode = nodes.map((n) => all.filter((j) => j.node === n).length);
  const sample = (fn: () => number) => {
    const times: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const s = performance.now();
      fn();
      times.push(performance.now() - s);
    }
    return { p50: percentile(times, 50), p95: percentile(times, 95) };
  };
  const etcdList = sample(() => mirror.listJails().length);
  const etcdSel = sample(() => mirror.listJails({ selector: 'app=app7,tier in (web,db)' }).length);
  // the whole prefix read straight from etcd (what a client without a mirror would pay): in
  // pages of 500 at one revision, as gRPC refuses a message over 4 MiB (~8,000 such records)
  const rangeTimes: number[] = [];
  const prefix = Buffer.from(mirror.keys.jails);
  const end = Buffer.from(prefix);
  end[end.length - 1]!++;
  for (let r = 0; r < Math.min(ROUNDS, 10); r++) {
    const s = performance.now();
    let from = prefix;
    let revision: string | undefined;
    let read = 0;
    for (;;) {
      const page = await mirror.client.kv.range({ key: from, range_end: end, limit: 500, revision });
      revision ??= page.header.revision;
      read += page.kvs.length;
      if (!page.more) break;
      from = Buffer.concat([page.kvs[page.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    if (read !== JAILS) throw new Error(`paged range read ${read} jails, not ${JAILS}`);
    rangeTimes.push(performance.now() - s);
  }
  await mirror.close();

  const sql = openStore(join(base, 'l'));
  for (let i = 0; i < JAILS; i++) {
    sql.createJail({
      name: names[i]!,
      params: { path: '/', persist: true },
      meta: [
        { op: 'set', key: 'app', value: `app${i % 50}` },
        { op: 'set', key: 'tier', value: ['web', 'db', 'cache', 'lb'][i % 4]! },
        { op: 'set', key: 'zone', value: `z${i % 8}` },
      ],
    });
  }
  const sqlList = sample(() => sql.listJails().length);
  const sqlSel = sample(() => sql.listJails({ selector: 'app=app7,tier in (web,db)' }).length);
  sql.close();
  rmSync(base, { recursive: true, force: true });

  report({
    name: 'cluster-list',
    ratioOf: 'listJails p50 from the etcd mirror / from SQLite (10,000 jails)',
    ratio: etcdList.p50 / sqlList.p50,
    metrics: {
      jails: JAILS,
      jails_per_node: perNode.join('/'),
      populate_straight_to_etcd_s: populateS,
      mirror_open_ms: openMs,
      etcd_mirror_list_p50_ms: etcdList.p50,
      etcd_mirror_list_p95_ms: etcdList.p95,
      etcd_mirror_selector_p50_ms: etcdSel.p50,
      etcd_paged_range_read_p50_ms: percentile(rangeTimes, 50),
      sqlite_list_p50_ms: sqlList.p50,
      sqlite_list_p95_ms: sqlList.p95,
      sqlite_selector_p50_ms: sqlSel.p50,
    },
  });
}

if (process.argv[2] === '--inner') await inner(process.argv[3]!.split(','));
else await outer();
