// The daemon restarted (SIGKILL, then SIGTERM) while 100 watchers are connected, with events
// written while it is down (a CLI writing the store directly): every watcher resumes from its
// last revision and sees every event exactly once, in order; the load balancer's source
// (apiSource) ends with the same jails as the store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { openStore, type SqliteStore } from '../../src/store/sqlite.ts';
import { createRemoteService, watch, type WatchEvent } from '../../src/api/client.ts';
import { apiSource, type LbJail } from '../../src/lb/source.ts';

const BIN = join(import.meta.dirname, '../../bin/jailyard.js');
const WATCHERS = 100;
const LB_SOURCES = 5;
let dir: string;
let baseline: SystemSnapshot;
let store: SqliteStore;
let daemon: ChildProcess | undefined;
const url = () => `unix://${join(dir, 'jailyard.sock')}`;
const abort = new AbortController();

async function startDaemon(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [BIN, '--state', dir, 'serve', '--bookmark-interval', '1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await createRemoteService(url()).list();
      return child;
    } catch {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`daemon did not come up: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function stopDaemon(signal: NodeJS.Signals): Promise<void> {
  const d = daemon!;
  daemon = undefined;
  if (d.exitCode !== null || d.signalCode !== null) return;
  const gone = once(d, 'exit');
  process.kill(d.pid!, signal);
  await gone;
}

async function until(pred: () => boolean, what: () => string, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(() => {
  baseline = snapshot();
  dir = mkdtempSync(join(tmpdir(), 'jy-faults-watch-'));
  // the writer: what a CLI does, straight to the store, whether the daemon runs or not
  store = openStore(dir);
  for (let i = 1; i <= 5; i++)
    store.createJail({
      name: `w${i}`,
      params: { path: '/nonexistent' },
      meta: [{ op: 'set', key: 'app', value: 'w' }],
    });
});

after(async () => {
  abort.abort();
  if (daemon) await stopDaemon('SIGKILL');
  store.close();
  assertNoLeaks(baseline, dir);
  rmSync(dir, { recursive: true, force: true });
});

test(`daemon killed and restarted under ${WATCHERS} watchers: each resumes from its revision, none misses an event`, {
  timeout: 120_000,
}, async () => {
  daemon = await startDaemon();
  const since = store.currentRevision();
  const seen: number[][] = Array.from({ length: WATCHERS }, () => []);
  const errors: unknown[] = [];
  const watchers = seen.map(async (revs) => {
    try {
      for await (const e of watch(url(), { since, signal: abort.signal }) as AsyncIterable<WatchEvent>)
        revs.push(e.revision);
    } catch (e) {
      errors.push(e);
    }
  });
  // the load balancer's view: SYNC, then events applied to a map
  const lbViews: Map<string, LbJail>[] = Array.from({ length: LB_SOURCES }, () => new Map());
  const lbLogs: string[] = [];
  const sources = lbViews.map(async (view) => {
    for await (const e of apiSource(url(), { log: (l) => lbLogs.push(l) }).events('app=w', abort.signal)) {
      if (e.type === 'SYNC') {
        view.clear();
        for (const j of e.jails) view.set(j.name, j);
      } else if (e.type === 'DELETED') view.delete(e.jail.name);
      else view.set(e.jail.name, e.jail);
    }
  });

  let n = 0;
  const writeSome = (count: number) => {
    for (let i = 0; i < count; i++) {
      n++;
      const name = `w${(n % 5) + 1}`;
      if (n % 7 === 0) store.modifyJail(name, { meta: [{ op: 'set', key: 'app', value: n % 2 ? 'w' : 'other' }] });
      else store.modifyJail(name, { meta: [{ op: 'set', key: 'n', value: String(n) }] });
    }
    if (n % 3 === 0) {
      const extra = `x${n}`;
      store.createJail({
        name: extra,
        params: { path: '/nonexistent' },
        meta: [{ op: 'set', key: 'app', value: 'w' }],
      });
      store.removeJail(extra);
    }
  };
  const allAt = (rev: number) => () => seen.every((r) => r.at(-1) === rev);
  const lag = () =>
    `revisions: ${[...new Set(seen.map((r) => r.at(-1)))].join(',')}; errors: ${errors.map(String).join('; ')}`;

  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    writeSome(20);
    await until(allAt(store.currentRevision()), lag);
    await stopDaemon(signal);
    // written while the daemon is down
    writeSome(20);
    daemon = await startDaemon();
    writeSome(20);
    await until(allAt(store.currentRevision()), lag);
  }

  const expected = Array.from({ length: store.currentRevision() - since }, (_, i) => since + 1 + i);
  assert.deepEqual(errors, []);
  for (const [i, revs] of seen.entries())
    assert.deepEqual(revs, expected, `watcher ${i}: every revision once, in order`);
  // the lb sources converge on the store's jails matching app=w
  const want = store
    .listJails({ selector: 'app=w' })
    .map((j) => `${j.name}:${j.meta}`)
    .sort();
  const viewOf = (v: Map<string, LbJail>) =>
    [...v.values()]
      .map(
        (j) =>
          `${j.name}:${Object.entries(j.labels)
            .map(([k, val]) => `${k}=${val}`)
            .sort()
            .join('\n')}`,
      )
      .sort();
  const norm = (s: string) =>
    `${s.split(':')[0]}:${s
      .slice(s.indexOf(':') + 1)
      .split('\n')
      .filter(Boolean)
      .sort()
      .join('\n')}`;
  await until(
    () => lbViews.every((v) => JSON.stringify(viewOf(v)) === JSON.stringify(want.map(norm))),
    () => `lb views ${JSON.stringify(lbViews.map(viewOf))} want ${JSON.stringify(want.map(norm))}`,
  );
  assert.ok(n >= 120, `${n} writes`);
  abort.abort();
  await Promise.all([...watchers, ...sources]);
  await stopDaemon('SIGTERM');
  console.log(
    `# ${WATCHERS} watchers + ${LB_SOURCES} lb sources, 2 restarts (SIGKILL, SIGTERM), ${expected.length} events each, 0 missed`,
  );
});
