// Health checks and restart.policy (docs/health.md) with real jails and the real daemon
// (`jailyard serve` as a process of its own): a health.cmd that turns unhealthy then
// healthy, seen in ls, in the API record and in the watch stream; health.http against a
// server in the jail; restart.policy=always bringing back a jail whose pid 1 was killed from
// the host, with its back-off; a stop that is never undone; on-failure vs no; /metrics.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { SecurityHost, TEST_LABEL } from '../security/helpers.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { createRemoteService, watch } from '../../src/api/client.ts';
import type { JailRecord } from '../../src/store/types.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('health and restart.policy under jailyard serve', () => {
  let h: SecurityHost;
  let daemon: Awaited<ReturnType<SecurityHost['serve']>>;

  /** The jail's record as the store has it now. */
  const record = (name: string): JailRecord => {
    const store = openStore(h.state);
    try {
      return store.requireJail(name);
    } finally {
      store.close();
    }
  };
  /** Polls the record until `cond` holds; the last record otherwise fails the test. */
  const waitFor = async (name: string, what: string, cond: (j: JailRecord) => boolean, ms = 20_000) => {
    const end = Date.now() + ms;
    let j = record(name);
    while (!cond(j)) {
      if (Date.now() > end) assert.fail(`${name}: ${what} not reached: ${JSON.stringify({ ...j, params: undefined })}`);
      await sleep(50);
      j = record(name);
    }
    return j;
  };
  const ls = async (name: string, ...params: string[]) => {
    const r = await h.jy('ls', '-j', name, ...params);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const metrics = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = request({ socketPath: daemon.socket, path: '/metrics' }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
  const killInit = (name: string) => process.kill(h.facts(name).initPid, 'SIGKILL');

  before(async () => {
    h = await SecurityHost.open('health');
    daemon = await h.serve();
  });
  after(async () => {
    await daemon?.stop();
    await h?.close();
  });

  test('health.cmd: starting, unhealthy after retries failures (not restarted without a policy), healthy again; ls, API and watch', async () => {
    const url = `unix://${daemon.socket}`;
    const seen: string[] = [];
    const ac = new AbortController();
    const store = openStore(h.state);
    const since = store.currentRevision();
    store.close();
    const watching = (async () => {
      try {
        for await (const e of watch(url, { signal: ac.signal, selector: 'hw=1', since }))
          if (e.jail) {
            const health = (e.jail as { health?: string | null }).health ?? null;
            if (health && seen.at(-1) !== health) seen.push(health);
          }
      } catch {
        // aborted
      }
    })();
    await h.jail('hc1', {
      params: ['meta.hw=1', 'health.cmd=test -f /tmp/ok', 'health.interval=200ms', 'health.retries=2'],
    });
    const pid = h.facts('hc1').initPid;
    let j = await waitFor('hc1', 'unhealthy', (r) => r.supervision?.health?.status === 'unhealthy');
    assert.equal(j.supervision!.health!.failingStreak, 2);
    assert.match(j.supervision!.health!.output ?? '', /^exited 1/);
    assert.equal(await ls('hc1', 'name', 'health', 'restarts'), 'hc1 unhealthy 0');
    const view = await createRemoteService(url).get('hc1');
    assert.equal(view.supervision?.health?.status, 'unhealthy');
    // restart.policy unset (no): only reported
    await sleep(600);
    assert.equal(h.facts('hc1').initPid, pid);
    assert.equal((await h.sh('hc1', 'touch /tmp/ok')).code, 0);
    j = await waitFor('hc1', 'healthy', (r) => r.supervision?.health?.status === 'healthy');
    assert.equal(j.supervision!.health!.failingStreak, 0);
    assert.equal(await ls('hc1', 'name', 'health'), 'hc1 healthy');
    // the store has it; the watch event may still be on its way
    for (const end = Date.now() + 10_000; seen.at(-1) !== 'healthy' && Date.now() < end; ) await sleep(50);
    ac.abort();
    await watching;
    assert.deepEqual(seen, ['starting', 'unhealthy', 'healthy']);
    // a stopped jail has no health
    assert.equal((await h.jy('stop', 'hc1')).code, 0);
    assert.equal(await ls('hc1', 'name', 'health'), 'hc1 ""');
  });

  test('health.http: a GET from the host to a server in the jail; unhealthy once it is gone', async () => {
    await h.jail('hh1', {
      params: [
        'ip4.addr=198.51.100.231/24',
        'exec.start=/usr/bin/python3 -m http.server 8080 --bind 198.51.100.231 -d /etc >/dev/null 2>&1 &',
        'health.http=http://198.51.100.231:8080/hostname',
        'health.interval=200ms',
        'health.timeout=1s',
        'health.retries=2',
      ],
    });
    await waitFor('hh1', 'healthy', (r) => r.supervision?.health?.status === 'healthy');
    assert.equal((await h.sh('hh1', 'pkill -x python3')).code, 0);
    const j = await waitFor('hh1', 'unhealthy', (r) => r.supervision?.health?.status === 'unhealthy');
    assert.match(j.supervision!.health!.output ?? '', /ECONNREFUSED/);
    assert.equal((await h.jy('stop', 'hh1')).code, 0);
  });

  test('restart.policy=always: a jail whose pid 1 is killed comes back, with a growing back-off; restarts counted', async () => {
    await h.jail('ra1', { params: ['restart.policy=always', 'restart.delay=500ms', 'restart.delay_max=4s'] });
    const delays = [500, 1000, 2000];
    const gaps: number[] = [];
    const kills: number[] = [];
    // the back-off is in the record: each stop's first event carries the pending restart
    const pendings: { attempt: number; at: string }[] = [];
    const ac = new AbortController();
    const watching = (async () => {
      try {
        for await (const e of watch(`unix://${daemon.socket}`, { signal: ac.signal, since: record('ra1').revision }))
          if (e.jail?.name === 'ra1' && e.jail.supervision?.pending) {
            const p = e.jail.supervision.pending;
            if (pendings.at(-1)?.at !== p.at) pendings.push({ attempt: p.attempt, at: p.at });
          }
      } catch {
        // aborted
      }
    })();
    for (let i = 1; i <= 3; i++) {
      const pid = h.facts('ra1').initPid;
      const t0 = Date.now();
      kills.push(t0);
      killInit('ra1');
      const j = await waitFor(
        'ra1',
        `restart ${i}`,
        (r) => r.state === 'running' && r.runtime?.create?.initPid !== pid && r.supervision?.restarts === i,
      );
      gaps.push(Date.now() - t0);
      assert.deepEqual([j.supervision!.lastReason, j.supervision!.streak], ['died', i]);
      assert.equal((await h.sh('ra1', 'echo up')).stdout, 'up\n');
    }
    await sleep(300);
    ac.abort();
    await watching;
    assert.deepEqual(
      pendings.map((p) => p.attempt),
      [1, 2, 3],
    );
    for (const [i, p] of pendings.entries())
      assert.ok(Date.parse(p.at) - kills[i]! >= delays[i]!, `restart ${i + 1} due ${p.at}, killed ${kills[i]}`);
    // 500 ms, 1 s, 2 s: each restart came after its delay (upper bounds depend on the load)
    assert.ok(
      gaps.every((g, i) => g >= delays[i]!),
      `gaps ${gaps.join(', ')} ms`,
    );
    assert.match(await ls('ra1', 'name', 'restarts'), /^ra1 3$/);
    const m = await metrics();
    assert.match(m, /jailyard_jail_restarts_total\{jail="ra1"\} 3/);
    assert.match(m, /jailyard_restarts_total\{reason="died"\} 3/);
    assert.match(m, /jailyard_health_checks_total\{result="ok"\} [1-9]/);
    assert.match(m, /jailyard_health_checks_total\{result="failed"\} [1-9]/);
  });

  test('a stop is never undone: not while running, not while a restart waits for its back-off', async () => {
    // stopped by the operator while running: stays stopped
    assert.equal((await h.jy('stop', 'ra1')).code, 0);
    await sleep(1500);
    assert.equal(record('ra1').state, 'stopped');
    assert.equal(record('ra1').supervision?.pending, undefined);
    // a jail waiting for its restart: the stop cancels it
    // (a delay long enough that the restart cannot come before the ls and the stop below,
    // however slow the supervisor's teardown: it counts from before it)
    await h.jail('ra2', { params: ['restart.policy=always', 'restart.delay=10s'] });
    killInit('ra2');
    const j = await waitFor(
      'ra2',
      'pending restart',
      (r) => r.state === 'stopped' && r.supervision?.pending !== undefined,
    );
    assert.equal(j.supervision!.pending!.reason, 'died');
    assert.match(await ls('ra2', 'name', 'restarts'), /^ra2 0 \(next .*\)$/);
    const stop = await h.jy('stop', 'ra2');
    assert.equal(stop.code, 0, stop.stderr);
    // past the time the restart was due, and a while more
    await sleep(Math.max(0, Date.parse(j.supervision!.pending!.at) - Date.now()) + 1500);
    const after = record('ra2');
    assert.equal(after.state, 'stopped');
    assert.equal(after.supervision?.pending, undefined);
    assert.equal(after.supervision?.restarts ?? 0, 0);
  });

  test('on-failure restarts a killed jail and an unhealthy one; no leaves them', async () => {
    await h.jail('rf1', { params: ['restart.policy=on-failure', 'restart.delay=200ms'] });
    await h.jail('rn1', { params: ['restart.policy=no'] });
    const f = h.facts('rf1').initPid;
    const n = h.facts('rn1').initPid;
    killInit('rf1');
    killInit('rn1');
    await waitFor('rf1', 'restarted', (r) => r.state === 'running' && r.runtime?.create?.initPid !== f);
    await sleep(1000);
    // no: recorded running with its processes gone, for reconcile, as without a daemon
    const rn = record('rn1');
    assert.deepEqual([rn.state, rn.runtime?.create?.initPid, rn.supervision ?? null], ['running', n, null]);
    assert.equal((await h.jy('reconcile')).code, 0);
    assert.equal(record('rn1').state, 'stopped');
    // unhealthy under on-failure: stopped (its exec.stop runs) and started again
    await h.jail('rf2', {
      params: [
        'restart.policy=on-failure',
        'restart.delay=200ms',
        'exec.start=/bin/sleep 86400 &',
        'health.cmd=pgrep -x sleep',
        'health.interval=200ms',
        'health.retries=1',
      ],
    });
    await waitFor('rf2', 'healthy', (r) => r.supervision?.health?.status === 'healthy');
    const pid = h.facts('rf2').initPid;
    // its service dies: the jail (persist) stays, its check fails
    assert.equal((await h.sh('rf2', 'pkill -x sleep')).code, 0);
    const j = await waitFor(
      'rf2',
      'restarted after unhealthy',
      (r) => r.state === 'running' && r.runtime?.create?.initPid !== pid && r.supervision?.health?.status === 'healthy',
    );
    assert.deepEqual([j.supervision!.restarts, j.supervision!.lastReason], [1, 'unhealthy']);
  });

  test('without persist: a jail whose last process ended comes back under always, not under on-failure', async () => {
    for (const [name, policy] of [
      ['re1', 'always'],
      ['re2', 'on-failure'],
    ] as const) {
      const r = await h.jy(
        'create',
        name,
        'skeleton=host',
        TEST_LABEL,
        `restart.policy=${policy}`,
        'restart.delay=200ms',
        'exec.start=/bin/sleep 1 &',
      );
      assert.equal(r.code, 0, r.stderr);
      h.jails.add(name);
      assert.equal((await h.jy('start', name)).code, 0);
    }
    const j = await waitFor('re1', 'restarted', (r) => r.state === 'running' && r.supervision?.restarts === 1);
    assert.equal(j.supervision!.lastReason, 'exited');
    await waitFor('re2', 'gone', (r) => r.state === 'stopped');
    await sleep(1500);
    const re2 = record('re2');
    assert.deepEqual([re2.state, re2.supervision ?? null], ['stopped', null]);
    // it keeps ending and coming back: a stop given while the supervisor itself is stopping
    // it fails ('the jail is stopping') but still cancels the restart
    for (let i = 0; i < 20; i++) {
      await h.jy('stop', 're1');
      const r = record('re1');
      if (r.state === 'stopped' && !r.supervision?.pending) break;
      await sleep(100);
    }
    await sleep(800);
    assert.deepEqual([record('re1').state, record('re1').supervision?.pending], ['stopped', undefined]);
  });

  test('a jail killed while no daemon ran is restarted when the daemon starts; a stopped one is not started', async () => {
    await daemon.stop();
    await h.jail('rd1', { params: ['restart.policy=always', 'restart.delay=200ms'] });
    await h.jail('rd2', { params: ['restart.policy=always'], start: false });
    const pid = h.facts('rd1').initPid;
    killInit('rd1');
    await sleep(500);
    assert.deepEqual([record('rd1').state, record('rd1').runtime?.create?.initPid], ['running', pid]);
    daemon = await h.serve();
    const j = await waitFor('rd1', 'restarted', (r) => r.state === 'running' && r.runtime?.create?.initPid !== pid);
    assert.deepEqual([j.supervision?.restarts, j.supervision?.lastReason], [1, 'died']);
    assert.equal(record('rd2').state, 'stopped');
  });
});
