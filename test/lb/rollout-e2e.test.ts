// End to end with REAL jails (Linux driver, netns + veth on jy0, host-root skeleton), a REAL
// haproxy in front and the controller polling the local store: rollout v1 → v2 under load
// with zero failed requests, then a v2 → v3 whose jails never answer stops and keeps v2.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHaproxy, type HaproxyProcess } from '../../src/lb/haproxy-process.ts';
import { runHaproxyController } from '../../src/lb/controller.ts';
import { pollingSource } from '../../src/lb/source.ts';
import { newRolloutState, readRolloutState, rolloutFileFor, runRollout } from '../../src/lb/rollout.ts';
import type { JailService } from '../../src/runtime/types.ts';
import type { Store } from '../../src/store/types.ts';
import type { JailSpec } from '../../src/conf/spec.ts';
import { readFileSync, readdirSync } from 'node:fs';
import { linksLeft, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';
import { freePort, runLoad } from './fixtures.ts';

const PREFIX = `jylb${process.pid % 10000}`;
const PORT = 8080;
const serve = (v: string) =>
  `mkdir -p /etc/jyweb && echo ${v} > /etc/jyweb/index.html && /usr/bin/python3 -m http.server ${PORT} -d /etc/jyweb >/dev/null 2>&1 &`;
const conf = (name: string, body: string) =>
  `${name} { skeleton = host; persist; ip4.addr = 198.51.100.1/24; exec.start = "${body}"; }\n`;

interface Pieces {
  service: JailService;
  store: Store;
  parse: (text: string, file: string) => JailSpec[];
}

async function loadPieces(dir: string): Promise<Pieces | string> {
  if (process.getuid?.() !== 0) return 'needs root';
  try {
    const { openStore } = await import('../../src/store/sqlite.ts');
    const { createLocalService } = await import('../../src/runtime/service.ts');
    const { skeletonHooks } = await import('../../src/skeleton/hooks.ts');
    const { createSkeleton } = await import('../../src/skeleton/registry.ts');
    const { parseConfString } = await import('../../src/conf/evaluate.ts');
    await import('../../src/platform/linux/index.ts');
    // only /etc writable (seeded from the host): seeding /var or /tmp would copy what other
    // suites keep there
    await createSkeleton(dir, 'host', { type: 'from', path: '/' }, { writable: ['etc'] });
    const store = openStore(dir);
    return {
      store,
      service: createLocalService({ store, stateDir: dir, skeletons: skeletonHooks() }),
      parse: parseConfString,
    };
  } catch (e) {
    return `runtime pieces missing: ${e instanceof Error ? e.message : String(e)}`;
  }
}

describe('rollout with real jails behind real haproxy', () => {
  let dir: string;
  let before0: SystemSnapshot;
  let pieces: Pieces | string;
  let hp: HaproxyProcess | undefined;
  let fePort: number;
  const abort = new AbortController();
  let controller: Promise<void> | undefined;
  const lines: string[] = [];
  // Other suites make jails concurrently on this machine: the leak check looks only at what
  // our jails made (their netns and veths, recorded while they ran; mounts under our folder;
  // processes mentioning our prefix).
  const made = { netns: new Set<string>(), links: new Set<string>() };
  let recorder: NodeJS.Timeout | undefined;

  before(async () => {
    before0 = snapshot();
    dir = mkdtempSync(join(tmpdir(), `${PREFIX}-`));
    pieces = await loadPieces(dir);
    if (typeof pieces === 'string') return;
    const store = pieces.store;
    recorder = setInterval(() => {
      for (const j of store.listJails()) {
        const n = j.runtime?.network;
        if (n?.netns) made.netns.add(n.netns);
        if (n?.veth) made.links.add(n.veth.host);
      }
    }, 100);
    fePort = await freePort('127.0.0.50');
    hp = await startHaproxy({ dir: join(dir, 'haproxy'), port: fePort, bindAddress: '127.0.0.50' });
    controller = runHaproxyController({
      source: pollingSource(pieces.service, { pollMs: 100 }),
      selector: `app=${PREFIX}`,
      backend: 'www',
      adminSocket: hp.adminSocket,
      signal: abort.signal,
      drainTimeoutMs: 5000,
      log: (l) => lines.push(`lb: ${l}`),
    });
    for (let i = 1; i <= 3; i++) {
      const [spec] = pieces.parse(
        conf(`${PREFIX}-v1-${i}`, serve('v1')).replace('198.51.100.1/24', `198.51.100.${170 + i}/24`),
        'v1.conf',
      );
      await pieces.service.create({
        spec: spec!,
        meta: [
          { op: 'set', key: 'app', value: PREFIX },
          { op: 'set', key: 'version', value: 'v1' },
          { op: 'set', key: 'port', value: String(PORT) },
        ],
      });
    }
    const r = await pieces.service.start([1, 2, 3].map((i) => `${PREFIX}-v1-${i}`));
    assert.ok(r.ok, JSON.stringify(r));
  });

  after(async () => {
    abort.abort();
    await controller;
    clearInterval(recorder);
    if (typeof pieces !== 'string') {
      const all = await pieces.service.list();
      if (all.length) await pieces.service.remove(all.map((j) => j.name));
      pieces.store.close();
    }
    await hp?.stop();
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(dir));
    assert.deepEqual(mounts, [], 'mounts left behind');
    rmSync(dir, { recursive: true, force: true });
    let netns: string[] = [];
    try {
      netns = readdirSync('/run/netns');
    } catch {
      // none at all
    }
    assert.deepEqual(
      netns.filter((n) => made.netns.has(n)),
      [],
      'network namespaces left behind',
    );
    assert.deepEqual(
      linksLeft((l) => made.links.has(l)),
      [],
      'veths left behind',
    );
    const stray = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d) && !before0.pids.includes(Number(d)))
      .filter((d) => {
        try {
          return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(PREFIX) && Number(d) !== process.pid;
        } catch {
          return false;
        }
      });
    assert.deepEqual(stray, [], 'processes left behind');
    assert.ok(made.netns.size >= 3, 'the jails ran in their own netns');
  });

  const servingNames = async () =>
    (await hp!.runtime.showServersState('www'))
      .filter((s) => s.opState === 2 && s.adminState === 0)
      .map((s) => s.name)
      .sort();

  test('v1 → v2, 3 replicas, under load: 0 failed requests, pool = the 3 v2 jails', async (t) => {
    if (typeof pieces === 'string') return t.skip(pieces);
    const p = pieces;
    const deadline = Date.now() + 20_000;
    while ((await servingNames()).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(
      await servingNames(),
      [1, 2, 3].map((i) => `jy-${PREFIX}-v1-${i}`),
    );
    const template = join(dir, 'www.conf');
    writeFileSync(template, conf(PREFIX, serve('v2')));
    const load = runLoad(`http://127.0.0.50:${fePort}/`, { concurrency: 4, maxMs: 120_000 });
    const stateFile = rolloutFileFor(dir, `app=${PREFIX}`);
    const state = newRolloutState({
      selector: `app=${PREFIX}`,
      from: 'version=v1',
      to: 'version=v2',
      replicas: 3,
      maxSurge: 1,
      maxUnavailable: 0,
      port: PORT,
      healthPath: '/',
      prefix: PREFIX,
      templateFile: template,
      addressRange: [180, 189],
    });
    try {
      await runRollout(state, {
        service: p.service,
        template: p.parse(conf(PREFIX, serve('v2')), template)[0]!,
        stateFile,
        lb: { adminSocket: hp!.adminSocket, backend: 'www' },
        healthTimeoutMs: 20_000,
        progress: (l) => lines.push(l),
      });
    } finally {
      const r = await load.stop();
      assert.equal(r.failed, 0, `${r.errors.join('\n')}\n${lines.join('\n')}`);
      assert.ok((r.versions.v2 ?? 0) > 0 && (r.versions.v1 ?? 0) > 0, JSON.stringify(r.versions));
    }
    assert.deepEqual(
      await servingNames(),
      [1, 2, 3].map((i) => `jy-${PREFIX}-v2-${i}`),
    );
    assert.deepEqual((await p.service.list({ selector: `app=${PREFIX},version=v1` })).length, 0);
    assert.equal(readRolloutState(stateFile)!.phase, 'done');
  });

  test('a v3 that never answers: rollout stops with JY_ERR_UNHEALTHY, removes it, v2 keeps serving', async (t) => {
    if (typeof pieces === 'string') return t.skip(pieces);
    const p = pieces;
    const load = runLoad(`http://127.0.0.50:${fePort}/`, { concurrency: 2, maxMs: 60_000 });
    const stateFile = rolloutFileFor(dir, `app=${PREFIX}-b`);
    const state = newRolloutState({
      selector: `app=${PREFIX}`,
      from: 'version=v2',
      to: 'version=v3',
      replicas: 3,
      maxSurge: 1,
      maxUnavailable: 0,
      port: PORT,
      healthPath: '/',
      prefix: PREFIX,
      addressRange: [180, 189],
    });
    await assert.rejects(
      runRollout(state, {
        service: p.service,
        template: p.parse(conf(PREFIX, 'sleep 0'), 't.conf')[0]!,
        stateFile,
        lb: { adminSocket: hp!.adminSocket, backend: 'www' },
        healthTimeoutMs: 3000,
      }),
      (e: unknown) => {
        assert.equal((e as { code?: string }).code, 'JY_ERR_UNHEALTHY');
        assert.equal((e as { place: { jail?: string } }).place.jail, `${PREFIX}-v3-1`);
        return true;
      },
    );
    const r = await load.stop();
    assert.equal(r.failed, 0, r.errors.join('\n'));
    assert.deepEqual(Object.keys(r.versions), ['v2']);
    assert.equal((await p.service.list({ selector: `app=${PREFIX},version=v3` })).length, 0);
    assert.equal(readRolloutState(stateFile)!.phase, 'failed');
    const deadline = Date.now() + 5000;
    while ((await servingNames()).length !== 3 && Date.now() < deadline) await new Promise((r2) => setTimeout(r2, 100));
    assert.deepEqual(
      await servingNames(),
      [1, 2, 3].map((i) => `jy-${PREFIX}-v2-${i}`),
    );
  });
});
