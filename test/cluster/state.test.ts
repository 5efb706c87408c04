// ClusterState against a real etcd member: the mirror, compare-and-swap, concurrent meta key
// writers on two clients, resumable events, validation of what etcd holds, registration.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { JailyardError } from '../../src/errors.ts';
import { applyMetaOps } from '../../src/meta/ops.ts';
import type { ClusterJail, NodeRecord } from '../../src/cluster/records.ts';
import { ClusterState, rangesOverlap } from '../../src/cluster/state.ts';
import { startEtcd, type SingleEtcd } from './single-etcd.ts';
import { createClusterService } from '../../src/cluster/service.ts';
import { startDaemon } from '../../src/api/daemon.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { tempState } from '../api/helpers.ts';

let etcd: SingleEtcd;
const opened: ClusterState[] = [];
let prefixN = 0;
/** Each test has a prefix of its own: one etcd, no test sees another's keys. */
const freshPrefix = (): string => `/jy-c-test-${process.pid}-${++prefixN}/`;

async function open(prefix: string, more: Partial<Parameters<typeof ClusterState.open>[0]> = {}) {
  const s = await ClusterState.open({ endpoints: [etcd.endpoint], prefix, ...more });
  opened.push(s);
  return s;
}

function jail(name: string, more: Partial<ClusterJail> = {}): ClusterJail {
  const now = new Date().toISOString();
  return {
    name,
    params: { path: '/' },
    meta: '',
    env: '',
    desired: 'stopped',
    placement: null,
    status: null,
    createdAt: now,
    updatedAt: now,
    version: 1,
    ...more,
  };
}

function node(name: string, range: string): NodeRecord {
  return { name, labels: { zone: 'z1' }, range, capacity: 10, startedAt: new Date().toISOString(), version: 1 };
}

const code = (c: string) => (e: unknown) => e instanceof JailyardError && e.code === c;

before(async () => {
  etcd = await startEtcd();
});

after(async () => {
  try {
    for (const s of opened) await s.close().catch(() => {});
  } finally {
    await etcd?.stop();
  }
});

test('the mirror sees creates, updates and deletes with etcd revisions', async () => {
  const p = freshPrefix();
  const a = await open(p);
  const b = await open(p);
  const start = b.currentRevision();
  const created = await a.createJail(jail('web'));
  await b.caughtUp(created.revision);
  const seen = b.getJail('web');
  assert.equal(seen?.revision, created.revision);
  assert.equal(seen?.state, 'stopped');
  await assert.rejects(a.createJail(jail('web')), code('JY_ERR_JAIL_EXISTS'));
  const upd = await a.updateJail('web', (j) => ({ ...j, meta: 'x=1' }));
  assert.ok(upd.revision > created.revision);
  assert.ok(await a.deleteJailAt('web', upd.revision));
  await b.caughtUp(upd.revision + 1);
  assert.equal(b.getJail('web'), undefined);
  const events = b.eventsSince(start);
  assert.deepEqual(
    events.map((e) => [e.type, e.name]),
    [
      ['ADDED', 'web'],
      ['MODIFIED', 'web'],
      ['DELETED', 'web'],
    ],
  );
  assert.equal(events[1]!.jail.meta, 'x=1');
  // resuming from the middle gives exactly what came after
  assert.deepEqual(
    b.eventsSince(events[0]!.revision).map((e) => e.revision),
    events.slice(1).map((e) => e.revision),
  );
  assert.deepEqual(b.eventsSince(events[2]!.revision), []);
});

test('the listing is paged at one revision; the API records are built once per revision', async () => {
  const p = freshPrefix();
  const a = await open(p);
  for (let i = 0; i < 7; i++) await a.createJail(jail(`p${i}`));
  const reg = await a.register(node('pn', '198.51.100.80/29'), { ttlSec: 5 });
  await a.updateSettings({ meta_maxbufsize: 8192 });
  const paged = await open(p, { listPageSize: 2 });
  assert.deepEqual(
    paged.listJails().map((j) => j.name),
    ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6'],
  );
  assert.equal(paged.nodeEntries()[0]?.record.name, 'pn');
  assert.equal(paged.settings().meta_maxbufsize, 8192);
  assert.equal(paged.currentRevision(), a.currentRevision());
  assert.equal(paged.listJails()[3], paged.listJails()[3]);
  await a.updateJail('p3', (j) => ({ ...j, meta: 'changed=1' }));
  await paged.caughtUp(a.currentRevision());
  assert.equal(paged.listJails()[3]!.meta, 'changed=1');
  await reg.revoke();
});

test('a jail on a node whose lease is gone shows stopped with "node X lost"', async () => {
  const p = freshPrefix();
  const a = await open(p);
  const reg = await a.register(node('gone', '198.51.100.80/29'), { ttlSec: 5 });
  const at = new Date().toISOString();
  const placement = { node: 'gone', token: 't1', at };
  const status = { state: 'running' as const, jid: 3, ready: true, lastError: null, addresses: [], token: 't1', at };
  await a.createJail(jail('lost', { desired: 'running', placement, status }));
  const before = a.listJails();
  assert.deepEqual([before[0]!.state, before[0]!.jid, before[0]!.node], ['running', 3, 'gone']);
  await reg.revoke();
  await a.waitUntil(() => a.nodeEntries().length === 0, { timeoutMs: 5000 });
  const after = a.listJails()[0]!;
  assert.deepEqual(
    [after.state, after.jid, after.ready, after.lastError, after.node],
    ['stopped', 0, false, 'node gone lost', 'gone'],
  );
  assert.equal(a.getJail('lost')?.lastError, 'node gone lost');
  // a status for another placement is not this one's
  await a.updateJail('lost', (j) => ({ ...j, placement: { node: 'gone', token: 't2', at } }));
  assert.equal(a.getJail('lost')?.state, 'stopped');
});

test('compare-and-swap: a stale revision is a conflict and changes nothing', async () => {
  const p = freshPrefix();
  const a = await open(p);
  const first = await a.createJail(jail('cas'));
  const second = await a.updateJail('cas', (j) => ({ ...j, meta: 'v=2' }));
  await assert.rejects(
    a.updateJail('cas', (j) => ({ ...j, meta: 'v=3' }), { ifRevision: first.revision }),
    code('JY_ERR_REVISION_CONFLICT'),
  );
  assert.equal((await a.fetchJail('cas'))?.jail.meta, 'v=2');
  assert.equal((await a.fetchJail('cas'))?.revision, second.revision);
  // the right revision passes
  const third = await a.updateJail('cas', (j) => ({ ...j, meta: 'v=3' }), { ifRevision: second.revision });
  assert.equal(third.jail.meta, 'v=3');
  // a delete compares too
  assert.equal(await a.deleteJailAt('cas', second.revision), false);
  assert.ok(a.getJail('cas'));
  await assert.rejects(
    a.updateJail('nope', (j) => j),
    code('JY_ERR_JAIL_NOT_FOUND'),
  );
});

test('concurrent meta key writers on two clients never lose a key; the 4096-byte limit holds', async () => {
  const p = freshPrefix();
  const a = await open(p);
  const b = await open(p);
  await a.createJail(jail('shared'));
  const writer = (s: ClusterState, tag: string) =>
    Promise.all(
      Array.from({ length: 15 }, (_, i) =>
        s.updateJail('shared', (j) => ({
          ...j,
          meta: applyMetaOps(j.meta, [{ op: 'set', key: `${tag}${i}`, value: String(i) }], 4096),
        })),
      ),
    );
  await Promise.all([writer(a, 'a'), writer(b, 'b')]);
  const final = (await a.fetchJail('shared'))!.jail.meta;
  const keys = new Set(final.split('\n').map((l) => l.split('=')[0]));
  for (let i = 0; i < 15; i++) {
    assert.ok(keys.has(`a${i}`), `a${i} lost`);
    assert.ok(keys.has(`b${i}`), `b${i} lost`);
  }
  assert.equal(keys.size, 30);
  // a write past the limit is refused and the record stays as it was
  const before = await a.fetchJail('shared');
  await assert.rejects(
    a.updateJail('shared', (j) => ({
      ...j,
      meta: applyMetaOps(j.meta, [{ op: 'set', key: 'big', value: 'x'.repeat(4096) }], 4096),
    })),
    code('JY_ERR_META_TOO_LARGE'),
  );
  assert.equal((await a.fetchJail('shared'))?.revision, before!.revision);
});

test('events beyond the ring, or before the mirror started, are REVISION_GONE', async () => {
  const p = freshPrefix();
  const a = await open(p, { ringSize: 3 });
  const start = a.currentRevision();
  await a.createJail(jail('ring'));
  for (let i = 0; i < 10; i++) await a.updateJail('ring', (j) => ({ ...j, meta: `n=${i}` }));
  assert.throws(() => a.eventsSince(start), code('JY_ERR_REVISION_GONE'));
  const recent = a.currentRevision() - 1;
  assert.deepEqual(
    a.eventsSince(recent).map((e) => e.jail.meta),
    ['n=9'],
  );
  // compacted in etcd: a mirror opened afterwards starts its history at its own listing
  await etcd.compact(a.currentRevision());
  const late = await open(p);
  assert.throws(() => late.eventsSince(start), code('JY_ERR_REVISION_GONE'));
  assert.deepEqual(late.eventsSince(late.currentRevision()), []);
  assert.equal(late.getJail('ring')?.meta, 'n=9');
});

test('the ring is bounded in bytes too: a since older than it is a 410 through the API, as after a compaction', async () => {
  const p = freshPrefix();
  const budget = 256 * 1024;
  const a = await open(p, { ringBytes: budget });
  await a.createJail(jail('big'));
  const first = a.currentRevision();
  // 20 records of ~50 KB each (a record may hold up to 2 MiB of meta): 1 MB of events
  for (let i = 0; i < 20; i++) await a.updateJail('big', (j) => ({ ...j, meta: `n=${i}\nbig=${'x'.repeat(50_000)}` }));
  const st = a.ringStats();
  assert.ok(st.bytes <= budget, `ring holds ${st.bytes} bytes, budget ${budget}`);
  assert.ok(st.events >= 2 && st.events < 21, `ring holds ${st.events} events`);
  assert.ok(st.floor > first);
  assert.throws(() => a.eventsSince(first), code('JY_ERR_REVISION_GONE'));
  // what is still held is served in full
  const held = a.eventsSince(st.floor);
  assert.equal(held.length, st.events);
  assert.deepEqual(
    held.map((e) => e.jail.meta.split('\n')[0]),
    Array.from({ length: st.events }, (_, k) => `n=${20 - st.events + k}`),
  );
  // count alone still bounds too (ringSize 3: at most 6 held)
  const c = await open(p, { ringSize: 3 });
  for (let i = 0; i < 10; i++) await c.updateJail('big', (j) => ({ ...j, meta: `m=${i}` }));
  assert.ok(c.ringStats().events <= 6);
  // through the API: the same 410 a watcher gets from a node whose history etcd compacted
  await etcd.compact(a.currentRevision());
  const late = await open(p);
  const tmp = tempState('jy-c-ring-');
  const daemons: Awaited<ReturnType<typeof startDaemon>>[] = [];
  const stores: ReturnType<typeof openStore>[] = [];
  try {
    const answers = [];
    for (const [i, s] of [a, late].entries()) {
      const store = openStore(`${tmp.dir}/${i}`);
      stores.push(store);
      const d = await startDaemon({
        store,
        service: createClusterService(s),
        events: s,
        socketPath: `${tmp.dir}/${i}/jailyard.sock`,
        pollIntervalMs: 20,
      });
      daemons.push(d);
      const res = await d.app.inject({ method: 'GET', url: `/v1/jails?watch=1&since=${first}` });
      answers.push([res.statusCode, (res.json() as { code: string }).code]);
    }
    assert.deepEqual(answers, [
      [410, 'JY_ERR_REVISION_GONE'],
      [410, 'JY_ERR_REVISION_GONE'],
    ]);
  } finally {
    for (const d of daemons) await d.close();
    for (const s of stores) s.close();
    tmp.cleanup();
  }
});

test('a watch resumed after a compaction re-lists: the state is current, older events are gone', async () => {
  const p = freshPrefix();
  const resyncs: number[] = [];
  const a = await open(p, { onResync: (r) => resyncs.push(r) });
  const writer = await open(p);
  await writer.createJail(jail('r1'));
  await writer.createJail(jail('r2'));
  await a.caughtUp(writer.currentRevision());
  const seen = a.currentRevision();
  const changes: string[] = [];
  a.subscribe((c) => changes.push(c.kind));
  // the connection is lost; meanwhile a jail changes, one goes, one comes, etcd compacts
  await a.dropWatch();
  await writer.updateJail('r1', (j) => ({ ...j, meta: 'late=1' }));
  assert.ok(await writer.deleteJailAt('r2', writer.jailEntry('r2')!.revision));
  await writer.createJail(jail('r3'));
  await etcd.compact(writer.currentRevision());
  assert.equal(a.getJail('r1')?.meta, '');
  await a.resumeWatch();
  // etcd accepts the watch, then cancels it for the compaction: the mirror re-lists
  assert.ok(await a.waitUntil(() => resyncs.length === 1, { timeoutMs: 5000 }));
  assert.deepEqual(changes, ['resync']);
  assert.equal(a.currentRevision(), writer.currentRevision());
  assert.deepEqual(
    a.listJails().map((j) => [j.name, j.meta]),
    [
      ['r1', 'late=1'],
      ['r3', ''],
    ],
  );
  // a watcher at the old revision must re-list; from the new one it goes on
  assert.throws(() => a.eventsSince(seen), code('JY_ERR_REVISION_GONE'));
  await writer.updateJail('r3', (j) => ({ ...j, meta: 'after=1' }));
  await a.caughtUp(writer.currentRevision());
  assert.deepEqual(
    a.eventsSince(resyncs[0]!).map((e) => [e.type, e.name]),
    [['MODIFIED', 'r3']],
  );
  // without a compaction, a resumed watch simply catches up: no resync
  await a.dropWatch();
  await writer.updateJail('r1', (j) => ({ ...j, meta: 'again=1' }));
  await a.resumeWatch();
  await a.caughtUp(writer.currentRevision());
  assert.equal(resyncs.length, 1);
  assert.equal(a.getJail('r1')?.meta, 'again=1');
});

test('compactHistory keeps the last event_history revisions', async () => {
  const p = freshPrefix();
  const a = await open(p);
  await a.createJail(jail('h'));
  for (let i = 0; i < 5; i++) await a.updateJail('h', (j) => ({ ...j, meta: `n=${i}` }));
  const old = a.currentRevision() - 4;
  const to = await a.compactHistory(2);
  assert.equal(to, a.currentRevision() - 2);
  await assert.rejects(a.client.kv.range({ key: Buffer.from(`${p}jails/h`), revision: old }), /compacted/);
  const kept = await a.client.kv.range({ key: Buffer.from(`${p}jails/h`), revision: to });
  assert.equal(kept.kvs.length, 1);
  // again at the same place: nothing to do, no error
  assert.equal(await a.compactHistory(2), 0);
  // the mirror's own history is its ring: unchanged by etcd's compaction
  assert.equal(a.eventsSince(old).length, 4);
});

test('a record that is not valid is refused with a clear error and the mirror goes on', async () => {
  const p = freshPrefix();
  const invalid: string[] = [];
  const a = await open(p, { onInvalid: (_k, e) => invalid.push(e.message) });
  const ok = await a.createJail(jail('good'));
  await etcd.put(`${p}jails/bad`, '{"name": "bad", not json');
  await etcd.put(`${p}jails/good`, JSON.stringify({ ...jail('good'), desired: 'flying' }));
  await etcd.put(`${p}nodes/x`, JSON.stringify({ name: 'x', range: '300.1.1.1/8' }));
  await etcd.put(`${p}jails/a*b`, JSON.stringify(jail('a*b')));
  await a.createJail(jail('after'));
  await a.waitUntil(() => a.getJail('after') !== undefined, { timeoutMs: 5000 });
  assert.equal(a.getJail('bad'), undefined);
  // the last valid value of "good" stays
  assert.equal(a.getJail('good')?.revision, ok.revision);
  assert.deepEqual(a.nodeEntries(), []);
  const reasons = [...a.invalidRecords().entries()];
  assert.equal(reasons.length, 4);
  assert.match(a.invalidRecords().get(`${p}jails/bad`)!, /invalid jail record at etcd key ".*jails\/bad": not JSON/);
  assert.match(a.invalidRecords().get(`${p}jails/good`)!, /field "desired" must be "running" or "stopped"/);
  assert.match(a.invalidRecords().get(`${p}nodes/x`)!, /not an IPv4 CIDR|labels/);
  assert.match(a.invalidRecords().get(`${p}jails/a*b`)!, /invalid jail name "a\*b": contains "\*"/);
  assert.equal(invalid.length, 4);
  // a client that lists such a state starts anyway, without the bad records
  const b = await open(p);
  assert.deepEqual(
    b.listJails().map((j) => j.name),
    ['after'],
  );
  assert.equal(b.invalidRecords().size, 4);
  // an update of a bad record reads it through the same check
  await assert.rejects(
    a.updateJail('bad', (j) => j),
    code('JY_ERR_CLUSTER_RECORD'),
  );
});

test('registration: refused for an overlapping range or a live name, nothing written', async () => {
  assert.ok(rangesOverlap('198.51.100.80/28', '198.51.100.88/29'));
  assert.ok(!rangesOverlap('198.51.100.80/29', '198.51.100.88/29'));
  const p = freshPrefix();
  const a = await open(p);
  const regA = await a.register(node('n1', '198.51.100.80/29'), { ttlSec: 5 });
  assert.deepEqual(
    a.nodeEntries().map((n) => [n.record.name, n.lease]),
    [['n1', regA.leaseId]],
  );
  const ttl = await a.leaseTtl(regA.leaseId);
  assert.ok(ttl > 0 && ttl <= 5, `ttl ${ttl}`);
  await assert.rejects(a.register(node('n2', '198.51.100.84/30'), { ttlSec: 5 }), (e: unknown) => {
    assert.ok(e instanceof JailyardError && e.code === 'JY_ERR_NODE_CONFLICT');
    assert.match(e.message, /198\.51\.100\.84\/30 overlaps node "n1"'s range 198\.51\.100\.80\/29/);
    return true;
  });
  await assert.rejects(a.register(node('n1', '198.51.100.88/29'), { ttlSec: 5 }), (e: unknown) => {
    assert.ok(e instanceof JailyardError && e.code === 'JY_ERR_NODE_CONFLICT');
    assert.match(e.message, /name is held by a live node/);
    return true;
  });
  // nothing written by the refusals, and their leases are gone
  assert.deepEqual(
    a.nodeEntries().map((n) => n.record.name),
    ['n1'],
  );
  const leases = await a.client.leaseClient.leaseLeases();
  assert.deepEqual(
    leases.leases.map((l) => String(l.ID)),
    [regA.leaseId],
  );
  // two nodes racing for overlapping ranges: exactly one wins
  await regA.revoke();
  await a.waitUntil(() => a.nodeEntries().length === 0, { timeoutMs: 5000 });
  const race = await Promise.allSettled([
    a.register(node('r1', '198.51.100.80/29'), { ttlSec: 5 }),
    a.register(node('r2', '198.51.100.80/28'), { ttlSec: 5 }),
  ]);
  assert.equal(race.filter((r) => r.status === 'fulfilled').length, 1);
  for (const r of race) if (r.status === 'fulfilled') await r.value.revoke();
  // a lease that expires takes the node away
  const short = await a.register(node('s', '198.51.100.80/29'), { ttlSec: 1 });
  short.lease.release();
  await a.waitUntil(() => a.nodeEntries().length === 0, { timeoutMs: 6000 });
  assert.deepEqual(a.nodeEntries(), []);
});
