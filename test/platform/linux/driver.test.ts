// The Linux driver against the real kernel (root): namespaces, mounts, cgroups, veth/bridge.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readlinkSync, existsSync, readFileSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createLinuxDriver } from '../../../src/platform/linux/index.ts';
import type { CreateFacts, MountFacts, NetworkFacts } from '../../../src/platform/driver.ts';
import { isJailyardError } from '../../../src/errors.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../../helpers/leaks.ts';
import { makeTestJail, type TestJail } from './fixture.ts';

const PREFIX = 'jyldrv';
const driver = createLinuxDriver({ cgroupParent: `jailyard-${PREFIX}` });
const ADDR = '198.51.100.201';

describe('linux driver: one running jail', () => {
  let before0: SystemSnapshot;
  let jail: TestJail;
  let net: NetworkFacts | undefined;
  let mounts: MountFacts | undefined;
  let facts: CreateFacts | undefined;
  const inJail = (script: string, opts = {}) => driver.runInJail(jail.ctx, facts!, ['/bin/sh', '-c', script], opts);

  before(async () => {
    before0 = snapshot();
    jail = makeTestJail(PREFIX, { 'ip4.addr': [`${ADDR}/24`], 'host.hostname': 'inside.example' });
    net = await driver.setupNetwork(jail.ctx);
    mounts = await driver.mount(jail.ctx, jail.plan);
    facts = await driver.create(jail.ctx, net, { memoryBytes: 64 * 1024 * 1024, maxProcs: 32 });
  });

  after(async () => {
    if (facts) await driver.destroy(jail.ctx, facts, 1000);
    if (mounts) await driver.unmount(jail.ctx, mounts);
    if (net) await driver.teardownNetwork(jail.ctx, net);
    jail.cleanup();
    assertNoLeaks(before0, PREFIX);
  });

  test('pid 1 is tini and /proc shows only the jail', async () => {
    assert.ok(driver.isAlive(facts!));
    assert.equal(readFileSync(`/proc/${facts!.initPid}/comm`, 'utf8').trim(), 'tini');
    const r = await inJail('ps -eo pid=,comm=');
    assert.equal(r.code, 0, r.stderr);
    const procs = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/));
    assert.deepEqual(procs[0], ['1', 'tini']);
    assert.ok(procs.length <= 5, `only the jail's processes: ${r.stdout}`);
  });

  test('hostname, clean environment, cgroups joined, a cgroup namespace of its own', async () => {
    const r = await inJail(
      'hostname; echo "$JNAME $JID $PATH $FOO"; env | wc -l; readlink /proc/self/ns/cgroup; cat /proc/self/cgroup',
      {
        env: { FOO: 'bar' },
      },
    );
    const [host, vars, count, cgroupNs, ...groups] = r.stdout.trim().split('\n');
    assert.equal(host, 'inside.example');
    assert.equal(
      vars,
      `${jail.ctx.name} ${jail.ctx.jid} /run/jailyard/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bar`,
    );
    assert.ok(Number(count) < 15, 'no host environment leaks in');
    // the program run in the jail is in pid 1's cgroup namespace, which is not the host's and
    // is rooted at the jail's groups: every line reads "/", nothing of the host's layout (a
    // process outside the jail's groups would read a path going up: "/..")
    assert.equal(cgroupNs, readlinkSync(`/proc/${facts!.initPid}/ns/cgroup`));
    assert.notEqual(cgroupNs, readlinkSync('/proc/self/ns/cgroup'));
    assert.ok(
      groups.some((l) => /:pids:\/$/.test(l)),
      `pids cgroup line: ${groups.join(' ')}`,
    );
    assert.deepEqual(
      groups.filter((l) => !l.endsWith(':/')),
      [],
      'no host cgroup path',
    );
    // seen from the host, pid 1 sits in the jail's own groups
    const hostView = readFileSync(`/proc/${facts!.initPid}/cgroup`, 'utf8').split('\n');
    assert.ok(
      hostView.filter((l) => l.includes(`-${jail.ctx.jid}`)).length >= 2,
      `joined the jail's groups: ${hostView.join(' ')}`,
    );
  });

  test("exec never enters a process that is not the jail's pid 1 any more (a reused pid number)", async () => {
    const stale: CreateFacts = { ...facts!, nsIds: { ...facts!.nsIds, pid: readlinkSync('/proc/self/ns/pid') } };
    const r = await driver.runInJail(jail.ctx, stale, ['/bin/echo', 'ran']);
    assert.equal(r.code, 125);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /not the jail's pid 1 any more/);
  });

  test('root in the jail cannot mount, remount /usr rw (EPERM) nor write it (EROFS)', async () => {
    const m = await inJail('mount -t tmpfs x /tmp');
    assert.notEqual(m.code, 0);
    assert.match(m.stderr, /permission denied/i);
    const rw = await inJail('mount -o remount,rw /usr');
    assert.notEqual(rw.code, 0);
    assert.match(rw.stderr, /permission denied/i);
    const w = await inJail('touch /usr/jy-should-not-exist');
    assert.match(w.stderr, /Read-only file system/);
    assert.ok(!existsSync('/usr/jy-should-not-exist'));
  });

  test('the jail sees its own addresses only', async () => {
    const r = await inJail('ip -o addr show');
    assert.match(r.stdout, new RegExp(`inet ${ADDR.replaceAll('.', '\\.')}/24`));
    assert.doesNotMatch(r.stdout, /192\.0\.2\.|fd00::/);
    const route = await inJail('ip route show default');
    assert.equal(route.stdout.trim(), '', 'no default route out');
  });

  test('host reaches a server in the jail; the jail reaches the bridge address', async (t) => {
    // A server inside, started through runInJail (reparented to tini after the shell exits).
    await inJail(`python3 -m http.server --bind ${ADDR} 8080 >/dev/null 2>&1 &`);
    let body = '';
    for (let i = 0; i < 100 && !body; i++) {
      try {
        body = await (await fetch(`http://${ADDR}:8080/`)).text();
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.match(body, /Directory listing/);
    const server = createServer((_q, s) => s.end('hello from the host'));
    await new Promise<void>((r) => server.listen(0, '198.51.100.1', r));
    t.after(() => server.close());
    const port = (server.address() as { port: number }).port;
    const r = await inJail(`curl -s --max-time 5 http://198.51.100.1:${port}/`);
    assert.equal(r.stdout, 'hello from the host', r.stderr);
  });

  test('exec as a user resolved in the jail', async () => {
    const r = await driver.runInJail(jail.ctx, facts!, ['id', '-un'], { user: 'nobody' });
    assert.equal(r.stdout.trim(), 'nobody');
    // the jail's /etc/passwd is a symlink with an absolute target: resolved inside the jail
    // (through /proc/PID/root the kernel would have gone to the host's /etc)
    const etc = `${jail.plan.root}/etc`;
    writeFileSync(`${etc}/jy-passwd-alt`, 'jyalt:x:4242:4242::/:/bin/sh\n');
    renameSync(`${etc}/passwd`, `${etc}/passwd.orig`);
    symlinkSync('/etc/jy-passwd-alt', `${etc}/passwd`);
    try {
      const alt = await driver.runInJail(jail.ctx, facts!, ['id', '-u'], { user: 'jyalt' });
      assert.equal(alt.stdout.trim(), '4242', alt.stderr);
    } finally {
      unlinkSync(`${etc}/passwd`);
      renameSync(`${etc}/passwd.orig`, `${etc}/passwd`);
      unlinkSync(`${etc}/jy-passwd-alt`);
    }
    await assert.rejects(driver.runInJail(jail.ctx, facts!, ['id'], { user: 'jy-no-such-user' }), (e) => {
      assert.ok(isJailyardError(e));
      assert.equal(e.code, 'JY_ERR_USAGE');
      assert.equal(e.place.jail, jail.ctx.name);
      return true;
    });
  });

  test('pids limit bounds a fork bomb', async () => {
    const r = await inJail(
      'for i in $(seq 1 60); do sleep 3 & done 2>/dev/null; ps -e --no-headers | wc -l; kill $(jobs -p) 2>/dev/null; true',
    );
    const n = Number(r.stdout.trim().split('\n').pop());
    assert.ok(n <= 32, `at most pids.max processes: ${n}`);
  });

  test('memory limit: OOM kills inside the jail only', async () => {
    const r = await inJail(`python3 -c "x = bytearray(200 * 1024 * 1024); print('allocated')"`);
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stdout, /allocated/);
    assert.ok(driver.isAlive(facts!), 'the jail survives the OOM kill');
  });

  test('timeoutMs kills the command', async () => {
    const r = await inJail('sleep 30', { timeoutMs: 200 });
    assert.notEqual(r.code, 0);
  });

  test('modify changes the hostname in place', async () => {
    await driver.modify(jail.ctx, facts!, { hostname: 'renamed.example', limits: { maxProcs: 40 } });
    assert.equal((await inJail('hostname')).stdout.trim(), 'renamed.example');
    assert.equal(readFileSync(`${facts!.cgroups.find((d) => d.includes('/pids/'))}/pids.max`, 'utf8').trim(), '40');
  });
});

describe('linux driver: stop, survival, failures', () => {
  let before0: SystemSnapshot;
  before(() => {
    before0 = snapshot();
  });
  after(async () => {
    await driver.removeBridgeIfUnused();
    // Allow the bridge to have existed before us (other suites share it).
    const now = snapshot();
    before0.links.push(...now.links.filter((l) => l === 'jy0'));
    assertNoLeaks(before0, PREFIX);
  });

  test('destroy SIGKILLs a process that ignores SIGTERM after the timeout', async (t) => {
    const jail = makeTestJail(PREFIX);
    const net = await driver.setupNetwork(jail.ctx);
    const mounts = await driver.mount(jail.ctx, jail.plan);
    const facts = await driver.create(jail.ctx, net, {});
    t.after(async () => {
      if (driver.isAlive(facts)) await driver.destroy(jail.ctx, facts, 0);
      await driver.unmount(jail.ctx, mounts);
      await driver.teardownNetwork(jail.ctx, net);
      jail.cleanup();
    });
    await driver.runInJail(jail.ctx, facts, [
      '/bin/sh',
      '-c',
      `trap '' TERM; (trap '' TERM; while :; do sleep 0.05; done) >/dev/null 2>&1 &`,
    ]);
    const t0 = Date.now();
    await driver.destroy(jail.ctx, facts, 400);
    assert.ok(Date.now() - t0 >= 400, 'waited the stop timeout');
    assert.equal(driver.isAlive(facts), false);
  });

  for (const [how, env] of [
    ['jy-spawner', {}],
    ["node's spawn (JAILYARD_SPAWNER=0)", { JAILYARD_SPAWNER: '0' }],
  ] as const) {
    test(`a jail survives the process that created it (programs started by ${how}); no /dev in the plan: the stage makes one; no address: only the loopback`, async (t) => {
      const jail = makeTestJail(PREFIX, {}, false);
      const net = await driver.setupNetwork(jail.ctx);
      assert.equal(net.netns, undefined, 'no named netns for a jail without addresses');
      assert.equal(net.veth, undefined, 'no veth for a jail without addresses');
      const mounts = await driver.mount(jail.ctx, jail.plan);
      let facts: CreateFacts | undefined;
      t.after(async () => {
        if (facts) await driver.destroy(jail.ctx, facts, 1000);
        await driver.unmount(jail.ctx, mounts);
        await driver.teardownNetwork(jail.ctx, net);
        jail.cleanup();
      });
      const script = `import { createLinuxDriver } from ${JSON.stringify(new URL('../../../src/platform/linux/index.ts', import.meta.url).pathname)};
        const f = await createLinuxDriver({ cgroupParent: 'jailyard-${PREFIX}' }).create(${JSON.stringify(jail.ctx)}, ${JSON.stringify(net)}, {});
        console.log(JSON.stringify(f));`;
      const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        encoding: 'utf8',
        timeout: 20000,
        env: { ...process.env, ...env },
      });
      assert.equal(out.status, 0, out.stderr);
      facts = JSON.parse(out.stdout) as CreateFacts;
      assert.ok(driver.isAlive(facts), 'pid 1 alive after its creator exited');
      const r = await driver.runInJail(jail.ctx, facts, ['/bin/sh', '-c', 'echo hi > /dev/null && ls /dev']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /urandom/);
      const links = await driver.runInJail(jail.ctx, facts, ['ip', '-o', 'link', 'show']);
      assert.equal(links.code, 0, links.stderr);
      const names = links.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(': ')[1]);
      assert.deepEqual(names, ['lo'], `only the loopback: ${links.stdout}`);
      assert.match(links.stdout, /<LOOPBACK,UP,LOWER_UP>/);
      assert.notEqual(
        readlinkSync(`/proc/${facts.initPid}/ns/net`),
        readlinkSync('/proc/self/ns/net'),
        'a network namespace of its own',
      );
    });
  }

  test('a failing mount undoes the earlier mounts and names source and target', async () => {
    const jail = makeTestJail(PREFIX);
    jail.plan.mounts.push({
      kind: 'bind',
      source: '/nonexistent-jy-source',
      target: `${jail.plan.root}/mnt`,
      readonly: true,
      origin: 'fstab',
    });
    // only this jail's folder: other tests on the host mount and unmount meanwhile
    const mine = () => snapshot().mounts.filter((m) => m.startsWith(jail.plan.root));
    assert.deepEqual(mine(), []);
    await assert.rejects(driver.mount(jail.ctx, jail.plan), (e) => {
      assert.ok(isJailyardError(e));
      assert.equal(e.code, 'JY_ERR_MOUNT');
      assert.equal(e.place.jail, jail.ctx.name);
      assert.match(e.message, /nonexistent-jy-source/);
      return true;
    });
    assert.deepEqual(mine(), [], 'the mounts made before the failing one are undone');
    assert.ok(!existsSync(`${jail.plan.root}/usr`), 'made directories removed');
    jail.cleanup();
  });

  test('unmount detaches a busy mount lazily and goes on with the rest, newest first', async (t) => {
    const jail = makeTestJail(PREFIX);
    jail.plan.mounts.push({ kind: 'tmpfs', target: `${jail.plan.root}/mnt`, options: [], origin: 'mount' });
    const mountsBefore = snapshot().mounts;
    const facts = await driver.mount(jail.ctx, jail.plan);
    // a host process working inside the tmpfs keeps it busy
    const busy = spawn('sleep', ['30'], { cwd: `${jail.plan.root}/mnt`, stdio: 'ignore' });
    t.after(async () => {
      busy.kill('SIGKILL');
      await new Promise((r) => busy.once('exit', r));
      jail.cleanup();
    });
    await driver.unmount(jail.ctx, facts);
    // only this jail's folder: other tests on the host mount and unmount meanwhile
    assert.deepEqual(
      snapshot().mounts.filter((m) => !mountsBefore.includes(m) && m.startsWith(jail.plan.root)),
      [],
      'every mount gone from the table',
    );
    assert.equal(busy.exitCode, null, 'the busy process was left alone');
  });

  test('a mount failing in the middle of a batch undoes exactly the mounts made before it', async () => {
    const jail = makeTestJail(PREFIX);
    // the kernel refuses this option: jy-mount has already made the root, /usr and /dev
    jail.plan.mounts.push({
      kind: 'tmpfs',
      target: `${jail.plan.root}/mnt`,
      options: ['size=not-a-size'],
      origin: 'mount',
    });
    // only this jail's folder: other tests on the host mount and unmount meanwhile
    const mine = () => snapshot().mounts.filter((m) => m.startsWith(jail.plan.root));
    assert.deepEqual(mine(), []);
    await assert.rejects(driver.mount(jail.ctx, jail.plan), (e) => {
      assert.ok(isJailyardError(e));
      assert.equal(e.code, 'JY_ERR_MOUNT');
      assert.match(e.message, /tmpfs on .*\/mnt/);
      assert.match(String(e.place.output), /Invalid argument/);
      return true;
    });
    assert.deepEqual(mine(), [], 'the mounts made before the failing one are undone');
    assert.ok(!existsSync(`${jail.plan.root}/usr`) && !existsSync(`${jail.plan.root}/mnt`), 'made directories removed');
    jail.cleanup();
  });

  test('a symlink in the jail cannot redirect a host-side mount outside the root', async () => {
    const jail = makeTestJail(PREFIX);
    execFileSync('ln', ['-s', '/etc', `${jail.plan.root}/escape`]);
    jail.plan.mounts = [{ kind: 'tmpfs', target: `${jail.plan.root}/escape/jy-target`, options: [], origin: 'mount' }];
    const facts = await driver.mount(jail.ctx, jail.plan);
    try {
      // /escape -> /etc is read as <root>/etc, never the host's /etc.
      assert.equal(facts.mounted[1], `${jail.plan.root}/etc/jy-target`);
      assert.ok(!existsSync('/etc/jy-target'));
    } finally {
      await driver.unmount(jail.ctx, facts);
      jail.cleanup();
    }
    const outside = makeTestJail(PREFIX);
    outside.plan.mounts = [{ kind: 'tmpfs', target: '/tmp/jy-outside', options: [], origin: 'mount' }];
    await assert.rejects(driver.mount(outside.ctx, outside.plan), { code: 'JY_ERR_PATH' });
    outside.cleanup();
  });

  test('reserved addresses and addresses used elsewhere are refused', async (t) => {
    const a = makeTestJail(PREFIX, { 'ip4.addr': '127.0.0.5' });
    await assert.rejects(driver.setupNetwork(a.ctx), (e) => {
      assert.ok(isJailyardError(e));
      assert.equal(e.code, 'JY_ERR_ADDRESS');
      assert.equal(e.place.param, 'ip4.addr');
      assert.equal(e.place.jail, a.ctx.name);
      assert.match(e.message, /127\.0\.0\.5 is a loopback address/);
      return true;
    });
    a.cleanup();
    const b = makeTestJail(PREFIX, { 'ip4.addr': 'em0|198.51.100.202/24' });
    // a vnet jail never shares an address (one without vnet would join b's netns)
    const c = makeTestJail(PREFIX, { 'ip4.addr': '198.51.100.202', vnet: 'new' });
    const netB = await driver.setupNetwork(b.ctx);
    try {
      assert.deepEqual(netB.addresses, ['198.51.100.202/24']);
      // the holder is named: its jail and state folder when it has a claim, and its netns
      await assert.rejects(
        driver.setupNetwork(c.ctx),
        /already used by jail "[^"]+" of the state folder .*\(netns jy-/,
      );
    } finally {
      await driver.teardownNetwork(b.ctx, netB);
    }
    // given up: the address is free again
    const netC = await driver.setupNetwork(c.ctx);
    await driver.teardownNetwork(c.ctx, netC);
    b.cleanup();
    c.cleanup();
    // a jail netns without a claim (an older jailyard made it) is read from the kernel
    const legacy = 'jy-ffff-1';
    execFileSync('ip', ['netns', 'add', legacy]);
    t.after(() => execFileSync('ip', ['netns', 'del', legacy]));
    execFileSync('ip', ['-n', legacy, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
    execFileSync('ip', ['-n', legacy, 'addr', 'add', '198.51.100.214/24', 'dev', 'd0']);
    const d = makeTestJail(PREFIX, { 'ip4.addr': '198.51.100.214' });
    const attempt = driver.setupNetwork(d.ctx);
    await assert.rejects(attempt, new RegExp(`198\\.51\\.100\\.214 is already used by netns ${legacy}`));
    await attempt.then(
      (n) => driver.teardownNetwork(d.ctx, n),
      () => {},
    );
    d.cleanup();
  });

  test('IPv6: a jail address in the IPv6 range reaches the bridge gateway; a link-local one is refused', async (t) => {
    const out = makeTestJail(PREFIX, { 'ip6.addr': 'fe80::5' });
    await assert.rejects(driver.setupNetwork(out.ctx), /fe80::5 is a link-local address/);
    out.cleanup();
    const jail = makeTestJail(PREFIX, { 'ip6.addr': '2001:db8:4a59::21' });
    const net = await driver.setupNetwork(jail.ctx);
    const mounts = await driver.mount(jail.ctx, jail.plan);
    let facts: CreateFacts | undefined;
    const server = createServer((_q, s) => s.end('hello over IPv6'));
    t.after(async () => {
      server.close();
      if (facts) await driver.destroy(jail.ctx, facts, 1000);
      await driver.unmount(jail.ctx, mounts);
      await driver.teardownNetwork(jail.ctx, net);
      jail.cleanup();
    });
    facts = await driver.create(jail.ctx, net, {});
    await new Promise<void>((r) => server.listen(0, '2001:db8:4a59::1', r));
    const port = (server.address() as { port: number }).port;
    const r = await driver.runInJail(jail.ctx, facts, [
      'curl',
      '-s',
      '--max-time',
      '5',
      `http://[2001:db8:4a59::1]:${port}/`,
    ]);
    assert.equal(r.stdout, 'hello over IPv6', r.stderr);
  });

  test('the same jid started again at once takes the spare veth name while the old veth is going', async (t) => {
    const jail = makeTestJail(PREFIX, { 'ip4.addr': '198.51.100.215' });
    const first = await driver.setupNetwork(jail.ctx);
    await driver.teardownNetwork(jail.ctx, first);
    const oldStillThere = existsSync(`/sys/class/net/${first.veth!.host}`);
    const second = await driver.setupNetwork(jail.ctx);
    t.after(async () => {
      await driver.teardownNetwork(jail.ctx, second);
      jail.cleanup();
    });
    assert.equal(second.veth!.host, oldStillThere ? `${first.veth!.host}x` : first.veth!.host);
    assert.ok(existsSync(`/sys/class/net/${second.veth!.host}`));
  });

  test('removeLeftover takes every mount stacked at one place and below it (overlay root on a bound root)', async () => {
    const jail = makeTestJail(PREFIX);
    const root = jail.plan.root;
    const before = snapshot().mounts;
    execFileSync('mount', ['--bind', root, root]);
    execFileSync('mount', ['-t', 'tmpfs', 'jy-stacked', root]);
    execFileSync('mkdir', ['-p', `${root}/sub`]);
    execFileSync('mount', ['-t', 'tmpfs', 'jy-sub', `${root}/sub`]);
    await driver.removeLeftover('mounts', root);
    assert.deepEqual(
      snapshot().mounts.filter((m) => !before.includes(m)),
      [],
    );
    jail.cleanup();
  });

  test('scanLeftovers finds a leaked netns, link and cgroup; removeLeftover removes them', async () => {
    const jail = makeTestJail(PREFIX, { 'ip4.addr': '198.51.100.213' });
    const net = await driver.setupNetwork(jail.ctx);
    const found = await driver.scanLeftovers();
    assert.ok(found.netns.includes(net.netns!));
    assert.ok(found.links.includes(net.veth!.host));
    await driver.removeLeftover('links', net.veth!.host);
    await driver.removeLeftover('netns', net.netns!);
    const again = await driver.scanLeftovers();
    assert.ok(!again.netns.includes(net.netns!));
    jail.cleanup();
  });
});
