// 50 writer processes, 10,000 key writes on ONE jail in total: no update may be lost.
// Each writer w<i> cycles over its own 4 keys w<i>k0..3 writing increasing values 0..199.
// Every write is one event, so the event log replays the whole history: a lost update shows
// as a key that goes backwards or vanishes between two consecutive snapshots, or as a
// writer with fewer than 200 changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/sqlite.ts';
import { labelsOf } from '../../src/meta/labels.ts';
import { processesMentioning } from '../helpers/leaks.ts';

const WRITERS = 50;
const WRITES = 200;
const KEYS = 4;
const fixture = new URL('./fixtures/meta-writer.ts', import.meta.url).pathname;

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fixture, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

test(`${WRITERS} writer processes x ${WRITES} key writes on one jail: 0 lost`, { timeout: 180_000 }, async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'jy-conc-'));
  const dir = join(base, 'state');
  t.after(() => {
    rmSync(base, { recursive: true, force: true });
    // only processes can leak here (no mounts, links or namespaces are made); the global
    // assertNoLeaks() would also see other engineers' tests running at the same time
    assert.deepEqual(processesMentioning(base), [], 'writer processes left behind');
  });
  const store = openStore(dir);
  store.createJail({ name: 'shared', params: {} });
  const r0 = store.currentRevision();

  const t0 = performance.now();
  const results = await Promise.all(
    Array.from({ length: WRITERS }, (_, i) => run([dir, 'shared', String(i), String(WRITES), String(KEYS)])),
  );
  const seconds = (performance.now() - t0) / 1000;
  for (const r of results) assert.equal(r.code, 0, r.stderr.slice(0, 3000));

  // final state: every key holds the last value its writer wrote
  const final = labelsOf(store.requireJail('shared').meta, '');
  assert.equal(Object.keys(final).length, WRITERS * KEYS);
  for (let i = 0; i < WRITERS; i++) {
    for (let m = 0; m < KEYS; m++) assert.equal(final[`w${i}k${m}`], String(WRITES - KEYS + m), `w${i}k${m}`);
  }

  // the history: one event per write, each changing exactly one key forward
  const events = [];
  for (let since = r0; ; ) {
    const batch = store.eventsSince(since, 5000);
    if (!batch.length) break;
    events.push(...batch);
    since = batch[batch.length - 1]!.revision;
  }
  assert.equal(events.length, WRITERS * WRITES);
  const perWriter = new Array<number>(WRITERS).fill(0);
  let prev: Record<string, string> = {};
  for (const e of events) {
    const now = labelsOf(e.jail.meta, '');
    const changed = Object.keys(now).filter((k) => now[k] !== prev[k]);
    assert.equal(changed.length, 1, `revision ${e.revision} changed ${changed.join(',')}`);
    for (const k of Object.keys(prev)) {
      assert.ok(k in now, `revision ${e.revision} lost key ${k}`);
      assert.ok(Number(now[k]) >= Number(prev[k]), `revision ${e.revision}: ${k} went back`);
    }
    perWriter[Number(/^w(\d+)k/.exec(changed[0]!)![1])]!++;
    prev = now;
  }
  assert.deepEqual(perWriter, new Array<number>(WRITERS).fill(WRITES));
  store.close();
  console.log(
    `# ${WRITERS * WRITES} writes by ${WRITERS} processes in ${seconds.toFixed(2)} s (${Math.round((WRITERS * WRITES) / seconds)}/s incl. process start)`,
  );
});
