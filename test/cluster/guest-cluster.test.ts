// The fifth red-team run (SECURITY.md): what a jail controls, reaching etcd. A jail's in-jail
// jail(8) (guest-tools.ts, the same runTool and front its guest socket serves) acts through
// the cluster's service on a node: every change it makes to a child is a whole record
// written to etcd, whose history keeps each revision until compaction. One real etcd member
// (ports of this file's own), a node registered by the test, the jail's record as the API
// makes it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { join } from 'node:path';
import { runTool, type ToolContext, ToolsEndpoint } from '../../src/api/guest-tools.ts';

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

/** POST /tools/jail with `argv` on the unix socket `path`: jail(8)'s exit status. */
function jailTool(path: string, argv: string[]): Promise<number> {
  const body = Buffer.from(argv.map((a) => `${a}\0`).join(''));
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: path, path: '/tools/jail', method: 'POST' }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve(res.statusCode === 200 ? Number(Buffer.concat(parts).toString().split(' ')[0]) : -1));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test("a jail's jail(8) requests that write etcd are paced per tree of jails (a burst, then one per 250 ms)", async () => {
  const { s, service, ctx } = await cluster();
  await service.create({ spec: { name: 'ce2', params: { name: 'ce2', path: '/srv/x', 'children.max': '2' } } });
  assert.ok(await s.waitUntil(() => !!s.jailEntry('ce2')?.jail.status, { timeoutMs: 5000 }));
  assert.equal((await runTool(ctx, 'jail', ['-c', 'name=k', 'exec.stop=/bin/true'], 'ce2')).status, 0);
  // the guest socket's endpoint, as the daemon serves it to the jail ce2 (the caller is named
  // by the server that accepted the connection)
  const dir = mkdtempSync('/tmp/etcd-rt-guest-');
  closers.push(async () => rmSync(dir, { recursive: true, force: true }));
  const endpoint = new ToolsEndpoint(ctx);
  const server = createServer((req, res) => void endpoint.handle('ce2', req, res));
  const sock = join(dir, 'tools.sock');
  await new Promise<void>((r) => server.listen(sock, r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  const rev = s.currentRevision();
  const t0 = Date.now();
  const n = 36;
  // two at a time, as the endpoint serves them (maxRunning)
  let next = 0;
  const statuses: number[] = [];
  await Promise.all(
    [0, 1].map(async () => {
      while (next < n) {
        const i = next++;
        statuses.push(await jailTool(sock, ['-m', 'name=k', `exec.stop=/bin/echo ${i}`]));
      }
    }),
  );
  const took = Date.now() - t0;
  assert.deepEqual(
    statuses.filter((x) => x !== 0),
    [],
  );
  const writes = s.currentRevision() - rev;
  assert.ok(writes >= n, `each jail -m wrote the child's record (${writes} revisions)`);
  // 20 at once, the 16 others at 4 per second: about 4 s (before the pace: ~0.5 s)
  assert.ok(took >= (n - 20 - 1) * 250, `${n} jail -m took ${took} ms: paced`);
});

test("children.max holds against a jail's concurrent jail -c (its own socket and its children's each serve 2 at once)", async () => {
  const { s, service, ctx } = await cluster();
  await service.create({ spec: { name: 'ce3', params: { name: 'ce3', path: '/srv/x', 'children.max': '1' } } });
  assert.ok(await s.waitUntil(() => !!s.jailEntry('ce3')?.jail.status, { timeoutMs: 5000 }));
  const r = await Promise.all(
    ['a', 'b', 'c', 'd'].map((n) => runTool(ctx, 'jail', ['-c', `name=${n}`, 'persist'], 'ce3')),
  );
  const children = (await service.list()).map((j) => j.name).filter((n) => n.startsWith('ce3.'));
  // before: all four created (the count and the create an etcd round trip apart)
  assert.equal(children.length, 1, `children of ce3 (children.max=1): ${children.join(', ')}`);
  assert.equal(r.filter((x) => x.status === 0).length, 1);
  for (const x of r.filter((x) => x.status !== 0)) assert.match(x.stderr, /prison limit exceeded/);
});
