// Published ports (`expose`, docs/cli.md#ports), for real: a jail serving TCP and UDP is
// reached through host ports from the host itself (127.0.0.1, the bridge's address, the
// host's own address) and from two other network namespaces this test makes (one on the
// jail bridge, one routed through a veth of the host); a netns on the bridge cannot use
// route_localnet to reach the host's loopback; two jails never publish one host port (in
// one state folder or two); reconcile restores a flushed table and removes what a killed
// start or stop left; `jailyard ports` locally and through the daemon. Nothing is left:
// jails' objects, the nft tables, the test's namespaces and links.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { stateTag } from '../../src/platform/linux/paths.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { binArgs, cliFor, runBin } from '../helpers/cli.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';

const A1 = '198.51.100.174';
const A2 = '198.51.100.175';
const A3 = '198.51.100.176';
const CLIENT = '198.51.100.177';
const A4 = '198.51.100.178';
// host ports of this run (below the ephemeral range, apart from other runs)
const P = 20000 + (process.pid % 2400) * 5;
const NS = `jyt-ports-${process.pid}`;
const NSX = `jyt-portx-${process.pid}`;
const VB = `jytpb${process.pid % 100000}`;
const VX = `jytpx${process.pid % 100000}`;
// the routed namespace's /30 in TEST-NET-3, apart from other runs: host .1, client .2
const NET = 4 * (process.pid % 64);
const UPLINK = `203.0.113.${NET + 1}`;
const OUTSIDE = `203.0.113.${NET + 2}`;

let state: string;
let state2: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);
const jy2 = cliFor(() => state2);
const table = (s: string) => `jy-${stateTag(`${s}/jails/x`)}-ports`;

async function ok(run: typeof jy, ...args: string[]): Promise<string> {
  const r = await run(...args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });
const quiet = (cmd: string, ...args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' });

/** The host ports in a table's map, as "tcp 20000 -> 198.51.100.174:7000"; undefined: no table. */
function tableElements(t: string): string[] | undefined {
  const r = quiet('nft', '-j', 'list', 'map', 'ip', t, 'published');
  if (r.status !== 0) return undefined;
  type El = [{ concat?: [string, number]; elem?: { val: { concat: [string, number] } } }, { concat: [string, number] }];
  const map = (JSON.parse(r.stdout).nftables as { map?: { elem?: El[] } }[]).find((i) => i.map)?.map;
  return (map?.elem ?? [])
    .map(([k, v]) => {
      const key = k.concat ?? k.elem!.val.concat;
      return `${key[0]} ${key[1]} -> ${v.concat[0]}:${v.concat[1]}`;
    })
    .sort();
}

function stateOf(name: string): string | undefined {
  const store = openStore(state);
  try {
    return store.getJail(name)?.state;
  } finally {
    store.close();
  }
}

function bridgeOf(name: string): string {
  const store = openStore(state);
  try {
    const b = store.getJail(name)?.runtime?.network?.bridge;
    assert.ok(b, `${name} has a bridge`);
    return b;
  } finally {
    store.close();
  }
}

/** A TCP server on 7000 ("tcp-hello") and a UDP echo on 5353 ("TAG:DATA") in the jail. */
const SERVERS = (tag = 'udp') => `python3 -c '
import socket, os
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("0.0.0.0", 7000)); t.listen(16)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5353))
print("LISTENING", flush=True)
if os.fork() == 0:
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2): os.dup2(null, fd)
    if os.fork() == 0:
        while True:
            d, a = u.recvfrom(512); u.sendto(b"${tag}:" + d, a)
    while True:
        c, _ = t.accept(); c.sendall(b"tcp-hello\\n"); c.close()
' </dev/null`;

/** A client run inside a netns: "TCP <line>" and "UDP <reply>" or the error of each. */
const CLIENT_PY = `
import socket, sys
h, p = sys.argv[1], int(sys.argv[2])
try:
    s = socket.create_connection((h, p), timeout=3); print("TCP", s.recv(100).decode().strip())
except Exception as e: print("TCP ERR", e)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3)
try:
    u.sendto(b"ping", (h, p + 1)); print("UDP", u.recvfrom(100)[0].decode())
except Exception as e: print("UDP ERR", e)
`;
const fromNetns = (ns: string, host: string, port: number) =>
  execFileSync('ip', ['netns', 'exec', ns, 'python3', '-c', CLIENT_PY, host, String(port)], { encoding: 'utf8' });

function tcpLine(host: string, port: number, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, timeout: timeoutMs });
    let data = '';
    s.on('data', (d) => (data += d.toString()));
    s.on('end', () => resolve(data.trim()));
    s.on('timeout', () => s.destroy(new Error(`timeout connecting to ${host}:${port}`)));
    s.on('error', reject);
  });
}

function udpAsk(host: string, port: number, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const u = createSocket('udp4');
    const timer = setTimeout(() => {
      u.close();
      reject(new Error(`no UDP answer from ${host}:${port}`));
    }, timeoutMs);
    u.on('message', (m) => {
      clearTimeout(timer);
      u.close();
      resolve(m.toString());
    });
    u.send('ping', port, host);
  });
}

/** One IPv4 address of the host outside loopback, the jail range and this test's links. */
function hostAddress(): string | undefined {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (name.startsWith('jy') || name === 'lo') continue;
    for (const a of addrs ?? [])
      if (
        a.family === 'IPv4' &&
        !a.internal &&
        !a.address.startsWith('198.51.100.') &&
        !a.address.startsWith('203.0.113.')
      )
        return a.address;
  }
  return undefined;
}

function cleanupNetns(): void {
  for (const ns of [NS, NSX]) if (existsSync(`/run/netns/${ns}`)) quiet('ip', 'netns', 'del', ns);
  for (const l of [VB, VX]) if (existsSync(`/sys/class/net/${l}`)) quiet('ip', 'link', 'del', l);
}

describe('published ports (expose), for real', { timeout: 300_000 }, () => {
  before(() => {
    baseline = snapshot();
    state = mkdtempSync(join(tmpdir(), 'jy-ports-'));
    state2 = mkdtempSync(join(tmpdir(), 'jy-ports2-'));
  });
  after(async () => {
    for (const j of ['pt1', 'pt2', 'pt3']) await jy('remove', j);
    await jy2('remove', 'pq1');
    cleanupNetns();
    try {
      assertNoLeaks(baseline, state);
      assertNoLeaks(baseline, state2);
      assert.equal(tableElements(table(state)), undefined, 'no nft table of the state folder left');
      assert.equal(tableElements(table(state2)), undefined, 'no nft table of the second state folder left');
      for (const l of [VB, VX]) assert.ok(!existsSync(`/sys/class/net/${l}`), `${l} removed`);
      for (const ns of [NS, NSX]) assert.ok(!existsSync(`/run/netns/${ns}`), `${ns} removed`);
    } finally {
      rmSync(state, { recursive: true, force: true });
      rmSync(state2, { recursive: true, force: true });
    }
  });

  test('TCP and UDP reach the jail from the host and from two other namespaces', async () => {
    await ok(
      jy,
      'create',
      'pt1',
      'persist',
      `ip4.addr=${A1}`,
      `expose=tcp:${P}:7000,udp:${P + 1}:5353`,
      'meta.app=pub',
    );
    await ok(jy, 'start', 'pt1');
    const served = runBin(state, ['exec', 'pt1', '/bin/sh', '-c', SERVERS()]);
    assert.match(served.stdout, /LISTENING/, served.stderr);
    assert.deepEqual(tableElements(table(state)), [`tcp ${P} -> ${A1}:7000`, `udp ${P + 1} -> ${A1}:5353`]);

    // the host itself: loopback (route_localnet), the bridge's address, its own address
    const bridge = bridgeOf('pt1');
    const gateway = ip('-4', '-o', 'addr', 'show', 'dev', bridge).match(/inet (\S+)\//)![1]!;
    const own = hostAddress();
    for (const h of ['127.0.0.1', gateway, ...(own ? [own] : [])]) {
      assert.equal(await tcpLine(h, P), 'tcp-hello', `tcp via ${h}`);
      assert.equal(await udpAsk(h, P + 1), 'udp:ping', `udp via ${h}`);
    }
    // the jail's port itself is not a host port: nothing but the published ones is forwarded
    await assert.rejects(tcpLine('127.0.0.1', 7000, 1000));

    // a namespace on the jail bridge, reaching the host's address there
    ip('netns', 'add', NS);
    ip('link', 'add', VB, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS);
    ip('link', 'set', VB, 'master', bridge, 'up');
    ip('-n', NS, 'addr', 'add', `${CLIENT}/24`, 'dev', 'eth0');
    ip('-n', NS, 'link', 'set', 'eth0', 'up');
    ip('-n', NS, 'link', 'set', 'lo', 'up');
    assert.equal(fromNetns(NS, gateway, P), 'TCP tcp-hello\nUDP udp:ping\n');

    // a namespace routed through a veth of the host (as another machine on an uplink): the
    // host forwards from that interface (the admin's setting, here the test's own link)
    ip('netns', 'add', NSX);
    ip('link', 'add', VX, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NSX);
    ip('addr', 'add', `${UPLINK}/30`, 'dev', VX);
    ip('link', 'set', VX, 'up');
    execFileSync('sysctl', ['-qw', `net.ipv4.conf.${VX}.forwarding=1`]);
    ip('-n', NSX, 'addr', 'add', `${OUTSIDE}/30`, 'dev', 'eth0');
    ip('-n', NSX, 'link', 'set', 'eth0', 'up');
    ip('-n', NSX, 'route', 'add', 'default', 'via', UPLINK);
    assert.equal(fromNetns(NSX, UPLINK, P), 'TCP tcp-hello\nUDP udp:ping\n');
    // ... but the jail itself is not routed to: only its published ports are
    const direct = spawnSync(
      'ip',
      ['netns', 'exec', NSX, 'python3', '-c', `import socket; socket.create_connection(("${A1}", 7000), timeout=2)`],
      { encoding: 'utf8' },
    );
    assert.notEqual(direct.status, 0, 'the jail address is not reachable by routing through the host');
  });

  test('jailyard ports lists them, locally and through the daemon (GET /v1/ports)', async () => {
    const local = JSON.parse(await ok(jy, 'ports', '--json'));
    const rows = [
      { jail: 'pt1', proto: 'tcp', hostPort: P, hostPortEnd: P, address: A1, jailPort: 7000, jailPortEnd: 7000 },
      {
        jail: 'pt1',
        proto: 'udp',
        hostPort: P + 1,
        hostPortEnd: P + 1,
        address: A1,
        jailPort: 5353,
        jailPortEnd: 5353,
      },
    ];
    assert.deepEqual(local, { ports: rows });
    const text = await ok(jy, 'ports', 'pt1');
    assert.match(text, new RegExp(`pt1\\s+tcp\\s+${P}\\s+${A1.replace(/\./g, '\\.')}:7000`));
    assert.deepEqual(JSON.parse(await ok(jy, 'ports', '-l', 'app=pub', '--json')), { ports: rows });
    assert.deepEqual(JSON.parse(await ok(jy, 'ports', '-l', 'app=other', '--json')), { ports: [] });
    const none = await jy('ports', 'nosuch');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /nosuch/);

    const child: ChildProcess = spawn(process.execPath, binArgs(state, 'serve'), {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (b) => (stderr += b));
    try {
      const sock = join(state, 'jailyard.sock');
      const t0 = Date.now();
      while (!existsSync(sock)) {
        if (Date.now() - t0 > 20_000 || child.exitCode !== null) throw new Error(`serve did not start: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const remote = await ok(jy, '--host', `unix://${sock}`, 'ports', '--json');
      assert.deepEqual(JSON.parse(remote), { ports: rows });
      const host = ['--host', `unix://${sock}`];
      assert.deepEqual(JSON.parse(await ok(jy, ...host, 'ports', '-l', 'app in (pub)', '--json')), { ports: rows });
      assert.deepEqual(JSON.parse(await ok(jy, ...host, 'ports', '-l', 'app=other', '--json')), { ports: [] });
      const bad = await jy(...host, 'ports', '-l', 'app in (', '--json');
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /labelSelector/);
      const missing = await jy('--host', `unix://${sock}`, 'ports', 'nosuch');
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /nosuch/);
    } finally {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    }
  });

  test("a namespace on the bridge cannot reach the host's loopback through route_localnet", async () => {
    const bridge = bridgeOf('pt1');
    assert.equal(readFileSync(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, 'utf8').trim(), '1');
    // the client does all it can: no loopback of its own, 127.0.0.1 routed to the host
    ip('-n', NS, 'addr', 'flush', 'dev', 'lo');
    quiet('ip', '-n', NS, 'route', 'del', 'local', '127.0.0.1', 'dev', 'lo', 'table', 'local');
    ip(
      '-n',
      NS,
      'route',
      'add',
      '127.0.0.1/32',
      'via',
      ip('-4', '-o', 'addr', 'show', 'dev', bridge).match(/inet (\S+)\//)![1]!,
    );
    execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1']);
    execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.conf.eth0.route_localnet=1']);
    let accepted = 0;
    const server = createServer((c) => {
      accepted++;
      c.end('secret\n');
    });
    await new Promise<void>((r) => server.listen(P + 4, '127.0.0.1', () => r()));
    try {
      const r = spawnSync(
        'ip',
        [
          'netns',
          'exec',
          NS,
          'python3',
          '-c',
          `import socket; socket.create_connection(("127.0.0.1", ${P + 4}), timeout=2)`,
        ],
        { encoding: 'utf8' },
      );
      assert.notEqual(r.status, 0, 'the connection to the host loopback failed');
      assert.equal(accepted, 0, "the host's loopback service saw nothing");
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  test('a host port published already is refused, in this state folder or another, changing nothing', async () => {
    const before = tableElements(table(state));
    await ok(jy, 'create', 'pt2', 'persist', `ip4.addr=${A2}`, `expose=udp:${P + 3},${P - 2}-${P}:80-82`);
    const r = await jy('start', 'pt2');
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`host port tcp ${P} is published by jail "pt1"`));
    assert.equal(stateOf('pt2'), 'stopped');
    assert.deepEqual(tableElements(table(state)), before, 'the table is unchanged');
    // another state folder: the driver's host-wide check under its lock
    await ok(jy2, 'create', 'pq1', 'persist', `ip4.addr=${A4}`, `expose=${P}:80`);
    const r2 = await jy2('start', 'pq1');
    assert.equal(r2.code, 1);
    assert.match(
      r2.stderr,
      new RegExp(`host port tcp ${P} is published already by jail "pt1" of another state folder`),
    );
    assert.match(r2.stderr, new RegExp(`nft table ip ${table(state)}`));
    assert.equal(tableElements(table(state2)), undefined, 'the second folder made no table');
    assert.deepEqual(tableElements(table(state)), before);
    // a host service on the port: refused too (its connections would go to the jail)
    const service = createServer((c) => c.end('host\n'));
    await new Promise<void>((r) => service.listen(P + 7, '127.0.0.1', () => r()));
    try {
      await ok(jy2, 'set', 'pq1', `expose=tcp:${P + 7}:80`);
      const r3 = await jy2('start', 'pq1');
      assert.equal(r3.code, 1);
      assert.match(r3.stderr, new RegExp(`host port tcp ${P + 7} is in use by a process of the host`));
      assert.equal(tableElements(table(state2)), undefined);
      assert.equal(await tcpLine('127.0.0.1', P + 7), 'host', 'the host service keeps its port');
    } finally {
      await new Promise((r) => service.close(r));
    }
    // the refused starts left nothing (no netns, veth, mounts): checked at the end as well
    assertNoLeaks(baseline, state2);
  });

  test('reconcile restores a flushed table and removes what a killed start left', async () => {
    // someone flushed jailyard's table (a firewall reload): the running jail's ports come back
    execFileSync('nft', ['delete', 'table', 'ip', table(state)]);
    await assert.rejects(tcpLine('127.0.0.1', P, 1000));
    const rec = await jy('reconcile');
    assert.equal(rec.code, 0, rec.stderr);
    assert.match(rec.stderr, new RegExp(`published port tcp ${P} -> ${A1.replace(/\./g, '\\.')}:7000 restored`));
    assert.equal(await tcpLine('127.0.0.1', P), 'tcp-hello');
    assert.equal(await udpAsk('127.0.0.1', P + 1), 'udp:ping');

    // a start killed right after its ports went in, before they were recorded
    await ok(jy, 'create', 'pt3', 'persist', `ip4.addr=${A3}`, `expose=tcp:${P + 2}:7000`);
    const crashed = runBin(state, ['start', 'pt3'], { env: { ...process.env, JAILYARD_CRASH_AT: 'ports:done' } });
    assert.equal(crashed.code, 137, crashed.stderr);
    assert.ok(tableElements(table(state))!.includes(`tcp ${P + 2} -> ${A3}:7000`), 'the killed start published');
    const rec2 = await jy('reconcile');
    assert.equal(rec2.code, 0, rec2.stderr);
    assert.deepEqual(tableElements(table(state)), [`tcp ${P} -> ${A1}:7000`, `udp ${P + 1} -> ${A1}:5353`]);
    assert.equal(stateOf('pt3'), 'stopped');
    // and the jail starts and stops normally afterwards
    await ok(jy, 'start', 'pt3');
    assert.ok(tableElements(table(state))!.includes(`tcp ${P + 2} -> ${A3}:7000`));
    // a stop killed right after the ports went, before that was recorded
    const stopCrash = runBin(state, ['stop', 'pt3'], {
      env: { ...process.env, JAILYARD_CRASH_AT: 'ports.remove:done' },
    });
    assert.equal(stopCrash.code, 137, stopCrash.stderr);
    const rec3 = await jy('reconcile');
    assert.equal(rec3.code, 0, rec3.stderr);
    assert.deepEqual(tableElements(table(state)), [`tcp ${P} -> ${A1}:7000`, `udp ${P + 1} -> ${A1}:5353`]);
    await ok(jy, 'remove', 'pt3');

    // reconcile --all: the table of a state folder that is gone (a test run killed before its
    // clean-up) goes; this folder's own stays as it is
    const orphan = table(`/nonexistent/jy-ports-orphan-${process.pid}`);
    execFileSync('nft', ['-f', '-'], {
      input: `add table ip ${orphan}\nadd map ip ${orphan} published { type inet_proto . inet_service : ipv4_addr . inet_service; }\nadd element ip ${orphan} published { tcp . ${P + 3} : ${A3} . 80 }\n`,
    });
    const rec4 = await jy('reconcile', '--all');
    assert.equal(rec4.code, 0, rec4.stderr);
    assert.match(rec4.stderr, new RegExp(`published ports: table ip ${orphan} of no state folder removed`));
    assert.equal(tableElements(orphan), undefined);
    assert.deepEqual(tableElements(table(state)), [`tcp ${P} -> ${A1}:7000`, `udp ${P + 1} -> ${A1}:5353`]);
  });

  test('after stop the port is closed and no rule of the jail is left', async () => {
    const bridge = bridgeOf('pt1');
    await ok(jy, 'stop', 'pt1');
    await assert.rejects(tcpLine('127.0.0.1', P, 1500));
    assert.equal(tableElements(table(state)), undefined, 'the table went with its last element');
    assert.ok(!existsSync(`/run/jailyard/ports/${bridge}/${table(state)}`), 'the bridge no longer lists the table');
    const r = await jy('ports', '--json');
    assert.deepEqual(JSON.parse(r.stdout), { ports: [] });
  });

  test('a UDP client that keeps its port follows the rules when they change (conntrack)', async () => {
    await ok(jy, 'start', 'pt1');
    assert.match(runBin(state, ['exec', 'pt1', '/bin/sh', '-c', SERVERS('one')]).stdout, /LISTENING/);
    const u = createSocket('udp4');
    await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
    const ask = () =>
      new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => {
          u.removeAllListeners('message');
          reject(new Error('no UDP answer'));
        }, 3000);
        u.once('message', (m) => {
          clearTimeout(timer);
          resolve(m.toString());
        });
        u.send('ping', P + 1, '127.0.0.1');
      });
    try {
      assert.equal(await ask(), 'one:ping');
      // the port moves to another jail while the client keeps sending from the same port:
      // without forgetting its flow, the kernel would go on sending it to pt1's address
      await ok(jy, 'stop', 'pt1');
      await ok(jy, 'set', 'pt2', `expose=udp:${P + 1}:5353`);
      await ok(jy, 'start', 'pt2');
      assert.match(runBin(state, ['exec', 'pt2', '/bin/sh', '-c', SERVERS('two')]).stdout, /LISTENING/);
      assert.equal(await ask(), 'two:ping');
      await ok(jy, 'stop', 'pt2');
      assert.equal(tableElements(table(state)), undefined);
    } finally {
      u.close();
    }
  });
});
