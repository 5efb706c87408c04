// The fifth red-team run (SECURITY.md), with a real jail on a cluster node: the node's agent
// (in this process, over the local service of the test's own state folder) runs the jail
// placed on it, and the daemon serves the jail's guest socket with the in-jail jail(8) over
// the cluster's service, as `serve --etcd` does. The jail's root sends two `jail -c` at once
// with children.max=1: the count and the create were an etcd round trip apart, both passed.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startDaemon } from '../../src/api/daemon.ts';
import { rootsFrom } from '../../src/api/guest-tools.ts';
import { runJail, runJls, runSysctl } from '../../src/cli/freebsd/index.ts';
import { type NodeAgent, startNodeAgent } from '../../src/cluster/agent.ts';
import { createClusterService } from '../../src/cluster/service.ts';
import { ClusterState } from '../../src/cluster/state.ts';
import { guestDir } from '../../src/layout.ts';
import { loadDriver } from '../../src/platform/index.ts';
import { createLocalService } from '../../src/runtime/service.ts';
import { skeletonHooks } from '../../src/skeleton/hooks.ts';
import { openStore } from '../../src/store/sqlite.ts';
import type { Store } from '../../src/store/types.ts';
import { cliFor } from '../helpers/cli.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';
import { startEtcd, type SingleEtcd } from './single-etcd.ts';

/** The jail's root, as an attacker times it: two requests on the guest socket (it serves 2
 * at once), each sent but for its last byte, then both last bytes together. */
const RACE = `
import socket, time
def req(n):
    body = b"-c\\0name=" + n + b"\\0persist\\0"
    s = socket.socket(socket.AF_UNIX)
    s.connect("/run/jailyard/guest.sock")
    s.sendall(b"POST /tools/jail HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body[:-1])
    return s, body[-1:]
reqs = [req(n) for n in (b"a", b"b")]
time.sleep(0.3)
for s, last in reqs: s.send(last)
for s, _ in reqs:
    out = b""
    while True:
        d = s.recv(65536)
        if not d: break
        out += d
        if b"\\r\\n\\r\\n" in out and len(out.split(b"\\r\\n\\r\\n", 1)[1]) > 0: break
    print(out.split(b"\\r\\n\\r\\n", 1)[-1][:200])
`;

let dir: string;
let state: string;
let etcd: SingleEtcd;
let cs: ClusterState;
let store: Store;
let agent: NodeAgent | undefined;
let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
let baseline: SystemSnapshot;
let service: ReturnType<typeof createClusterService>;
const jy = cliFor(() => state);

before(async () => {
  baseline = snapshot();
  dir = mkdtempSync('/tmp/etcd-rt-jail-');
  state = join(dir, 'state');
  etcd = await startEtcd({ client: 23874, peer: 23884 });
  cs = await ClusterState.open({ endpoints: [etcd.endpoint], prefix: '/jy-rt5/' });
  const r = await jy('skel', 'create', 'host', '--from', '/');
  assert.equal(r.code, 0, r.stderr);
  store = openStore(state);
  const driver = await loadDriver({ stateDir: state });
  const local = createLocalService({ store, stateDir: state, driver, skeletons: skeletonHooks() });
  agent = await startNodeAgent({
    state: cs,
    node: { name: 'ce-n1', labels: {}, range: '198.51.100.240/29', capacity: 10 },
    local: { service: local, store, isAlive: (j) => !!j.runtime?.create && driver.isAlive(j.runtime.create) },
    leaseTtlSec: 10,
    endpoints: [etcd.endpoint],
    passIntervalMs: 1000,
    stepTimeoutMs: 30_000,
  });
  service = createClusterService(cs, { waitMs: 30_000 });
  daemon = await startDaemon({
    store,
    service,
    events: cs,
    socketPath: join(state, 'jailyard.sock'),
    pollIntervalMs: 20,
    guestRoot: (n) => guestDir(state, n),
    tools: {
      front: { jail: runJail, jls: runJls, sysctl: runSysctl },
      scope: { rootOf: rootsFrom(state, store), stateDir: state },
    },
  });
});

after(async () => {
  try {
    await daemon?.close();
    await agent?.stop({ stopJails: true });
    await jy('remove', '-l', 'test=rt5');
    store?.close();
    await cs?.close();
  } finally {
    await etcd?.stop();
    assertNoLeaks(baseline, state);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a real jail's two jail -c at once, children.max=1, on a cluster node: one child", async () => {
  await service.create({
    spec: { name: 'ce6p', params: { name: 'ce6p', skeleton: 'host', persist: true, 'children.max': '1' } },
    meta: [{ op: 'set', key: 'test', value: 'rt5' }],
  });
  const started = await service.start(['ce6p']);
  assert.ok(started.ok, JSON.stringify(started.outcomes));
  const t0 = Date.now();
  while (!existsSync(join(guestDir(state, 'ce6p'), 'guest.sock'))) {
    assert.ok(Date.now() - t0 < 10_000, 'no guest socket for ce6p');
    await new Promise((r) => setTimeout(r, 20));
  }
  const driver = await loadDriver({ stateDir: state });
  const local = createLocalService({ store, stateDir: state, driver });
  const r = await driver.runInJail(
    local.contextOf('ce6p'),
    store.requireJail('ce6p').runtime!.create!,
    ['/usr/bin/python3', '-c', RACE],
    { stdio: 'pipe', timeoutMs: 60_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  // the loser is refused at its create (nothing written, no local jail made): before, both
  // creates passed the count, and the node made the second child's local jail, whose start
  // the running-children check refused ("cannot start ... 1 running child jail(s)"), and the
  // front removed it again
  const answers = String(r.stdout);
  assert.match(answers, /jail: prison limit exceeded/, answers);
  assert.doesNotMatch(answers, /cannot start/, answers);
  // both answers are in: the children's records are what counts
  await new Promise((res) => setTimeout(res, 500));
  const kids = (await service.list()).map((j) => j.name).filter((n) => n.startsWith('ce6p.'));
  assert.equal(kids.length, 1, `children of ce6p (children.max=1) in etcd: ${kids.join(', ')}`);
  const removed = await service.remove(['ce6p']);
  assert.ok(removed.ok, JSON.stringify(removed.outcomes));
});
