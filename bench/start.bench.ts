// Starting a prepared jail (mounts already made) with the Linux driver vs bubblewrap with
// equivalent isolation (all namespaces incl. net, the same root, fresh /proc, minimal /dev,
// hostname), each running `true`; then create+start of 100 jails from nothing. The ratio is
// for a jail without addresses (a network namespace with only the loopback, like bwrap's);
// a jail with an address (netns + veth on the bridge) is measured beside it. crun
// (`crun run`: create, start, wait, delete) and lxc (`lxc-execute`) run `true` in a busybox
// root the bench builds as further baselines; then exec of `true` in a running jail vs
// `crun exec`, `lxc-attach` and `nsenter -a`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLinuxDriver } from '../src/platform/linux/index.ts';
import { makeTestJail } from '../test/platform/linux/fixture.ts';
import {
  busyboxRoot,
  crunBaseline,
  lxcBaseline,
  percentile,
  reexecWithoutUnifiedCgroup,
  report,
  timeMs,
} from './lib.ts';

if (reexecWithoutUnifiedCgroup()) process.exit();

const N = Number(process.env.JAILYARD_BENCH_RUNS ?? 20);
const MANY = Number(process.env.JAILYARD_BENCH_N ?? 100);
const driver = createLinuxDriver({ cgroupParent: 'jailyard-bench' });
await driver.preflight();

// The shared bridge is host infrastructure that lives as long as any jail is on it; an
// anchor jail's veth (it has an address) keeps it up, so every start below is measured in that steady state
// (without it each iteration would also create and delete the bridge: ~95 ms).
const anchor = makeTestJail('jybench-anchor', { 'ip4.addr': '198.51.100.249' });
const anchorNet = await driver.setupNetwork(anchor.ctx);

const jail = makeTestJail('jybench');
const mounts = await driver.mount(jail.ctx, jail.plan);
const withAddr = makeTestJail('jybench', { 'ip4.addr': '198.51.100.250' });
const withAddrMounts = await driver.mount(withAddr.ctx, withAddr.plan);
const ours: number[] = [];
const oursWithAddr: number[] = [];
const bwrap: number[] = [];
const crunRun: number[] = [];
const lxcExecute: number[] = [];
const execOurs: number[] = [];
const execCrun: number[] = [];
const execLxc: number[] = [];
const execNsenter: number[] = [];
const baseDir = mkdtempSync(join(tmpdir(), 'jy-bench-start-'));
const rootfs = busyboxRoot(baseDir);
const crun = crunBaseline(baseDir, rootfs);
const lxc = lxcBaseline(baseDir, rootfs);
const trueBundle = crun.bundle(['/bin/true']);
const sleepBundle = crun.bundle(['/bin/sleep', '1000000']);
/** Runs a baseline tool; a failure fails the bench. */
const must = (cmd: string, args: string[], detached = false) => {
  // a detached container keeps the stdio it was given: a pipe would never reach EOF
  const r = spawnSync(cmd, args, detached ? { stdio: 'ignore' } : {});
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
};
/** One start of a prepared jail: network, create, exec `true`, destroy, network teardown. */
const startCycle = (j: typeof jail) =>
  timeMs(async () => {
    const net = await driver.setupNetwork(j.ctx);
    const facts = await driver.create(j.ctx, net, {});
    const r = await driver.runInJail(j.ctx, facts, ['true']);
    if (r.code !== 0) throw new Error(r.stderr);
    await driver.destroy(j.ctx, facts, 1000);
    await driver.teardownNetwork(j.ctx, net);
  });
try {
  for (let i = 0; i < N; i++) {
    ours.push(await startCycle(jail));
    oursWithAddr.push(await startCycle(withAddr));
    bwrap.push(
      await timeMs(() => {
        const r = spawnSync('bwrap', [
          '--unshare-all',
          '--die-with-parent',
          '--bind',
          jail.plan.root,
          '/',
          '--proc',
          '/proc',
          '--dev',
          '/dev',
          '--hostname',
          'bench',
          'true',
        ]);
        if (r.status !== 0) throw new Error(String(r.stderr));
      }),
    );
    crunRun.push(await timeMs(() => must('crun', crun.argv('run', '--bundle', trueBundle, `jyb-run-${i}`))));
    lxcExecute.push(
      await timeMs(() => must('lxc-execute', lxc.argv(`jyb-x${i}`, '-f', lxc.config, '--', '/bin/true'))),
    );
  }

  // exec `true` in a running jail / container
  const net = await driver.setupNetwork(jail.ctx);
  const facts = await driver.create(jail.ctx, net, {});
  must('crun', crun.argv('run', '-d', '--bundle', sleepBundle, 'jyb-exec'), true);
  must('lxc-start', lxc.argv('jyb-exec', '-f', lxc.config, '-d'), true);
  const pid = spawnSync('crun', crun.argv('state', 'jyb-exec'), { encoding: 'utf8' }).stdout;
  const containerPid = String((JSON.parse(pid) as { pid: number }).pid);
  try {
    for (let i = 0; i < N; i++) {
      execOurs.push(
        await timeMs(async () => {
          const r = await driver.runInJail(jail.ctx, facts, ['true']);
          if (r.code !== 0) throw new Error(r.stderr);
        }),
      );
      execCrun.push(await timeMs(() => must('crun', crun.argv('exec', 'jyb-exec', '/bin/true'))));
      execLxc.push(await timeMs(() => must('lxc-attach', lxc.argv('jyb-exec', '--', '/bin/true'))));
      execNsenter.push(await timeMs(() => must('nsenter', ['-a', '-t', containerPid, '/bin/true'])));
    }
  } finally {
    await driver.destroy(jail.ctx, facts, 1000);
    await driver.teardownNetwork(jail.ctx, net);
  }
} finally {
  crun.cleanup();
  lxc.cleanup();
  rmSync(baseDir, { recursive: true, force: true });
  await driver.unmount(jail.ctx, mounts);
  jail.cleanup();
  await driver.unmount(withAddr.ctx, withAddrMounts);
  withAddr.cleanup();
}

// 100 jails: netns/veth + mounts + create each, then stop them all. No ip4.addr: other
// suites may hold addresses of the shared range while this runs (the check would refuse).
const many = Array.from({ length: MANY }, () => makeTestJail('jybench'));
const running: {
  j: (typeof many)[number];
  net: Awaited<ReturnType<typeof driver.setupNetwork>>;
  m: Awaited<ReturnType<typeof driver.mount>>;
  c: Awaited<ReturnType<typeof driver.create>>;
}[] = [];
let startMany = NaN;
try {
  startMany = await timeMs(async () => {
    for (const j of many) {
      const net = await driver.setupNetwork(j.ctx);
      const m = await driver.mount(j.ctx, j.plan);
      const c = await driver.create(j.ctx, net, { maxProcs: 64 });
      running.push({ j, net, m, c });
    }
  });
} catch (e) {
  console.error(e);
}
const stopMany = await timeMs(async () => {
  for (const { j, net, m, c } of running.reverse()) {
    await driver.destroy(j.ctx, c, 1000);
    await driver.unmount(j.ctx, m);
    await driver.teardownNetwork(j.ctx, net);
    j.cleanup();
  }
});

await driver.teardownNetwork(anchor.ctx, anchorNet);
anchor.cleanup();

const p50 = (s: number[]) => percentile(s, 50);
report({
  name: 'start-peers',
  ratioOf: 'jailyard start p50 / crun run true p50',
  ratio: p50(ours) / p50(crunRun),
  metrics: {
    jailyard_p50_ms: p50(ours),
    crun_run_p50_ms: p50(crunRun),
    lxc_execute_p50_ms: p50(lxcExecute),
    bwrap_p50_ms: p50(bwrap),
    jailyard_over_lxc_execute: p50(ours) / p50(lxcExecute),
  },
});
report({
  name: 'exec',
  ratioOf: 'jailyard exec true (driver runInJail) p50 / crun exec true p50',
  ratio: p50(execOurs) / p50(execCrun),
  target: '<= 3',
  metrics: {
    jailyard_p50_ms: p50(execOurs),
    jailyard_p90_ms: percentile(execOurs, 90),
    crun_exec_p50_ms: p50(execCrun),
    lxc_attach_p50_ms: p50(execLxc),
    nsenter_a_p50_ms: p50(execNsenter),
  },
});
report({
  name: 'start',
  ratioOf: 'jailyard start (netns+create+exec true+destroy) p50 / bwrap --unshare-all true p50',
  ratio: p50(ours) / p50(bwrap),
  target: '<= 2',
  metrics: {
    jailyard_p50_ms: p50(ours),
    jailyard_p90_ms: percentile(ours, 90),
    jailyard_with_address_p50_ms: p50(oursWithAddr),
    jailyard_with_address_p90_ms: percentile(oursWithAddr, 90),
    bwrap_p50_ms: p50(bwrap),
    bwrap_p90_ms: percentile(bwrap, 90),
    create_100_total_ms: startMany,
    stop_100_total_ms: stopMany,
    per_jail_create_ms: startMany / MANY,
  },
});
