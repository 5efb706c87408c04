// Thin jails vs full copies: per strategy, for N jails, the time to plan + seed one jail,
// its disk use (du of its state dir, apparent and allocated) and its mounts. Baseline: the
// `full` strategy (an independent copy) measured in the same run; ratio = nullfs / full disk.
// Skeleton: a Debian bookworm minbase tree (JAILYARD_BENCH_ROOT, else built once with
// debootstrap and cached in /var/tmp/jyskel-bench-bookworm), referenced in place; plus the
// host root "/" (the default skeleton) for nullfs. Mounting is measured elsewhere.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { report } from './lib.ts';
import { createSkeleton } from '../src/skeleton/registry.ts';
import { prepareJail, planJail } from '../src/skeleton/hooks.ts';
import { runDebootstrap } from '../src/skeleton/debootstrap.ts';
import type { Strategy } from '../src/skeleton/plan.ts';

const N = Number(process.env.JAILYARD_BENCH_N ?? 100);
const N_FULL = Number(process.env.JAILYARD_BENCH_N_FULL ?? 5);

function du(path: string, apparent: boolean): number {
  const out = execFileSync('du', ['-s', '-B1', ...(apparent ? ['--apparent-size'] : []), path], { encoding: 'utf8' });
  return Number(out.split('\t')[0]);
}

async function debianTree(): Promise<string> {
  const given = process.env.JAILYARD_BENCH_ROOT;
  if (given) return given;
  const cached = '/var/tmp/jyskel-bench-bookworm';
  if (existsSync(join(cached, 'usr/bin/dpkg'))) return cached;
  rmSync(cached, { recursive: true, force: true });
  console.error(`building ${cached} with debootstrap (once)...`);
  await runDebootstrap({ suite: 'bookworm', target: cached, mirror: 'http://deb.debian.org/debian' });
  return cached;
}

interface Row {
  skeleton: string;
  strategy: Strategy;
  jails: number;
  msPerJail: number;
  apparentBytes: number;
  allocatedBytes: number;
  mounts: number;
  symlinks: number;
}

async function measure(state: string, skeleton: string, strategy: Strategy, n: number): Promise<Row> {
  let mounts = 0;
  let symlinks = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const rec = { name: `b-${skeleton}-${strategy}-${i}`, params: { skeleton, 'skeleton.strategy': strategy } };
    prepareJail(state, rec);
    const plan = planJail(state, rec, join(state, 'jails', rec.name, 'root'));
    mounts = plan.mounts.length;
    symlinks = plan.symlinks.length;
  }
  const ms = (performance.now() - t0) / n;
  // du of one jail's whole state dir (writable part, rw sources, overlay dirs)
  const one = join(state, 'jails', `b-${skeleton}-${strategy}-0`);
  return { skeleton, strategy, jails: n, msPerJail: ms, apparentBytes: du(one, true), allocatedBytes: du(one, false), mounts, symlinks };
}

const tree = await debianTree();
const state = mkdtempSync(join(tmpdir(), 'jyskel-bench-'));
try {
  const tc = performance.now();
  await createSkeleton(state, 'deb', { type: 'from', path: tree });
  const createDebMs = performance.now() - tc;
  const th = performance.now();
  await createSkeleton(state, 'host', { type: 'from', path: '/' });
  const createHostMs = performance.now() - th;

  const rows: Row[] = [];
  for (const s of ['nullfs', 'basejail', 'overlay'] as const) rows.push(await measure(state, 'deb', s, N));
  rows.push(await measure(state, 'host', 'nullfs', N));
  const full = await measure(state, 'deb', 'full', N_FULL);
  rows.push(full);

  const kib = (b: number): string => (b / 1024).toFixed(0);
  const table = [
    '| skeleton | strategy | jails | ms/jail (plan+seed) | disk/jail apparent KiB | disk/jail allocated KiB | mounts/jail | symlinks/jail |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.skeleton === 'deb' ? 'bookworm minbase' : 'host /'} | ${r.strategy} | ${r.jails} | ${r.msPerJail.toFixed(1)} | ${kib(r.apparentBytes)} | ${kib(r.allocatedBytes)} | ${r.mounts} | ${r.symlinks} |`),
  ].join('\n');
  console.log(table);
  const nullfs = rows[0]!;
  const metrics: Record<string, number | string> = { N, N_FULL, createDebSkeletonMs: createDebMs, createHostSkeletonMs: createHostMs };
  for (const r of rows) {
    const k = `${r.skeleton}.${r.strategy}`;
    metrics[`${k}.msPerJail`] = r.msPerJail;
    metrics[`${k}.apparentBytes`] = r.apparentBytes;
    metrics[`${k}.allocatedBytes`] = r.allocatedBytes;
    metrics[`${k}.mounts`] = r.mounts;
  }
  report({
    name: 'skeleton',
    ratioOf: 'nullfs disk per jail (allocated) / full copy disk per jail (allocated)',
    ratio: nullfs.allocatedBytes / full.allocatedBytes,
    target: 'thin jail <= 1 MiB of disk',
    metrics,
  });
} finally {
  rmSync(state, { recursive: true, force: true });
}
