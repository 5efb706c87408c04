// The cluster's JailService over a real etcd member, with a stand-in node agent in the test
// (it registers a node and answers desired-state changes with status reports; the real
// agent is tested with real jails in the topology tests): create with validation and
// placement, CAS, meta key writers on two API clients, start/stop/remove waiting for the
// node's report, failures reported from the status, and the single-host refusal of `node`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { JailyardError } from '../../src/errors.ts';
import type { ClusterJail, NodeRecord } from '../../src/cluster/records.ts';
import { createClusterService, listNodes } from '../../src/cluster/service.ts';
import { createRemoteService } from '../../src/api/client.ts';
import { startDaemon } from '../../src/api/daemon.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { Collector, tempState } from '../api/helpers.ts';
import { ClusterState, type NodeRegistration } from '../../src/cluster/state.ts';
import { createLocalService, refuseClusterParams } from '../../src/runtime/service.ts';
import type { JailService } from '../../src/runtime/types.ts';
import { startEtcd, type SingleEtcd } from './single-etcd.ts';

let etcd: SingleEtcd;
const closers: (() => Promise<void>)[] = [];
let prefixN = 0;
const freshPrefix = (): string => `/jy-c-svc-${process.pid}-${++prefixN}/`;

const code = (c: string) => (e: unknown) => e instanceof JailyardError && e.code === c;

async function open(prefix: string): Promise<ClusterState> {
  const s = await ClusterState.open({ endpoints: [etcd.endpoint], prefix });
  closers.push(() => s.close());
  return s;
}

/**
 * A node agent reduced to its contract: it registers `name` and, for the jails placed on it,
 * answers each change of `desired` (or of the placement token) with a status for the current
 * token: running with a jid, or stopped; a jail whose exec.start is "fail" reports the error.
 */
async function standInAgent(
  s: ClusterState,
  name: string,
  range: string,
  labels: Record<string, string> = {},
): Promise<NodeRegistration> {
  const rec: NodeRecord = { name, labels, range, capacity: 5, startedAt: new Date().toISOString(), version: 1 };
  const reg = await s.register(rec, { ttlSec: 5 });
  closers.push(() => reg.revoke().catch(() => {}));
  let jid = 0;
  const act = (j: ClusterJail): void => {
    const p = j.placement;
    if (!p || p.node !== name) return;
    const current = j.status && j.status.token === p.token ? j.status.state : 'stopped';
    if (current === j.desired) return;
    const fail = j.desired === 'running' && j.params['exec.start'] === 'fail';
    const status = {
      state: fail ? ('stopped' as const) : j.desired,
      jid: j.desired === 'running' && !fail ? ++jid : 0,
      ready: false,
      lastError: fail ? 'exec.start: /bin/false exited with 1' : null,
      addresses: [],
      token: p.token,
      at: new Date().toISOString(),
    };
    void s.updateJail(j.name, (cur) => (cur.placement?.token === p.token ? { ...cur, status } : null)).catch(() => {});
  };
  s.subscribe((c) => {
    if (c.kind !== 'jail' || !c.entry) return;
    const prev = c.prev?.jail;
    const j = c.entry.jail;
    if (prev && prev.desired === j.desired && prev.placement?.token === j.placement?.token) return;
    act(j);
  });
  return reg;
}

before(async () => {
  etcd = await startEtcd();
});

after(async () => {
  try {
    for (const c of closers.reverse()) await c().catch(() => {});
  } finally {
    await etcd?.stop();
  }
});

const spec = (name: string, params: Record<string, string | string[]> = {}) => ({
  spec: { name, params: { name, path: '/srv/x', ...params } },
});

test('create validates like one host, places the jail and shows its node', async () => {
  const p = freshPrefix();
  const s = await open(p);
  await standInAgent(s, 'n1', '198.51.100.80/29', { zone: 'z1' });
  await standInAgent(s, 'n2', '198.51.100.88/29', { zone: 'z2' });
  const svc = createClusterService(s, { waitMs: 5000 });
  const a = await svc.create(spec('a', { 'ip4.addr': ['198.51.100.90/29'] }));
  assert.equal(a.node, 'n2');
  assert.equal(a.state, 'stopped');
  assert.equal(a.jid, 0);
  assert.equal(a.runtime, null);
  const b = await svc.create({
    ...spec('b', { 'node.selector': 'zone=z1' }),
    meta: [{ op: 'set', key: 'k', value: 'v' }],
  });
  assert.equal(b.node, 'n1');
  assert.equal(b.meta, 'k=v');
  assert.equal((await svc.create(spec('c'))).node, 'n1'); // n1 has 1, n2 has 1: ties by name
  // refusals change nothing
  const rev = s.currentRevision();
  await assert.rejects(svc.create(spec('a')), code('JY_ERR_JAIL_EXISTS'));
  await assert.rejects(svc.create(spec('d', { node: 'n9' })), (e: unknown) => {
    assert.ok(e instanceof JailyardError && e.code === 'JY_ERR_NO_NODE');
    assert.match(e.describe(), /^jail "d": no node can take the jail: node "n9" is not a live node/);
    return true;
  });
  await assert.rejects(svc.create(spec('bad/name')), code('JY_ERR_JAIL_NAME'));
  await assert.rejects(svc.create(spec('e', { path: 'relative' })), code('JY_ERR_PATH'));
  await assert.rejects(svc.create(spec('e', { 'limits.memory': 'lots' })), code('JY_ERR_PARAM_VALUE'));
  await assert.rejects(
    svc.create({ ...spec('e'), meta: [{ op: 'set', key: 'k', value: 'x'.repeat(5000) }] }),
    code('JY_ERR_META_TOO_LARGE'),
  );
  await assert.rejects(svc.create(spec('nochild.x')), code('JY_ERR_JAIL_NOT_FOUND'));
  assert.equal(s.currentRevision(), rev);
  assert.deepEqual(
    (await svc.list()).map((j) => [j.name, j.node]),
    [
      ['a', 'n2'],
      ['b', 'n1'],
      ['c', 'n1'],
    ],
  );
  assert.deepEqual(
    (await svc.list({ selector: 'k=v' })).map((j) => j.name),
    ['b'],
  );
});

test('start, stop and remove wait for the node; a failure comes from its status', async () => {
  const p = freshPrefix();
  const s = await open(p);
  await standInAgent(s, 'n1', '198.51.100.80/29');
  const svc: JailService = createClusterService(s, { waitMs: 5000 });
  await svc.create(spec('w1'));
  await svc.create(spec('w2', { 'exec.start': 'fail' }));
  const started = await svc.start(['w1', 'w2']);
  assert.equal(started.ok, false);
  assert.deepEqual(started.outcomes[0], { name: 'w1', status: 'ok' });
  assert.equal(started.outcomes[1]!.status, 'failed');
  assert.equal(started.outcomes[1]!.code, 'JY_ERR_STEP_FAILED');
  assert.match(started.outcomes[1]!.message!, /jail "w2": exec\.start: \/bin\/false exited with 1/);
  const w1 = await svc.get('w1');
  assert.equal(w1.state, 'running');
  assert.ok(w1.jid > 0);
  assert.equal((await svc.get(String(w1.jid))).name, 'w1');
  assert.equal((await svc.get('w2')).lastError, 'exec.start: /bin/false exited with 1');
  // already running: nothing to do
  assert.ok((await svc.start(['w1'])).ok);
  // a change that moves a running jail is refused
  await assert.rejects(svc.modify('w1', { params: { node: 'n2' } }), code('JY_ERR_PARAM_VALUE'));
  await assert.rejects(svc.modify('w1', { params: { path: '/other' } }), code('JY_ERR_PARAM_VALUE'));
  assert.ok((await svc.stop(['w1'])).ok);
  assert.equal((await svc.get('w1')).state, 'stopped');
  assert.ok((await svc.restart(['w1'])).ok);
  assert.equal((await svc.get('w1')).state, 'running');
  const removed = await svc.remove(['w1', 'w2']);
  assert.ok(removed.ok, JSON.stringify(removed));
  assert.deepEqual(await svc.list(), []);
  await assert.rejects(svc.start(['w1', 'zz']), code('JY_ERR_JAIL_NOT_FOUND'));
});

test('a node that never reports: start times out with a clear error, the signal interrupts', async () => {
  const p = freshPrefix();
  const s = await open(p);
  const reg = await s.register(
    { name: 'mute', labels: {}, range: '198.51.100.80/29', capacity: 5, startedAt: '', version: 1 },
    { ttlSec: 5 },
  );
  closers.push(() => reg.revoke().catch(() => {}));
  const svc = createClusterService(s, { waitMs: 300 });
  await svc.create(spec('q'));
  const r = await svc.start(['q']);
  assert.equal(r.outcomes[0]!.code, 'JY_ERR_CLUSTER');
  assert.match(r.outcomes[0]!.message!, /node mute did not report the jail running within 0 s/);
  const slow = createClusterService(s, { waitMs: 60_000 });
  // stopped with no status: nothing runs, so the stop is done at once
  assert.ok((await slow.stop(['q'])).ok);
  const ac = new AbortController();
  const t0 = Date.now();
  setTimeout(() => ac.abort(), 200);
  const r3 = await slow.start(['q'], { signal: ac.signal });
  assert.equal(r3.outcomes[0]!.code, 'JY_ERR_INTERRUPTED');
  assert.ok(Date.now() - t0 < 5000);
  // a batch interrupted before it begins begins nothing (as on one host)
  const r4 = await slow.start(['q'], { signal: ac.signal });
  assert.equal(r4.outcomes[0]!.status, 'skipped');
});

test('depend orders a batch as on one host: a failed dependency skips what needs it', async () => {
  const p = freshPrefix();
  const s = await open(p);
  await standInAgent(s, 'n1', '198.51.100.80/29');
  const svc = createClusterService(s, { waitMs: 5000 });
  await svc.create(spec('db', { 'exec.start': 'fail' }));
  await svc.create(spec('app', { depend: ['db'] }));
  await svc.create(spec('side'));
  const r = await svc.start(['app', 'side']);
  assert.deepEqual(
    r.outcomes.map((o) => [o.name, o.status]),
    [
      ['db', 'failed'],
      ['app', 'skipped'],
      ['side', 'ok'],
    ],
  );
  assert.match(r.outcomes[1]!.message!, /db failed/);
  await svc.modify('db', { unset: ['exec.start'] });
  const again = await svc.start(['app']);
  assert.deepEqual(
    again.outcomes.map((o) => [o.name, o.status]),
    [
      ['db', 'ok'],
      ['app', 'ok'],
    ],
  );
  // stop takes the dependent down first
  const order: string[] = [];
  const off = s.subscribe((c) => {
    if (c.kind === 'jail' && c.entry?.jail.desired === 'stopped' && c.prev?.jail.desired === 'running')
      order.push(c.name);
  });
  assert.ok((await svc.stop(['db', 'app'])).ok);
  off();
  assert.deepEqual(order, ['app', 'db']);
});

test('CAS through the service, and meta key writers on two API clients lose nothing', async () => {
  const p = freshPrefix();
  const s1 = await open(p);
  const s2 = await open(p);
  await standInAgent(s1, 'n1', '198.51.100.80/29');
  const api1 = createClusterService(s1);
  const api2 = createClusterService(s2);
  const j = await api1.create(spec('m'));
  const m1 = await api2.modify('m', { meta: [{ op: 'set', key: 'a', value: '1' }] }, { ifRevision: j.revision });
  await assert.rejects(
    api1.modify('m', { meta: [{ op: 'set', key: 'b', value: '2' }] }, { ifRevision: j.revision }),
    code('JY_ERR_REVISION_CONFLICT'),
  );
  assert.equal((await api1.get('m')).meta, 'a=1');
  await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      (i % 2 ? api1 : api2).modify('m', {
        meta: [{ op: 'set', key: `k${i}`, value: String(i) }],
        env: [{ op: 'set', key: `E${i}`, value: 'x' }],
      }),
    ),
  );
  await s1.caughtUp(s2.currentRevision());
  const final = await api1.get('m');
  for (let i = 0; i < 10; i++) {
    assert.match(final.meta, new RegExp(`^k${i}=${i}$`, 'm'));
    assert.match(final.env, new RegExp(`^E${i}=x$`, 'm'));
  }
  assert.match(final.meta, /^a=1$/m);
  // a remove under If-Match: a stale revision changes nothing
  await assert.rejects(api1.remove(['m'], { ifRevision: m1.revision }), code('JY_ERR_REVISION_CONFLICT'));
  assert.ok(await api1.get('m'));
  assert.ok((await api1.remove(['m'], { ifRevision: final.revision })).ok);
  await assert.rejects(
    api2
      .get('m')
      .then(() => s2.caughtUp(s1.currentRevision()))
      .then(() => api2.get('m')),
    code('JY_ERR_JAIL_NOT_FOUND'),
  );
});

test('on one host, a jail naming a node is refused; an empty one is fine', async () => {
  const tmp = tempState('jy-c-local-');
  try {
    const store = openStore(tmp.dir);
    const local = createLocalService({ store, stateDir: tmp.dir });
    await assert.rejects(local.create(spec('pinned', { node: 'n1' })), (e: unknown) => {
      assert.ok(e instanceof JailyardError && e.code === 'JY_ERR_PARAM_VALUE');
      assert.equal(e.place.param, 'node');
      return true;
    });
    await assert.rejects(local.create(spec('sel', { 'node.selector': 'zone=z1' })), code('JY_ERR_PARAM_VALUE'));
    assert.deepEqual(store.listJails(), []);
    assert.equal(store.currentRevision(), 0);
    store.close();
  } finally {
    tmp.cleanup();
  }
  refuseClusterParams('j', { node: '' });
  refuseClusterParams('j', {});
  assert.throws(
    () => refuseClusterParams('j', { node: 'n1' }),
    (e: unknown) =>
      e instanceof JailyardError &&
      e.code === 'JY_ERR_PARAM_VALUE' &&
      e.describe() ===
        'jail "j", parameter "node": node = "n1" needs a cluster (jailyard serve --etcd); this host places no jail on a node',
  );
  assert.throws(() => refuseClusterParams('j', { 'node.selector': 'zone=z1' }), code('JY_ERR_PARAM_VALUE'));
});

test('the API of two nodes over one cluster: a write on one is seen in a watch on the other, nodes listed', async () => {
  const p = freshPrefix();
  const tmp = tempState('jy-c-api-');
  closers.push(async () => tmp.cleanup());
  const daemons = [];
  for (const n of ['a', 'b']) {
    const s = await open(p);
    const store = openStore(`${tmp.dir}/${n}`);
    const d = await startDaemon({
      store,
      service: createClusterService(s, { waitMs: 5000 }),
      events: s,
      nodes: () => listNodes(s),
      socketPath: `${tmp.dir}/${n}/jailyard.sock`,
      pollIntervalMs: 20,
    });
    closers.push(async () => {
      await d.close();
      store.close();
    });
    daemons.push({ s, d, url: `unix://${d.socketPath}` });
  }
  const [a, b] = daemons as [(typeof daemons)[0], (typeof daemons)[0]];
  await standInAgent(a.s, 'na', '198.51.100.80/29', { zone: 'z1' });
  const apiA = createRemoteService(a.url);
  const apiB = createRemoteService(b.url);
  const watcher = new Collector(b.url, { initial: true });
  closers.push(() => watcher.stop());
  const created = await apiA.create(spec('web'));
  assert.equal(created.node, 'na');
  await watcher.until((ev) => ev.some((e) => e.type === 'ADDED' && e.jail?.name === 'web'));
  assert.equal(watcher.events.find((e) => e.jail?.name === 'web')!.jail!.node, 'na');
  const started = await apiB.start(['web']);
  assert.ok(started.ok, JSON.stringify(started));
  await watcher.until((ev) => ev.some((e) => e.jail?.name === 'web' && e.jail.state === 'running'));
  // If-Match across nodes: a stale revision is 412 through the other node
  const now = await apiB.get('web');
  await apiA.modify('web', { meta: [{ op: 'set', key: 'x', value: '1' }] });
  await assert.rejects(
    apiB.modify('web', { meta: [{ op: 'set', key: 'y', value: '2' }] }, { ifRevision: now.revision }),
    code('JY_ERR_REVISION_CONFLICT'),
  );
  // a watch resumed from a revision replays what came after it
  const resumed = new Collector(a.url, { since: now.revision });
  closers.push(() => resumed.stop());
  await resumed.until((ev) => ev.some((e) => e.type === 'MODIFIED' && e.jail?.meta === 'x=1'));
  // nodes with their lease and jail count
  const res = await b.d.app.inject({ method: 'GET', url: '/v1/nodes' });
  assert.equal(res.statusCode, 200);
  const body = res.json() as { cluster: boolean; items: Awaited<ReturnType<typeof listNodes>> };
  assert.equal(body.cluster, true);
  const nodes = body.items;
  assert.equal(nodes.length, 1);
  assert.equal(nodes[0]!.name, 'na');
  assert.equal(nodes[0]!.jails, 1);
  assert.deepEqual(nodes[0]!.labels, { zone: 'z1' });
  const ttl = nodes[0]!.lease.ttl;
  assert.ok(ttl !== null && ttl > 0 && ttl <= 5, `ttl ${ttl}`);
  // etcd not answering: the list still comes from the mirror, the TTL is unknown
  const cut = await open(p);
  await cut.close();
  assert.deepEqual(
    (await listNodes(cut)).map((n) => [n.name, n.lease.ttl]),
    [['na', null]],
  );
  assert.ok((await apiA.remove(['web'])).ok);
  await watcher.until((ev) => ev.some((e) => e.type === 'DELETED' && e.jail?.name === 'web'));
});

test('--dry-run in cluster mode: batches and apply through the API write nothing to etcd and answer as a real run would', async () => {
  const p = freshPrefix();
  const s = await open(p);
  await standInAgent(s, 'n1', '198.51.100.80/29');
  const svc = createClusterService(s, { waitMs: 5000 });
  await svc.create(spec('run1'));
  assert.ok((await svc.start(['run1'])).ok);
  await svc.create(spec('idle'));
  // a node that goes away with a jail pinned to it
  const gone = await s.register(
    { name: 'gone', labels: {}, range: '198.51.100.96/29', capacity: 5, startedAt: '', version: 1 },
    { ttlSec: 5 },
  );
  await svc.create(spec('pin', { node: 'gone' }));
  await svc.create(spec('dep', { depend: ['pin'] }));
  await gone.revoke();
  await s.waitUntil(() => !s.nodeEntry('gone'), { timeoutMs: 5000 });
  const tmp = tempState('jy-c-dry-');
  closers.push(async () => tmp.cleanup());
  const store = openStore(tmp.dir);
  const d = await startDaemon({
    store,
    service: svc,
    events: s,
    socketPath: `${tmp.dir}/jailyard.sock`,
    pollIntervalMs: 20,
  });
  closers.push(async () => {
    await d.close();
    store.close();
  });
  const host = `unix://${d.socketPath}`;
  const api = createRemoteService(host);
  // etcd's own revision (not the mirror's): any write at all would raise it
  const etcdRevision = async (): Promise<number> =>
    Number((await s.client.kv.range({ key: Buffer.from(`${p}none`) })).header.revision);
  const records = async () => JSON.stringify((await svc.list()).map((j) => [j.name, j.state, j.revision, j.node]));
  const before = [await etcdRevision(), await records()];

  // a start: dependency order, a placement that cannot be made fails and skips what needs it
  const start = await api.start(['idle', 'dep'], { dryRun: true });
  assert.deepEqual(start, {
    ok: false,
    outcomes: [
      { name: 'idle', status: 'ok' },
      {
        name: 'pin',
        status: 'failed',
        code: 'JY_ERR_NO_NODE',
        message: 'jail "pin": no node can take the jail: node "gone" is not a live node',
      },
      { name: 'dep', status: 'skipped', message: 'skipped: pin failed' },
    ],
  });
  assert.deepEqual(await api.stop(['run1'], { dryRun: true }), {
    ok: true,
    outcomes: [{ name: 'run1', status: 'ok' }],
  });
  assert.deepEqual(await api.restart(['run1', 'idle'], { dryRun: true }), {
    ok: true,
    outcomes: [
      { name: 'run1', status: 'ok' },
      { name: 'idle', status: 'ok' },
    ],
  });
  assert.deepEqual(await api.remove(['run1', 'idle'], { dryRun: true }), {
    ok: true,
    outcomes: [
      { name: 'run1', status: 'ok' },
      { name: 'idle', status: 'ok' },
    ],
  });
  // the same refusals as a real run: a missing name, a stale revision
  await assert.rejects(api.start(['idle', 'nope'], { dryRun: true }), code('JY_ERR_JAIL_NOT_FOUND'));
  const idle = await svc.get('idle');
  await assert.rejects(
    svc.remove(['idle'], { dryRun: true, ifRevision: idle.revision - 1 }),
    code('JY_ERR_REVISION_CONFLICT'),
  );
  assert.ok((await svc.remove(['idle'], { dryRun: true, ifRevision: idle.revision })).ok);

  // apply --dry-run through --host: the plan on stderr, {actions, plans} with --json
  const conf = `${tmp.dir}/jail.conf`;
  const { writeFileSync } = await import('node:fs');
  writeFileSync(conf, 'idle { path = "/srv/x"; meta = "v=2"; }\nfresh { path = "/srv/y"; persist; }\n');
  const { runCli } = await import('../helpers/cli.ts');
  const r = await runCli(['--host', host, 'apply', '-f', conf, '--dry-run', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    actions: [
      {
        jail: 'idle',
        action: 'modify',
        set: {},
        unset: [],
        meta: [{ op: 'replace', value: 'v=2' }],
        restart: false,
        start: true,
      },
      {
        jail: 'fresh',
        action: 'create',
        set: { path: '/srv/y', persist: true },
        unset: [],
        restart: false,
        start: true,
      },
    ],
    plans: {},
  });
  assert.equal(
    r.stderr,
    'idle: modify, start\n  meta = "v=2"\nfresh: create, start\n  set path = "/srv/y"\n  set persist = true\n',
  );

  assert.deepEqual([await etcdRevision(), await records()], before, 'a dry run wrote to etcd');
  // and a real run does write: the check above can fail
  assert.ok((await api.remove(['idle'])).ok);
  assert.notEqual(await etcdRevision(), before[0]);
});
