// Thin jails vs full copies: per strategy, for N jails, the time to plan + seed one jail,
// its disk use (du of its state dir, apparent and allocated) and its mounts. Baseline: the
// `full` strategy (an independent copy) measured in the same run; ratio = nullfs / full disk.
// Skeleton: a Debian bookworm minbase tree (JAILYARD_BENCH_ROOT, else built once with
// debootstrap and cached in /var/tmp/jyskel-bench-bookworm), referenced in place; plus the
// host root "/" (the default skeleton) for nullfs. nullfs and basejail both with the config dirs
// copied at create and copy-on-write (skeleton.cow, Linux default etc var usr/local). Then, per thin strategy, create+start of
// 100 jails: create = plan + seed, start = the mount plan + the jail's namespaces and pid 1
// (Linux driver, no addresses), one at a time and 8 at a time (like `jailyard start -p 8`).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { report } from './lib.ts';
import { createSkeleton } from '../src/skeleton/registry.ts';
import { prepareJail, planJail } from '../src/skeleton/hooks.ts';
import { runDebootstrap } from '../src/platform/linux/debootstrap.ts';
import type { Strategy } from '../src/skeleton/plan.ts';
import { createLinuxDriver } from '../src/platform/linux/index.ts';
import type { CreateFacts, JailContext, MountFacts } from '../src/platform/driver.ts';

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

/** How the jail's config dirs are made (nullfs, basejail): copied at create, or
 * copy-on-write (the defaults file's skeleton.cow: etc, var, usr/local on Linux). */
type Etc = 'cow' | 'copy';
const etcParams = (etc: Etc): Record<string, string> => (etc === 'copy' ? { 'skeleton.cow': '' } : {});

interface Row {
  skeleton: string;
  strategy: Strategy;
  etc: Etc;
  jails: number;
  msPerJail: number;
  apparentBytes: number;
  allocatedBytes: number;
  mounts: number;
  symlinks: number;
}

async function measure(state: string, skeleton: string, strategy: Strategy, n: number, etc: Etc = 'cow'): Promise<Row> {
  let mounts = 0;
  let symlinks = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const rec = {
      name: `b-${skeleton}-${strategy}-${etc}-${i}`,
      params: { skeleton, 'skeleton.strategy': strategy, ...etcParams(etc) },
    };
    await prepareJail(state, rec);
    const plan = planJail(state, rec, join(state, 'jails', rec.name, 'root'));
    mounts = plan.mounts.length;
    symlinks = plan.symlinks.length;
  }
  const ms = (performance.now() - t0) / n;
  // du of one jail's whole state dir (writable part, rw sources, overlay dirs)
  const one = join(state, 'jails', `b-${skeleton}-${strategy}-${etc}-0`);
  return {
    skeleton,
    strategy,
    etc,
    jails: n,
    msPerJail: ms,
    apparentBytes: du(one, true),
    allocatedBytes: du(one, false),
    mounts,
    symlinks,
  };
}

const START_N = Number(process.env.JAILYARD_BENCH_START_N ?? 100);
const driver = createLinuxDriver({ cgroupParent: 'jailyard-bench' });

/** At most `n` of `items` at once. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

interface StartRow {
  skeleton: string;
  strategy: Strategy;
  etc: Etc;
  parallel: number;
  createMs: number;
  startMs: number;
  stopMs: number;
}

/** Create (plan + seed) and start (mounts + pid 1) START_N jails, `parallel` at a time; stop and remove them. */
async function createAndStart(
  state: string,
  skeleton: string,
  strategy: Strategy,
  parallel: number,
  etc: Etc = 'cow',
): Promise<StartRow> {
  const names = Array.from({ length: START_N }, (_, i) => `s-${skeleton}-${strategy}-${etc}-${parallel}-${i}`);
  const running: { ctx: JailContext; m: MountFacts; c?: CreateFacts }[] = [];
  const plans = new Map<string, ReturnType<typeof planJail>>();
  const t0 = performance.now();
  await pool(names, parallel, async (name) => {
    const rec = { name, params: { skeleton, 'skeleton.strategy': strategy, ...etcParams(etc) } };
    await prepareJail(state, rec);
    plans.set(name, planJail(state, rec, join(state, 'jails', name, 'root')));
  });
  const t1 = performance.now();
  let t2 = NaN;
  try {
    await pool(names, parallel, async (name) => {
      const i = names.indexOf(name);
      const plan = plans.get(name)!;
      const ctx: JailContext = {
        spec: { name, params: { name } },
        name,
        jid: 40000 + parallel * 1000 + i,
        path: plan.root,
        stateDir: join(state, 'jails', name),
      };
      const m = await driver.mount(ctx, plan);
      const entry: (typeof running)[number] = { ctx, m };
      running.push(entry);
      entry.c = await driver.create(ctx, { addresses: [] }, {});
    });
  } finally {
    t2 = performance.now();
    await pool(running, parallel, async ({ ctx, m, c }) => {
      if (c) await driver.destroy(ctx, c, 1000);
      await driver.unmount(ctx, m);
    });
  }
  const t3 = performance.now();
  for (const name of names) rmSync(join(state, 'jails', name), { recursive: true, force: true });
  return { skeleton, strategy, etc, parallel, createMs: t1 - t0, startMs: t2 - t1, stopMs: t3 - t2 };
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
  for (const s of ['nullfs', 'basejail'] as const)
    for (const etc of ['copy', 'cow'] as const) rows.push(await measure(state, 'deb', s, N, etc));
  rows.push(await measure(state, 'deb', 'overlay', N));
  for (const etc of ['copy', 'cow'] as const) rows.push(await measure(state, 'host', 'nullfs', N, etc));
  const full = await measure(state, 'deb', 'full', N_FULL);
  rows.push(full);

  const starts: StartRow[] = [];
  const startCases = [
    ['deb', 'nullfs', 'copy'],
    ['deb', 'nullfs', 'cow'],
    ['deb', 'basejail', 'cow'],
    ['deb', 'overlay', 'cow'],
    ['host', 'nullfs', 'copy'],
    ['host', 'nullfs', 'cow'],
    ['host', 'overlay', 'cow'],
  ] as const;
  for (const [skel, strategy, etc] of startCases) {
    for (const parallel of [1, 8]) starts.push(await createAndStart(state, skel, strategy, parallel, etc));
  }

  const kib = (b: number): string => (b / 1024).toFixed(0);
  const table = [
    '| skeleton | strategy | config dirs | jails | ms/jail (plan+seed) | disk/jail apparent KiB | disk/jail allocated KiB | mounts/jail | symlinks/jail |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.skeleton === 'deb' ? 'bookworm minbase' : 'host /'} | ${r.strategy} | ${r.strategy === 'nullfs' || r.strategy === 'basejail' ? r.etc : '—'} | ${r.jails} | ${r.msPerJail.toFixed(1)} | ${kib(r.apparentBytes)} | ${kib(r.allocatedBytes)} | ${r.mounts} | ${r.symlinks} |`,
    ),
  ].join('\n');
  console.log(table);
  const startTable = [
    `| skeleton | strategy | config dirs | jails | at once | create (plan + seed) ms | start (mounts + pid 1) ms | create + start ms | stop + unmount ms |`,
    '|---|---|---|---|---|---|---|---|---|',
    ...starts.map(
      (r) =>
        `| ${r.skeleton === 'deb' ? 'bookworm minbase' : 'host /'} | ${r.strategy} | ${r.strategy === 'nullfs' || r.strategy === 'basejail' ? r.etc : '—'} | ${START_N} | ${r.parallel} | ${r.createMs.toFixed(0)} | ${r.startMs.toFixed(0)} | ${(r.createMs + r.startMs).toFixed(0)} | ${r.stopMs.toFixed(0)} |`,
    ),
  ].join('\n');
  console.log(startTable);
  // the defaults: nullfs with copy-on-write config dirs
  const nullfs = rows.find((r) => r.skeleton === 'deb' && r.strategy === 'nullfs' && r.etc === 'cow')!;
  const metrics: Record<string, number | string> = {
    N,
    N_FULL,
    createDebSkeletonMs: createDebMs,
    createHostSkeletonMs: createHostMs,
  };
  for (const r of rows) {
    const k = `${r.skeleton}.${r.strategy}.${r.etc}`;
    metrics[`${k}.msPerJail`] = r.msPerJail;
    metrics[`${k}.apparentBytes`] = r.apparentBytes;
    metrics[`${k}.allocatedBytes`] = r.allocatedBytes;
    metrics[`${k}.mounts`] = r.mounts;
  }
  for (const r of starts) {
    const k = `${r.skeleton}.${r.strategy}.${r.etc}.p${r.parallel}`;
    metrics[`${k}.create${START_N}Ms`] = r.createMs;
    metrics[`${k}.start${START_N}Ms`] = r.startMs;
    metrics[`${k}.createStart${START_N}Ms`] = r.createMs + r.startMs;
  }
  report({
    name: 'skeleton',
    ratioOf: 'nullfs (copy-on-write config dirs) disk per jail (allocated) / full copy disk per jail (allocated)',
    ratio: nullfs.allocatedBytes / full.allocatedBytes,
    target: 'thin jail <= 1 MiB of disk',
    metrics,
  });
} finally {
  rmSync(state, { recursive: true, force: true });
}
