// The fifth red-team run (SECURITY.md): what a jail controls, reaching etcd. A jail's in-jail
// jail(8) (guest-tools.ts, the same runTool and front its guest socket serves) acts through
// the cluster's service on a node: every change it makes to a child is a whole record
// written to etcd, whose history keeps each revision until compaction. One real etcd member
// (ports of this file's own), a node registered by the test, the jail's record as the API
// makes it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { runTool, type ToolContext } from '../../src/api/guest-tools.ts';

/** guest-tools.ts CHILD_PARAMS_MAX_BYTES (a number here: the test runs on the code before it too). */
const CHILD_PARAMS_MAX_BYTES = 4096;
import { runJail, runJls, runSysctl } from '../../src/cli/freebsd/index.ts';
import type { NodeRecord } from '../../src/cluster/records.ts';
import { createClusterService } from '../../src/cluster/service.ts';
import { ClusterState } from '../../src/cluster/state.ts';
import { startEtcd, type SingleEtcd } from './single-etcd.ts';

let etcd: SingleEtcd;
const closers: (() => Promise<void>)[] = [];
let prefixN = 0;
const freshPrefix = (): string => `/jy-c-guest-${process.pid}-${++prefixN}/`;

before(async () => {
  etcd = await startEtcd({ client: 23871, peer: 23881 });
});
after(async () => {
  try {
    for (const c of closers.reverse()) await c().catch(() => {});
  } finally {
    await etcd?.stop();
  }
});

async function cluster() {
  const s = await ClusterState.open({ endpoints: [etcd.endpoint], prefix: freshPrefix() });
  closers.push(() => s.close());
  const rec: NodeRecord = {
    name: 'n1',
    labels: {},
    range: '198.51.100.240/29',
    capacity: 5,
    startedAt: new Date().toISOString(),
    version: 1,
  };
  const reg = await s.register(rec, { ttlSec: 10 });
  closers.push(() => reg.revoke().catch(() => {}));
  // the node's agent reduced to its reports: each desired state is reached at once
  s.subscribe((ch) => {
    if (ch.kind !== 'jail' || !ch.entry) return;
    const j = ch.entry.jail;
    const p = j.placement;
    if (p?.node !== 'n1' || (j.status?.token === p.token && j.status.state === j.desired)) return;
    const status = { state: j.desired, jid: j.desired === 'running' ? 1 : 0, ready: false, lastError: null };
    const at = new Date().toISOString();
    void s
      .updateJail(j.name, (cur) =>
        cur.placement?.token === p.token ? { ...cur, status: { ...status, addresses: [], token: p.token, at } } : null,
      )
      .catch(() => {});
  });
  const service = createClusterService(s, { waitMs: 5000 });
  const ctx: ToolContext = { front: { jail: runJail, jls: runJls, sysctl: runSysctl }, service };
  return { s, service, ctx };
}

const sizeOf = async (s: ClusterState, name: string): Promise<number> => {
  const v = await s.client.get(s.keys.jail(name)).buffer();
  return v?.length ?? 0;
};

test("a jail's jail -c / jail -m cannot write a child record of more than CHILD_PARAMS_MAX_BYTES of parameters to etcd", async () => {
  const { s, service, ctx } = await cluster();
  await service.create({ spec: { name: 'ce1', params: { name: 'ce1', path: '/srv/x', 'children.max': '2' } } });
  // the stand-in's first report of the parent is in before anything is compared
  assert.ok(await s.waitUntil(() => !!s.jailEntry('ce1')?.jail.status, { timeoutMs: 5000 }));
  const big = 'x'.repeat(200_000);
  const rev = s.currentRevision();
  const c = await runTool(ctx, 'jail', ['-c', 'name=k', `exec.start=${big}`], 'ce1');
  assert.notEqual(c.status, 0, c.stdout);
  assert.match(
    c.stderr,
    /exec\.start: Operation not permitted \(the child's parameters would take \d+ bytes, more than the 4096/,
  );
  assert.equal(await sizeOf(s, 'ce1.k'), 0, 'nothing written to etcd');
  assert.equal(s.currentRevision(), rev);

  // a child of ordinary size is made; rewriting it with a large command is refused
  const ok = await runTool(ctx, 'jail', ['-c', 'name=k', 'exec.start=/bin/true'], 'ce1');
  assert.ok(await sizeOf(s, 'ce1.k'), `the child exists: ${ok.stderr}`);
  const before = await sizeOf(s, 'ce1.k');
  const m = await runTool(ctx, 'jail', ['-m', 'name=k', `exec.start=${big}`], 'ce1');
  assert.notEqual(m.status, 0);
  assert.match(m.stderr, /exec\.start: Operation not permitted/);
  // several values each under the bound, together over it
  const parts = 'y'.repeat(CHILD_PARAMS_MAX_BYTES / 2);
  const m2 = await runTool(ctx, 'jail', ['-m', 'name=k', `exec.stop=${parts}`, `host.hostname=${parts}`], 'ce1');
  assert.notEqual(m2.status, 0);
  assert.ok((await sizeOf(s, 'ce1.k')) < CHILD_PARAMS_MAX_BYTES * 2, 'the record stays small');
  assert.ok((await sizeOf(s, 'ce1.k')) <= before + 256);
  // and a change within the bound still works
  const m3 = await runTool(ctx, 'jail', ['-m', 'name=k', 'exec.stop=/bin/false'], 'ce1');
  assert.deepEqual((await service.get('ce1.k')).params['exec.stop'], ['/bin/false'], m3.stderr);
});
