// HAProxy killed (master and workers, SIGKILL) in the middle of a rollout with REAL jails and
// a REAL haproxy: the rollout stops with a clear JY_ERR_HAPROXY naming the recovery command,
// its progress saved as failed, no jail half-done (old ones still running, the new one
// running and healthy); once HAProxy is started again, the controller rebuilds the pool by
// itself and `--resume` completes the rollout. Nothing leaks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childrenOf, pidAlive } from '../../src/platform/linux/proc.ts';
import { startHaproxy, type HaproxyProcess } from '../../src/lb/haproxy-process.ts';
import { runHaproxyController } from '../../src/lb/controller.ts';
import { pollingSource } from '../../src/lb/source.ts';
import {
  newRolloutState,
  readRolloutState,
  rolloutFileFor,
  runRollout,
  type RolloutDeps,
} from '../../src/lb/rollout.ts';
import type { JailService } from '../../src/runtime/types.ts';
import type { Store } from '../../src/store/types.ts';
import type { JailSpec } from '../../src/conf/spec.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { freePort } from '../lb/fixtures.ts';

const PREFIX = `jyhk${process.pid % 10000}`;
const PORT = 8080;
const FE = '127.0.0.51';
const serve = (v: string) =>
  `mkdir -p /etc/jyweb && echo ${v} > /etc/jyweb/index.html && /usr/bin/python3 -m http.server ${PORT} -d /etc/jyweb >/dev/null 2>&1 &`;
const conf = (name: string, addr: string, body: string) =>
  `${name} { skeleton = host; persist; ip4.addr = ${addr}/24; exec.start = "${body}"; }\n`;

interface Pieces {
  service: JailService;
  store: Store;
  parse: (text: string, file: string) => JailSpec[];
}

let dir: string;
let baseline: SystemSnapshot;
let pieces: Pieces | string;
let hp: HaproxyProcess | undefined;
let fePort: number;
const abort = new AbortController();
let controller: Promise<void> | undefined;
const lines: string[] = [];
const haproxyPids = new Set<number>();

async function startLb(): Promise<HaproxyProcess> {
  const h = await startHaproxy({ dir: join(dir, 'haproxy'), port: fePort, bindAddress: FE });
  haproxyPids.add(h.pid);
  for (const c of childrenOf(h.pid)) haproxyPids.add(c);
  return h;
}

/** kill -9 of the master and its workers, as an OOM killer or an operator would. */
function killHaproxy(h: HaproxyProcess): void {
  for (const p of [h.pid, ...childrenOf(h.pid)]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

before(async () => {
  baseline = snapshot();
  dir = mkdtempSync(join(tmpdir(), 'jy-faults-lb-'));
  if (process.getuid?.() !== 0) {
    pieces = 'needs root';
    return;
  }
  const { openStore } = await import('../../src/store/sqlite.ts');
  const { createLocalService } = await import('../../src/runtime/service.ts');
  const { skeletonHooks } = await import('../../src/skeleton/hooks.ts');
  const { createSkeleton } = await import('../../src/skeleton/registry.ts');
  const { parseConfString } = await import('../../src/conf/evaluate.ts');
  await import('../../src/platform/linux/index.ts');
  await createSkeleton(dir, 'host', { type: 'from', path: '/' }, { writable: ['etc'] });
  const store = openStore(dir);
  pieces = {
    store,
    service: createLocalService({ store, stateDir: dir, skeletons: skeletonHooks() }),
    parse: parseConfString,
  };
  fePort = await freePort(FE);
  hp = await startLb();
  controller = runHaproxyController({
    source: pollingSource(pieces.service, { pollMs: 100 }),
    selector: `app=${PREFIX}`,
    backend: 'www',
    adminSocket: hp.adminSocket,
    signal: abort.signal,
    drainTimeoutMs: 2000,
    log: (l) => lines.push(`lb: ${l}`),
  });
  for (let i = 1; i <= 2; i++) {
    const [spec] = pieces.parse(conf(`${PREFIX}-v1-${i}`, `198.51.100.${109 + i}`, serve('v1')), 'v1.conf');
    await pieces.service.create({
      spec: spec!,
      meta: [
        { op: 'set', key: 'app', value: PREFIX },
        { op: 'set', key: 'version', value: 'v1' },
        { op: 'set', key: 'port', value: String(PORT) },
      ],
    });
  }
  const r = await pieces.service.start([1, 2].map((i) => `${PREFIX}-v1-${i}`));
  assert.ok(r.ok, JSON.stringify(r));
});

after(async () => {
  abort.abort();
  await controller;
  if (typeof pieces !== 'string') {
    const all = await pieces.service.list();
    if (all.length) await pieces.service.remove(all.map((j) => j.name));
    pieces.store.close();
  }
  await hp?.stop();
  assertNoLeaks(baseline, dir);
  assert.deepEqual([...haproxyPids].filter(pidAlive), [], 'haproxy processes left behind');
  rmSync(dir, { recursive: true, force: true });
});

test('HAProxy killed mid-rollout: clear error, jails intact, --resume after a restart completes', {
  timeout: 180_000,
}, async (t) => {
  if (typeof pieces === 'string') return t.skip(pieces);
  const p = pieces;
  const servingNames = async () =>
    (await hp!.runtime.showServersState('www'))
      .filter((s) => s.opState === 2 && s.adminState === 0)
      .map((s) => s.name)
      .sort();
  const waitServing = async (want: string[]) => {
    const deadline = Date.now() + 20_000;
    while (JSON.stringify(await servingNames()) !== JSON.stringify(want) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await servingNames(), want, lines.join('\n'));
  };
  await waitServing([1, 2].map((i) => `jy-${PREFIX}-v1-${i}`));

  const selector = `app=${PREFIX}`;
  const stateFile = rolloutFileFor(dir, selector);
  const template = p.parse(conf(PREFIX, '198.51.100.1', serve('v2')), 'v2.conf')[0]!;
  const killed = hp!;
  const deps: RolloutDeps = {
    service: p.service,
    template,
    stateFile,
    lb: { adminSocket: killed.adminSocket, backend: 'www' },
    healthTimeoutMs: 20_000,
    poolTimeoutMs: 20_000,
    // the first new jail answers its health check: HAProxy dies before it joins the pool
    progress: (l) => {
      lines.push(l);
      if (/-v2-1 healthy at/.test(l) && pidAlive(killed.pid)) killHaproxy(killed);
    },
  };
  const state = newRolloutState({
    selector,
    from: 'version=v1',
    to: 'version=v2',
    replicas: 2,
    maxSurge: 1,
    maxUnavailable: 0,
    port: PORT,
    healthPath: '/',
    prefix: PREFIX,
    addressRange: [120, 129],
  });
  const t0 = Date.now();
  await assert.rejects(runRollout(state, deps), (e: unknown) => {
    const err = e as { code?: string; message: string };
    assert.equal(err.code, 'JY_ERR_HAPROXY', err.message);
    assert.match(err.message, /cannot talk to the HAProxy admin socket/);
    assert.match(err.message, new RegExp(`jailyard rollout --selector '${selector}' --resume`));
    return true;
  });
  assert.ok(Date.now() - t0 < 60_000, 'the rollout stopped promptly, without waiting for the pool timeout');
  const saved = readRolloutState(stateFile)!;
  assert.equal(saved.phase, 'failed');
  assert.deepEqual(saved.created, [`${PREFIX}-v2-1`]);
  // nothing half-done: both old jails running, the new one running (it was healthy)
  const states = Object.fromEntries((await p.service.list()).map((j) => [j.name, j.state]));
  assert.deepEqual(states, {
    [`${PREFIX}-v1-1`]: 'running',
    [`${PREFIX}-v1-2`]: 'running',
    [`${PREFIX}-v2-1`]: 'running',
  });

  // HAProxy back (empty pool): the controller refills it by itself; --resume completes
  hp = await startLb();
  await waitServing([`jy-${PREFIX}-v1-1`, `jy-${PREFIX}-v1-2`, `jy-${PREFIX}-v2-1`]);
  const done = await runRollout(readRolloutState(stateFile)!, {
    ...deps,
    lb: { adminSocket: hp.adminSocket, backend: 'www' },
    progress: (l) => lines.push(l),
  });
  assert.equal(done.phase, 'done', lines.join('\n'));
  await waitServing([1, 2].map((i) => `jy-${PREFIX}-v2-${i}`));
  assert.equal((await p.service.list({ selector: `${selector},version=v1` })).length, 0);
  assert.ok(!pidAlive(killed.pid));
});
