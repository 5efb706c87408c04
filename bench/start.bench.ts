// Starting a prepared jail (mounts already made) with the Linux driver vs bubblewrap with
// equivalent isolation (all namespaces incl. net, the same root, fresh /proc, minimal /dev,
// hostname), each running `true`; then create+start of 100 jails from nothing. The ratio is
// for a jail without addresses (a network namespace with only the loopback, like bwrap's);
// a jail with an address (netns + veth on the bridge) is measured beside it.
import { spawnSync } from 'node:child_process';
import { createLinuxDriver } from '../src/platform/linux/index.ts';
import { makeTestJail } from '../test/platform/linux/fixture.ts';
import { percentile, report, timeMs } from './lib.ts';

const N = 20;
const MANY = 100;
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
  }
} finally {
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
