// API benchmarks:
// 1. list with a label selector over 10,000 jails × 16 labels through the daemon (HTTP over
//    its unix socket) vs the same query through the library (store.listJails); p50.
// 2. write-to-event latency: a PATCH through the API until every watcher has the event,
//    with 100 concurrent watch streams vs 1; p99.
// 3. start and stop of a prepared thin jail (skeleton: the host's root, no addresses) with
//    one HTTP call each (POST /v1/jails/NAME/start, .../stop) vs the driver-level start of
//    the same jail (its mount plan + create) and stop (destroy + unmount); p50.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startDaemon } from '../src/api/daemon.ts';
import { SseParser } from '../src/api/sse.ts';
import { createLocalService } from '../src/runtime/service.ts';
import { openStore } from '../src/store/sqlite.ts';
import { guestDir } from '../src/layout.ts';
import { createLinuxDriver } from '../src/platform/linux/index.ts';
import { skeletonHooks } from '../src/skeleton/hooks.ts';
import { createSkeleton } from '../src/skeleton/registry.ts';
import { percentile, report } from './lib.ts';

// 3. API start/stop vs the driver's (first: the 10,000 jails below would sit in its store)
{
  const RUNS = Number(process.env.JAILYARD_BENCH_RUNS ?? 30);
  const dir = mkdtempSync(join(tmpdir(), 'jy-bench-apistart-'));
  const store = openStore(dir);
  const driver = createLinuxDriver({});
  const service = createLocalService({ store, stateDir: dir, driver, skeletons: skeletonHooks() });
  await createSkeleton(dir, 'host', { type: 'from', path: '/' });
  const daemon = await startDaemon({
    store,
    service,
    socketPath: join(dir, 'jailyard.sock'),
    guestRoot: (n) => guestDir(dir, n),
  });
  const agent = new Agent({ connect: { socketPath: daemon.socketPath } });
  const post = async (path: string) => {
    const res = await request(`http://localhost${path}`, { method: 'POST', dispatcher: agent });
    const body = await res.body.text();
    if (res.statusCode !== 200) throw new Error(body);
  };
  const api = { start: [] as number[], stop: [] as number[] };
  const drv = { start: [] as number[], stop: [] as number[] };
  try {
    await service.create({ spec: { name: 'apib', params: { name: 'apib', skeleton: 'host', persist: true } } });
    for (let i = 0; i < RUNS + 3; i++) {
      let t = performance.now();
      await post('/v1/jails/apib/start');
      const a = performance.now() - t;
      t = performance.now();
      await post('/v1/jails/apib/stop');
      const b = performance.now() - t;
      const ctx = service.contextOf('apib');
      t = performance.now();
      const mounts = await driver.mount(ctx, service.planOf('apib'));
      const facts = await driver.create(ctx, { addresses: [] }, {}, mounts);
      const c = performance.now() - t;
      t = performance.now();
      await driver.destroy(ctx, facts, 10_000);
      await driver.unmount(ctx, mounts);
      const d = performance.now() - t;
      if (i < 3) continue; // warm-up
      api.start.push(a);
      api.stop.push(b);
      drv.start.push(c);
      drv.stop.push(d);
    }
  } finally {
    await service.remove(['apib']);
    await daemon.close();
    await agent.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const p50 = (s: number[]) => percentile(s, 50);
  report({
    name: 'api-start',
    ratioOf: 'API start p50 / driver-level start (mounts + create) p50, a prepared thin jail',
    ratio: p50(api.start) / p50(drv.start),
    target: '<= 1.3',
    metrics: {
      runs: RUNS,
      api_start_p50_ms: p50(api.start),
      api_start_p90_ms: percentile(api.start, 90),
      driver_start_p50_ms: p50(drv.start),
      api_stop_p50_ms: p50(api.stop),
      driver_stop_p50_ms: p50(drv.stop),
      api_stop_over_driver_stop: p50(api.stop) / p50(drv.stop),
    },
  });
}

// JAILYARD_BENCH_ONLY=api-start: the start/stop part alone
if (process.env.JAILYARD_BENCH_ONLY === 'api-start') process.exit();

const JAILS = 10_000;
const LABELS = 16;
const SELECTOR = 'app=app7,tier in (web,db),!canary';

const dir = mkdtempSync(join(tmpdir(), 'jy-bench-api-'));
const store = openStore(dir);
const service = createLocalService({ store, stateDir: dir });
const daemon = await startDaemon({ store, service, socketPath: join(dir, 'jailyard.sock'), pollIntervalMs: 25 });
const agent = new Agent({ connect: { socketPath: daemon.socketPath }, connections: 256 });

try {
  const t0 = performance.now();
  for (let i = 0; i < JAILS; i++) {
    const meta = [`app=app${i % 50}`, `tier=${['web', 'db', 'cache'][i % 3]}`, ...(i % 10 === 0 ? ['canary=1'] : [])];
    for (let k = meta.length; k < LABELS; k++) meta.push(`k${k}=v${(i * 7 + k) % 13}`);
    store.createJail({
      name: `b${i}`,
      params: { name: `b${i}`, path: `/srv/b${i}` },
      meta: [{ op: 'replace', value: meta.join('\n') }],
    });
  }
  console.log(
    `[bench api] created ${JAILS} jails × ${LABELS} labels in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  // 1. list with a selector
  const url = `http://localhost/v1/jails?labelSelector=${encodeURIComponent(SELECTOR)}`;
  const viaApi = async () => {
    const res = await request(url, { dispatcher: agent });
    return ((await res.body.json()) as { items: unknown[] }).items.length;
  };
  const matched = store.listJails({ selector: SELECTOR }).length;
  if ((await viaApi()) !== matched) throw new Error('API and library disagree');
  const lib: number[] = [];
  const api: number[] = [];
  for (let i = 0; i < 10; i++) {
    store.listJails({ selector: SELECTOR });
    await viaApi();
  }
  for (let i = 0; i < 100; i++) {
    let t = performance.now();
    store.listJails({ selector: SELECTOR });
    lib.push(performance.now() - t);
    t = performance.now();
    await viaApi();
    api.push(performance.now() - t);
  }
  const apiP50 = percentile(api, 50);
  const libP50 = percentile(lib, 50);
  report({
    name: 'api-list',
    ratioOf: 'API list p50 / library listJails p50',
    ratio: apiP50 / libP50,
    target: 'API p50 <= 10 ms',
    metrics: {
      jails: JAILS,
      labels: LABELS,
      matched,
      api_p50_ms: apiP50,
      api_p99_ms: percentile(api, 99),
      lib_p50_ms: libP50,
    },
  });

  // 2. write-to-event latency
  async function latencies(subscribers: number, writes: number): Promise<number[]> {
    const aborts: AbortController[] = [];
    const waiting = new Map<number, { t0: number; left: number; done: () => void }>();
    const samples: number[] = [];
    let connected = 0;
    for (let s = 0; s < subscribers; s++) {
      const ac = new AbortController();
      aborts.push(ac);
      void (async () => {
        const res = await request('http://localhost/v1/jails?watch=1', { dispatcher: agent, signal: ac.signal });
        const parser = new SseParser();
        connected++;
        try {
          for await (const chunk of res.body) {
            for (const m of parser.push(chunk.toString())) {
              if (m.event !== 'MODIFIED' || m.id === undefined) continue;
              const w = waiting.get(Number(m.id));
              if (!w) continue;
              samples.push(performance.now() - w.t0);
              if (--w.left === 0) w.done();
            }
          }
        } catch {
          // aborted
        }
      })();
    }
    while (connected < subscribers) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < writes; i++) {
      const t0 = performance.now();
      const revision = store.currentRevision() + 1;
      const all = new Promise<void>((done) => waiting.set(revision, { t0, left: subscribers, done }));
      const res = await request(`http://localhost/v1/jails/b${i}`, {
        method: 'PATCH',
        dispatcher: agent,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ meta: [`bench=${i}`] }),
      });
      await res.body.dump();
      await all;
      waiting.delete(revision);
    }
    for (const ac of aborts) ac.abort();
    return samples;
  }
  const one = await latencies(1, 100);
  const many = await latencies(100, 100);
  const p99one = percentile(one, 99);
  const p99many = percentile(many, 99);
  report({
    name: 'api-watch',
    ratioOf: 'write-to-event p99 with 100 watchers / with 1 watcher',
    ratio: p99many / p99one,
    target: 'p99 <= 20 ms with 100 watchers',
    metrics: {
      watchers: 100,
      writes: 100,
      p50_100_ms: percentile(many, 50),
      p99_100_ms: p99many,
      p50_1_ms: percentile(one, 50),
      p99_1_ms: p99one,
    },
  });
} finally {
  await daemon.close();
  await agent.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
}
