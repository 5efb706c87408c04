// Skeletons are per node: a version's digest (sha256 of its manifest.tsv) is published in the
// node record, the first one published for NAME@VERSION is the cluster's reference, and a node
// whose copy differs is no candidate for placement and refuses to create the jail. One etcd
// member on loopback (engineer S's ports: client 23797, peer 23807), two in-process agents
// over their own state folders (no jail is started: the checks are before any).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterState, newToken } from '../../src/cluster/state.ts';
import { startNodeAgent, type NodeAgent } from '../../src/cluster/agent.ts';
import { choosePlacement } from '../../src/cluster/placement.ts';
import { parseNodeRecord, type ClusterJail } from '../../src/cluster/records.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { createLocalService } from '../../src/runtime/service.ts';
import { skeletonHooks } from '../../src/skeleton/hooks.ts';
import { manifestDigest, resolveSkeleton } from '../../src/skeleton/registry.ts';
import { loadDriver } from '../../src/platform/index.ts';
import type { Store } from '../../src/store/types.ts';
import { JailyardError } from '../../src/errors.ts';
import { cliFor } from '../helpers/cli.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';

const CLIENT = 'http://127.0.0.1:23797';
const PEER = 'http://127.0.0.1:23807';
const PREFIX = '/jy-s-skel/';

let dir: string;
let etcd: ChildProcess;
let cs: ClusterState;
let baseline: SystemSnapshot;
const nodes: { name: string; state: string; store: Store; agent?: NodeAgent }[] = [];

async function waitFor<T>(what: string, f: () => T | undefined | false, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A small tree for `skel create --copy`: one file whose text tells the copies apart. */
function tree(name: string, text: string): string {
  const t = join(dir, 'trees', name);
  mkdirSync(join(t, 'etc'), { recursive: true });
  writeFileSync(join(t, 'etc', 'motd'), text);
  return t;
}

async function skel(state: string, name: string, from: string): Promise<void> {
  const r = await cliFor(() => state)('skel', 'create', name, '--copy', from);
  assert.equal(r.code, 0, r.stderr);
}

async function startNode(name: string, range: string): Promise<NodeAgent> {
  const n = nodes.find((x) => x.name === name)!;
  const driver = await loadDriver({ stateDir: n.state });
  const service = createLocalService({ store: n.store, stateDir: n.state, driver, skeletons: skeletonHooks() });
  n.agent = await startNodeAgent({
    state: cs,
    node: { name, labels: {}, range, capacity: 10 },
    local: { service, store: n.store },
    leaseTtlSec: 5,
    endpoints: [CLIENT],
    passIntervalMs: 300,
    stepTimeoutMs: 20_000,
  });
  return n.agent;
}

const loads = () => cs.nodeEntries().map((e) => ({ record: e.record, placed: 0 }));
const place = (params: Record<string, string>) =>
  choosePlacement({ name: 'j', params }, loads(), { skeletonRefs: cs.skeletonRefs() });
const digestOf = (state: string, ref: string) => manifestDigest(readFileSync(resolveSkeleton(state, ref).manifest));

describe('skeleton digests across nodes', () => {
  before(async () => {
    baseline = snapshot();
    dir = mkdtempSync(join(tmpdir(), 'jy-s-skel-'));
    etcd = spawn(
      'etcd',
      [
        ...['--name', 's1', '--data-dir', join(dir, 'etcd'), '--log-level', 'error'],
        ...['--listen-client-urls', CLIENT, '--advertise-client-urls', CLIENT],
        ...['--listen-peer-urls', PEER, '--initial-advertise-peer-urls', PEER, '--initial-cluster', `s1=${PEER}`],
      ],
      { stdio: 'ignore' },
    );
    cs = await ClusterState.open({ endpoints: [CLIENT], prefix: PREFIX, connectTimeoutMs: 15_000 });
    for (const name of ['a', 'b']) {
      const state = join(dir, `state-${name}`);
      mkdirSync(state);
      nodes.push({ name, state, store: openStore(state) });
    }
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const same = tree('same', 'same content\n');
    await skel(a.state, 'base', same);
    await skel(b.state, 'base', same);
    await skel(a.state, 'web', tree('web-a', 'web as node a has it\n'));
    await skel(b.state, 'web', tree('web-b', 'web as node b has it\n'));
    await skel(a.state, 'only-a', same);
    // a registers first: its digests are the cluster's references
    await startNode('a', '198.51.100.80/30');
    await startNode('b', '198.51.100.84/30');
  });

  after(async () => {
    for (const n of nodes) {
      await n.agent?.stop({ stopJails: true });
      await cliFor(() => n.state)('remove', '-l', 'test=skel');
      n.store.close();
    }
    await cs?.close();
    if (etcd && etcd.exitCode === null) {
      const gone = new Promise((r) => etcd.once('exit', r));
      etcd.kill('SIGTERM');
      await gone;
    }
    for (const n of nodes) assertNoLeaks(baseline, n.state);
    rmSync(dir, { recursive: true, force: true });
  });

  test('each node publishes its versions; the first digest is the reference', () => {
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const ra = cs.nodeEntry('a')!.record.skeletons!;
    const rb = cs.nodeEntry('b')!.record.skeletons!;
    assert.deepEqual(Object.keys(ra).sort(), ['base@1', 'only-a@1', 'web@1']);
    assert.deepEqual(Object.keys(rb).sort(), ['base@1', 'web@1']);
    assert.equal(ra['base@1'], rb['base@1']);
    assert.equal(ra['web@1'], digestOf(a.state, 'web@1'));
    assert.equal(rb['web@1'], digestOf(b.state, 'web@1'));
    assert.notEqual(ra['web@1'], rb['web@1']);
    assert.equal(cs.skeletonRefs().get('web@1'), ra['web@1']);
    assert.equal(cs.skeletonRefs().get('base@1'), ra['base@1']);
  });

  test('placement: same content on both, a mismatch or a missing skeleton excludes the node', () => {
    assert.equal(place({ skeleton: 'base', node: 'b' }), 'b');
    assert.equal(place({ skeleton: 'base@1', node: 'a' }), 'a');
    assert.equal(place({ skeleton: 'web' }), 'a');
    assert.equal(place({ skeleton: 'web@1' }), 'a');
    assert.throws(
      () => place({ skeleton: 'web', node: 'b' }),
      (e: unknown) =>
        e instanceof JailyardError &&
        e.code === 'JY_ERR_NO_NODE' &&
        /skeleton "web".*b: web@1 has digest [0-9a-f]{12}, the cluster's is [0-9a-f]{12}/.test(e.message),
    );
    assert.throws(
      () => place({ skeleton: 'only-a', node: 'b' }),
      (e: unknown) =>
        e instanceof JailyardError && e.code === 'JY_ERR_NO_NODE' && /b: does not have it/.test(e.message),
    );
    // a record that publishes no skeletons is left to its agent's check at create
    const bare = { name: 'c', labels: {}, range: '198.51.100.86/31', capacity: 1, startedAt: '', version: 1 as const };
    assert.equal(
      choosePlacement(
        { name: 'j', params: { skeleton: 'web', node: 'c' } },
        [...loads(), { record: bare, placed: 0 }],
        {
          skeletonRefs: cs.skeletonRefs(),
        },
      ),
      'c',
    );
    assert.throws(
      () => place({ skeleton: 'web@2' }),
      (e: unknown) => e instanceof JailyardError && /a: does not have it; b: does not have it/.test(e.message),
    );
  });

  test('the agent of a node whose copy differs refuses to create the jail', async () => {
    const now = new Date().toISOString();
    const jail: ClusterJail = {
      name: 'sk1',
      params: { skeleton: 'web@1', persist: true },
      meta: 'test=skel',
      env: '',
      desired: 'stopped',
      placement: { node: 'b', token: newToken(), at: now },
      status: null,
      createdAt: now,
      updatedAt: now,
      version: 1,
    };
    await cs.createJail(jail);
    const st = await waitFor('b to report', () => cs.jailEntry('sk1')?.jail.status ?? undefined);
    const ra = cs.skeletonRefs().get('web@1')!;
    const rb = cs.nodeEntry('b')!.record.skeletons!['web@1']!;
    assert.equal(st.state, 'stopped');
    assert.ok(
      st.lastError?.includes(
        `skeleton web@1 on node b has digest ${rb}, the cluster's reference is ${ra}: this node's copy has other content under the same name and version`,
      ),
      st.lastError ?? 'no error',
    );
    assert.equal(nodes[1]!.store.getJail('sk1'), undefined);
    // the same record placed on a (the reference's content) is created there
    await cs.updateJail('sk1', (j) => ({ ...j, placement: { node: 'a', token: newToken(), at: now } }));
    await waitFor('a to create sk1', () => nodes[0]!.store.getJail('sk1'));
    const sa = await waitFor('a to report', () => {
      const s = cs.jailEntry('sk1')?.jail.status;
      return s && s.token === cs.jailEntry('sk1')?.jail.placement?.token ? s : undefined;
    });
    assert.equal(sa.lastError, null);
    assert.ok(await cs.deleteJailAt('sk1', cs.jailEntry('sk1')!.revision));
    await waitFor('a to remove sk1', () => !nodes[0]!.store.getJail('sk1'));
  });

  test('a skeleton made after start-up shows up in the node record; bad records are refused', async () => {
    await skel(nodes[1]!.state, 'late', tree('late', 'late\n'));
    const d = await waitFor('late@1 in b', () => cs.nodeEntry('b')?.record.skeletons?.['late@1']);
    assert.equal(d, digestOf(nodes[1]!.state, 'late@1'));
    assert.equal(cs.skeletonRefs().get('late@1'), d);
    const rec = { name: 'x', labels: {}, range: '198.51.100.80/30', capacity: 1, startedAt: 'now', version: 1 };
    for (const skeletons of [{ 'web@1': 'nothex' }, { web: 'a'.repeat(64) }, { '../x@1': 'a'.repeat(64) }, []]) {
      assert.throws(
        () => parseNodeRecord('k', JSON.stringify({ ...rec, skeletons })),
        (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_CLUSTER_RECORD',
      );
    }
  });
});
