// The controller against a REAL haproxy; loopback HTTP servers (127.0.0.x) stand in for
// jails, fed through the in-memory source. Load runs through HAProxy while servers swap.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHaproxy, CHECK_TIMING, sleep, type HaproxyProcess } from '../../src/lb/haproxy-process.ts';
import {
  DRAIN_LABEL,
  READINESS_LABEL,
  desiredServers,
  NESTED_REASON,
  runHaproxyController,
  serverNameOf,
  waitForServer,
} from '../../src/lb/controller.ts';
import { ADMIN_FMAINT, CHECK_PASSED, isServing } from '../../src/lb/haproxy-runtime.ts';
import { MemorySource, type LbJail } from '../../src/lb/source.ts';
import { freePort, runLoad, startVersionServer, type VersionServer } from './fixtures.ts';

function jail(
  name: string,
  s: VersionServer,
  labels: Record<string, string>,
  state: LbJail['state'] = 'running',
  ready = false,
): LbJail {
  return { name, state, labels: { ...labels, port: String(s.port) }, params: { 'ip4.addr': [`${s.addr}/24`] }, ready };
}

describe('desiredServers (pure)', () => {
  test('running, matching, not draining, with address and port', () => {
    const jails: LbJail[] = [
      {
        name: 'a',
        state: 'running',
        labels: { app: 'www', port: '80' },
        params: { 'ip4.addr': ['198.51.100.5/24', '198.51.100.6/24'] },
        ready: false,
      },
      { name: 'b', state: 'stopped', labels: { app: 'www' }, params: { 'ip4.addr': '198.51.100.7' }, ready: false },
      { name: 'c', state: 'running', labels: { app: 'db' }, params: { 'ip4.addr': '198.51.100.8' }, ready: false },
      {
        name: 'd',
        state: 'running',
        labels: { app: 'www', [DRAIN_LABEL]: '1' },
        params: { 'ip4.addr': '198.51.100.9' },
        ready: false,
      },
      { name: 'e', state: 'running', labels: { app: 'www' }, params: {}, ready: false },
      {
        name: 'f',
        state: 'running',
        labels: { app: 'www', port: 'x' },
        params: { 'ip4.addr': '198.51.100.10' },
        ready: false,
      },
      { name: 'g', state: 'stopping', labels: { app: 'www' }, params: { 'ip4.addr': '198.51.100.11' }, ready: false },
      { name: 'h', state: 'running', labels: { app: 'www' }, params: { 'ip4.addr': '198.51.100.12/24' }, ready: false },
    ];
    const { servers, skipped } = desiredServers(jails, 'app=www', 8080);
    assert.deepEqual(
      [...servers.values()],
      [
        { server: 'jy-a', jail: 'a', addr: '198.51.100.5', port: 80, gated: false, awaitingReady: false },
        { server: 'jy-h', jail: 'h', addr: '198.51.100.12', port: 8080, gated: false, awaitingReady: false },
      ],
    );
    assert.deepEqual(skipped, [
      { jail: 'e', reason: 'no ip4.addr' },
      { jail: 'f', reason: 'invalid port label "x"' },
    ]);
    assert.equal(serverNameOf('web/1 x'), 'jy-web_1_x');
  });

  test("jailyard.lb/readiness=guest: a server that waits for the jail's ready signal; other values are skipped", () => {
    const gated = (name: string, ready: boolean, readiness = 'guest'): LbJail => ({
      name,
      state: 'running',
      labels: { app: 'www', [READINESS_LABEL]: readiness },
      params: { 'ip4.addr': '198.51.100.20' },
      ready,
    });
    const { servers, skipped } = desiredServers(
      [gated('a', false), gated('b', true), gated('c', true, 'http'), gated('d', false, '')],
      'app=www',
      80,
    );
    assert.deepEqual(
      [...servers.values()].map((s) => [s.jail, s.gated, s.awaitingReady]),
      [
        ['a', true, true],
        ['b', true, false],
        // an empty label: today's behaviour (HAProxy's check only), readiness not needed
        ['d', false, false],
      ],
    );
    assert.deepEqual(skipped, [
      { jail: 'c', reason: 'invalid jailyard.lb/readiness label "http" (guest, health, or no label)' },
    ]);
  });

  test("a nested jail is no server unless --nested: its labels are its parent jail's to write", () => {
    // audit: a jail made a child at its own address labelled app=www and joined www's pool
    const jails: LbJail[] = [
      { name: 'www1', state: 'running', labels: { app: 'www' }, params: { 'ip4.addr': '198.51.100.30' }, ready: false },
      {
        name: 'u1.uw',
        state: 'running',
        labels: { app: 'www' },
        params: { 'ip4.addr': '198.51.100.31' },
        ready: false,
      },
    ];
    const plain = desiredServers(jails, 'app=www', 80);
    assert.deepEqual(
      [...plain.servers.values()].map((s) => s.jail),
      ['www1'],
    );
    assert.deepEqual(plain.skipped, [{ jail: 'u1.uw', reason: NESTED_REASON }]);
    const nested = desiredServers(jails, 'app=www', 80, { nested: true });
    assert.deepEqual(
      [...nested.servers.values()].map((s) => s.jail),
      ['www1', 'u1.uw'],
    );
  });

  test('a bad selector throws JY_ERR_SELECTOR', () => {
    assert.throws(() => desiredServers([], 'app in (', 80), { code: 'JY_ERR_SELECTOR' });
  });
});

describe('haproxy controller (real haproxy, loopback servers as jails)', () => {
  let dir: string;
  let hp: HaproxyProcess;
  let port: number;
  const servers: VersionServer[] = [];
  const abort = new AbortController();
  let controller: Promise<void> | undefined;
  const logLines: string[] = [];
  const source = new MemorySource();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jy-lb-ctl-'));
    port = await freePort('127.0.0.30');
    hp = await startHaproxy({ dir, port, bindAddress: '127.0.0.30' });
    for (const [addr, v] of [
      ['127.0.0.31', 'v1'],
      ['127.0.0.32', 'v1'],
      ['127.0.0.41', 'v2'],
      ['127.0.0.42', 'v2'],
      ['127.0.0.43', 'bad'],
    ] as const) {
      servers.push(await startVersionServer(addr, v));
    }
    servers[4]!.healthy = false;
  });
  after(async () => {
    abort.abort();
    await controller;
    await hp?.stop();
    for (const s of servers) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('stale servers go at the first sync; matching ones come in only after their check', async () => {
    // left over by an earlier run: not in the jail set, so it must be removed
    await hp.runtime.addServer('www', 'jy-ghost', '127.0.0.99', 9, { check: true, ...CHECK_TIMING });
    await hp.runtime.addServer('www', 'static', '127.0.0.98', 9);
    source.set(jail('w1', servers[0]!, { app: 'www', version: 'v1' }));
    source.set(jail('w2', servers[1]!, { app: 'www', version: 'v1' }));
    source.set(jail('other', servers[2]!, { app: 'db' }));
    controller = runHaproxyController({
      source,
      selector: 'app=www',
      backend: 'www',
      adminSocket: hp.adminSocket,
      signal: abort.signal,
      drainTimeoutMs: 5000,
      log: (l) => logLines.push(l),
    });
    await waitForServer(hp.runtime, 'www', 'jy-w1', 'serving', 5000);
    await waitForServer(hp.runtime, 'www', 'jy-w2', 'serving', 5000);
    await waitForServer(hp.runtime, 'www', 'jy-ghost', 'absent', 5000);
    const names = (await hp.runtime.showServersState('www')).map((s) => s.name).sort();
    assert.deepEqual(names, ['jy-w1', 'jy-w2', 'static'], 'servers not owned by jailyard are left alone');
  });

  test('an unhealthy jail never gets traffic', async () => {
    const load = runLoad(`http://127.0.0.30:${port}/`, { concurrency: 4, maxMs: 10_000 });
    source.set(jail('bad1', servers[4]!, { app: 'www', version: 'v2' }));
    await sleep(1500);
    const st = (await hp.runtime.showServersState('www')).find((s) => s.name === 'jy-bad1');
    assert.ok(st, 'added');
    assert.equal(st.adminState & 1, 1, 'kept in maint: its check never passed');
    source.delete('bad1');
    await waitForServer(hp.runtime, 'www', 'jy-bad1', 'absent', 5000);
    const r = await load.stop();
    assert.equal(r.failed, 0, r.errors.join('\n'));
    assert.equal(servers[4]!.hits > 0, true, 'it was checked');
    assert.equal(r.versions.bad, undefined);
  });

  test('swap v1 → v2 under load: zero failed requests', async () => {
    const load = runLoad(`http://127.0.0.30:${port}/`, { concurrency: 8, maxMs: 30_000 });
    await sleep(300);
    // v2 in
    source.set(jail('w3', servers[2]!, { app: 'www', version: 'v2' }));
    source.set(jail('w4', servers[3]!, { app: 'www', version: 'v2' }));
    await waitForServer(hp.runtime, 'www', 'jy-w3', 'serving', 5000);
    await waitForServer(hp.runtime, 'www', 'jy-w4', 'serving', 5000);
    await sleep(300);
    // v1 out: first drained by label (still running), then stopped once gone from the pool
    source.set(jail('w1', servers[0]!, { app: 'www', version: 'v1', [DRAIN_LABEL]: '1' }));
    await waitForServer(hp.runtime, 'www', 'jy-w1', 'absent', 10_000);
    source.set(jail('w1', servers[0]!, { app: 'www', version: 'v1' }, 'stopped'));
    // the other one simply stops (state stopping): drained as well
    source.set(jail('w2', servers[1]!, { app: 'www', version: 'v1' }, 'stopping'));
    await waitForServer(hp.runtime, 'www', 'jy-w2', 'absent', 10_000);
    source.delete('w2');
    await sleep(300);
    const before = { ...load.result.versions };
    await sleep(500);
    const r = await load.stop();
    assert.equal(r.failed, 0, r.errors.join('\n'));
    assert.ok(r.ok > 100, `enough requests went through (${r.ok})`);
    assert.equal((r.versions.v1 ?? 0) - (before.v1 ?? 0), 0, 'no v1 answer after the swap');
    assert.ok(r.versions.v2! > 0);
    const names = (await hp.runtime.showServersState('www')).map((s) => s.name).sort();
    assert.deepEqual(names, ['jy-w3', 'jy-w4', 'static']);
    assert.ok(logLines.some((l) => l.startsWith('drain jy-w1')));
  });

  test('a readiness-gated jail: check passed but not ready → no traffic; ready → serving; readiness lost → drained', async () => {
    const state = async () => (await hp.runtime.showServersState('www')).find((x) => x.name === 'jy-g1');
    const until = async (what: string, pred: () => Promise<boolean>, ms = 5000) => {
      const deadline = Date.now() + ms;
      while (!(await pred())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; log:\n${logLines.join('\n')}`);
        await sleep(50);
      }
    };
    source.delete('w1');
    const gatedLabels = { app: 'www', version: 'v1', [READINESS_LABEL]: 'guest' };
    const load = runLoad(`http://127.0.0.30:${port}/`, { concurrency: 4, maxMs: 30_000 });
    source.set(jail('g1', servers[0]!, gatedLabels, 'running', false));
    // HAProxy's check passes (the server answers 200) ...
    await until('the check of jy-g1 to pass', async () => (await state())?.checkResult === CHECK_PASSED);
    await sleep(800); // several ticks of the controller
    // ... but the jail has not said ready: still in maintenance, no v1 answers
    const held = await state();
    assert.ok(
      held && (held.adminState & ADMIN_FMAINT) !== 0 && !isServing(held),
      `jy-g1 must not serve yet: ${JSON.stringify(held)}`,
    );
    assert.equal(load.result.versions.v1 ?? 0, 0, 'no traffic to a jail that did not say ready');
    assert.ok(
      logLines.some(
        (l) => l.startsWith('add jy-g1') && l.endsWith("waiting for its check and the jail's ready signal"),
      ),
    );

    // the jail says ready (PUT /ready → record.ready → the source's MODIFIED)
    source.set(jail('g1', servers[0]!, gatedLabels, 'running', true));
    await waitForServer(hp.runtime, 'www', 'jy-g1', 'serving', 5000);
    // the controller logs once HAProxy answered the enable, which the poll above may see first
    await until('the ready line of jy-g1', async () =>
      logLines.some((l) => l.startsWith('ready jy-g1') && l.includes('jail ready')),
    );
    await until('v1 answers through HAProxy', async () => (load.result.versions.v1 ?? 0) > 0);

    // readiness lost (a restart clears it): drained and removed like a leaving jail, then
    // back in maintenance, waiting for the signal again
    const removedBefore = logLines.filter((l) => l === 'removed jy-g1').length;
    source.set(jail('g1', servers[0]!, gatedLabels, 'running', false));
    await until(
      'jy-g1 drained and removed',
      async () => logLines.filter((l) => l === 'removed jy-g1').length > removedBefore,
    );
    assert.ok(logLines.some((l) => l === 'drain jy-g1'));
    await until('jy-g1 back in maintenance', async () => {
      const s = await state();
      return s !== undefined && (s.adminState & ADMIN_FMAINT) !== 0;
    });
    const v1After = load.result.versions.v1 ?? 0;
    await sleep(800);
    assert.equal(load.result.versions.v1 ?? 0, v1After, 'no traffic after readiness was lost');

    source.delete('g1');
    await waitForServer(hp.runtime, 'www', 'jy-g1', 'absent', 5000);
    const r = await load.stop();
    assert.equal(r.failed, 0, r.errors.join('\n'));
  });
});
