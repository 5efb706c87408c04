// Metadata at scale:
// 1. selector queries over 10,000 jails x 16 labels: the store's listJails (revision-keyed
//    label cache; and the labels-table prefilter without cache) against a full scan (read
//    every row, parse its labels, match). Target p50 <= 10 ms.
// 2. durable writes/s: modifyJail (one key write, one event, one transaction) with
//    synchronous=NORMAL in WAL against synchronous=FULL. Target >= 5,000/s.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../src/store/sqlite.ts';
import { labelsOf } from '../src/meta/labels.ts';
import { parseSelector } from '../src/meta/selector.ts';
import type { MetaOp } from '../src/meta/ops.ts';
import { percentile, report } from './lib.ts';

const JAILS = Number(process.env.JAILS ?? 10_000);
const QUERY_ROUNDS = Number(process.env.ROUNDS ?? 30);
const WRITES = Number(process.env.WRITES ?? 3000);

const TIERS = ['web', 'db', 'cache', 'lb'];
const ENVS = ['prod', 'staging', 'dev'];

function labelOps(i: number): MetaOp[] {
  const l: Record<string, string> = {
    app: `app${i % 50}`,
    tier: TIERS[i % 4]!,
    env: ENVS[i % 3]!,
    zone: `z${i % 8}`,
    version: `v${i % 5}`,
    owner: `team${i % 12}`,
  };
  if (i % 97 === 0) l.canary = 'true';
  for (let k = Object.keys(l).length; k < 16; k++) l[`l${k}`] = `x${(i * 7 + k) % 100}`;
  return Object.entries(l).map(([key, value]) => ({ op: 'set', key, value }));
}

const SELECTORS = [
  'app=app7',
  'tier in (web,db),env!=prod',
  'app=app3,version in (v1,v2),!canary',
  'canary',
  'zone notin (z1,z2,z3),owner=team4',
];

const base = mkdtempSync(join(tmpdir(), 'jy-bench-meta-'));
try {
  // ---------------------------------------------------------------- selector queries
  const dir = join(base, 'q');
  const store = openStore(dir);
  const t0 = performance.now();
  for (let i = 0; i < JAILS; i++) {
    store.createJail({
      name: `j${String(i).padStart(5, '0')}`,
      params: { path: `/jails/j${i}`, persist: true },
      meta: labelOps(i),
    });
  }
  const populateS = (performance.now() - t0) / 1000;

  const plain = openStore(dir, { cache: false });
  const sample = (fn: (sel: string) => number): { p50: number; p95: number; hits: number } => {
    const times: number[] = [];
    let hits = 0;
    for (let r = 0; r < QUERY_ROUNDS; r++) {
      for (const sel of SELECTORS) {
        const t = performance.now();
        hits += fn(sel);
        times.push(performance.now() - t);
      }
    }
    return { p50: percentile(times, 50), p95: percentile(times, 95), hits };
  };
  // baseline: every row read and parsed, every jail's labels parsed and matched
  const baseline = sample((sel) => {
    const s = parseSelector(sel);
    return plain.listJails().filter((j) => s.matches(labelsOf(j.meta, j.env))).length;
  });
  const indexed = sample((sel) => plain.listJails({ selector: sel }).length);
  store.listJails(); // warm the cache
  const cached = sample((sel) => store.listJails({ selector: sel }).length);
  if (baseline.hits !== indexed.hits || baseline.hits !== cached.hits)
    throw new Error(`result mismatch ${baseline.hits} ${indexed.hits} ${cached.hits}`);
  // a query right after another process's write: the cache pulls only the changed jail
  const afterWrite = sample((sel) => {
    plain.modifyJail('j00001', { meta: [{ op: 'set', key: 'l15', value: String(Math.random()) }] });
    return store.listJails({ selector: sel }).length;
  });
  plain.close();
  store.close();

  report({
    name: 'meta-selector',
    ratioOf: 'listJails(selector) p50 with cache / full scan p50',
    ratio: cached.p50 / baseline.p50,
    target: 'p50 <= 10 ms over 10,000 jails x 16 labels',
    metrics: {
      jails: JAILS,
      labels_per_jail: 16,
      populate_s: populateS,
      baseline_scan_p50_ms: baseline.p50,
      baseline_scan_p95_ms: baseline.p95,
      indexed_p50_ms: indexed.p50,
      indexed_p95_ms: indexed.p95,
      cached_p50_ms: cached.p50,
      cached_p95_ms: cached.p95,
      cached_after_foreign_write_p50_ms: afterWrite.p50,
      indexed_over_baseline: indexed.p50 / baseline.p50,
      matches_per_round: baseline.hits / QUERY_ROUNDS,
    },
  });

  // ---------------------------------------------------------------- durable writes
  const writesPerSecond = (synchronous: 'NORMAL' | 'FULL'): number => {
    const s = openStore(join(base, `w-${synchronous}`), { synchronous });
    for (let i = 0; i < 16; i++) s.createJail({ name: `w${i}`, params: { persist: true }, meta: labelOps(i) });
    const t = performance.now();
    for (let n = 0; n < WRITES; n++) {
      s.modifyJail(`w${n % 16}`, { meta: [{ op: 'set', key: `l${6 + (n % 10)}`, value: String(n) }] });
    }
    const perS = WRITES / ((performance.now() - t) / 1000);
    s.close();
    return perS;
  };
  const full = writesPerSecond('FULL');
  const normal = writesPerSecond('NORMAL');
  report({
    name: 'meta-writes',
    ratioOf: 'modifyJail writes/s synchronous=NORMAL (WAL) / synchronous=FULL',
    ratio: normal / full,
    target: '>= 5,000 writes/s',
    metrics: { writes: WRITES, normal_per_s: normal, full_per_s: full },
  });
} finally {
  rmSync(base, { recursive: true, force: true });
}
