// Issue #11 item 5: a jail's port on the bridge carries only the jail's own MAC and
// addresses. The attacker is jail B's network namespace driven from the host
// (`ip netns exec` with raw packet sockets: stronger than root in the jail, which has no
// CAP_NET_RAW by default): B forges ARP replies for A's address and UDP with A's source
// address; the host's neighbour entry for A keeps A's MAC and no forged datagram arrives.
// Ordinary traffic (host<->jail, jail<->jail, IPv4 and IPv6) still flows.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createLinuxDriver } from '../../src/platform/linux/index.ts';
import type { CreateFacts, MountFacts, NetworkFacts } from '../../src/platform/driver.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { makeTestJail, type TestJail } from '../platform/linux/fixture.ts';

const PREFIX = 'jysecnet';
const driver = createLinuxDriver({ cgroupParent: `jailyard-${PREFIX}` });
const BRIDGE = 'jy0';
const GW4 = '198.51.100.1';
const GW6 = '2001:db8:4a59::1';
const A4 = '198.51.100.214';
const A6 = '2001:db8:4a59::214';
const B4 = '198.51.100.215';
const B6 = '2001:db8:4a59::215';

interface Running {
  jail: TestJail;
  marker: string;
  net?: NetworkFacts;
  mounts?: MountFacts;
  facts?: CreateFacts;
}

async function startJail(addr4: string, addr6: string, extra: Record<string, string> = {}): Promise<Running> {
  const jail = makeTestJail(PREFIX, { 'ip4.addr': [`${addr4}/24`], 'ip6.addr': [`${addr6}/64`], ...extra });
  const marker = dirname(jail.ctx.path);
  // the state folder inside the fixture's temp folder: the leak check sees only our objects
  jail.ctx.stateDir = `${marker}/jails/${jail.ctx.name}`;
  const r: Running = { jail, marker };
  r.net = await driver.setupNetwork(jail.ctx);
  r.mounts = await driver.mount(jail.ctx, jail.plan);
  r.facts = await driver.create(jail.ctx, r.net, { maxProcs: 64 });
  return r;
}

async function stopJail(r: Running): Promise<void> {
  if (r.facts) await driver.destroy(r.jail.ctx, r.facts, 500).catch(() => {});
  if (r.mounts) await driver.unmount(r.jail.ctx, r.mounts);
  if (r.net) await driver.teardownNetwork(r.jail.ctx, r.net);
}

// Prints "source payload" per datagram; ends once every payload named after `secs` came
// (what it prints is checked all the same), else when none came for `secs` seconds.
const RECV = `
import socket, sys
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
want = set(sys.argv[4:])
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((host, port))
s.settimeout(secs)
print('listening', flush=True)
try:
    while True:
        d, a = s.recvfrom(200)
        print(a[0], d.decode(), flush=True)
        want.discard(d.decode())
        if len(sys.argv) > 4 and not want:
            break
except socket.timeout:
    pass
`;
const SEND = `
import socket, sys
dst, port, text = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET6 if ':' in dst else socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(text.encode(), (dst, port))
`;
const SEND_FROM = SEND.replace('for _', 's.bind((sys.argv[4], 0))\nfor _');
// Raw frames out of eth0 (AF_PACKET): "arp SHA SPA THA TPA ETHSRC" (an ARP reply),
// "udp4 SRC DST PORT ETHSRC ETHDST TEXT", "udp6 SRC DST PORT ETHSRC ETHDST TEXT".
const FORGE = `
import socket, struct, sys, ipaddress
def mac(m): return bytes(int(x, 16) for x in m.split(':'))
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('eth0', 0))
kind = sys.argv[1]
if kind == 'na':
    # an unsolicited neighbour advertisement (override) for TARGET from SRC (B's own address)
    src, dst, target, lladdr, esrc, edst = sys.argv[2:8]
    s6, d6 = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    icmp = struct.pack('!BBHI', 136, 0, 0, 0x20000000) + ipaddress.IPv6Address(target).packed + bytes([2, 1]) + mac(lladdr)
    pseudo = s6 + d6 + struct.pack('!IxxxB', len(icmp), 58)
    icmp = icmp[:2] + struct.pack('!H', csum(pseudo + icmp)) + icmp[4:]
    ip = struct.pack('!IHBB', 0x60000000, len(icmp), 58, 255) + s6 + d6
    for _ in range(3):
        s.send(mac(edst) + mac(esrc) + struct.pack('!H', 0x86dd) + ip + icmp)
elif kind == 'arp':
    sha, spa, tha, tpa, esrc = sys.argv[2:7]
    arp = struct.pack('!HHBBH', 1, 0x0800, 6, 4, 2) + mac(sha) + socket.inet_aton(spa) + mac(tha) + socket.inet_aton(tpa)
    for edst in (tha, 'ff:ff:ff:ff:ff:ff'):
        s.send(mac(edst) + mac(esrc) + struct.pack('!H', 0x0806) + arp)
else:
    src, dst, port, esrc, edst, text = sys.argv[2:8]
    data = text.encode()
    udp = struct.pack('!HHHH', 40000, int(port), 8 + len(data), 0) + data
    if kind == 'udp4':
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
        ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
        frame = mac(edst) + mac(esrc) + struct.pack('!H', 0x0800) + ip + udp
    else:
        s6, d6 = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
        pseudo = s6 + d6 + struct.pack('!IxxxB', len(udp), 17)
        udp = udp[:6] + struct.pack('!H', csum(pseudo + udp) or 0xffff) + udp[8:]
        ip = struct.pack('!IHBB', 0x60000000, len(udp), 17, 64) + s6 + d6
        frame = mac(edst) + mac(esrc) + struct.pack('!H', 0x86dd) + ip + udp
    for _ in range(3):
        s.send(frame)
`;

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });
const macOf = (r: Running) => /link\/ether ([0-9a-f:]+)/.exec(ip('-n', r.net!.netns!, 'link', 'show', 'eth0'))![1]!;
const bridgeMac = () => readFileSync(`/sys/class/net/${BRIDGE}/address`, 'utf8').trim();
const neighMac = (addr: string) => /lladdr ([0-9a-f:]+)/.exec(ip('neigh', 'show', 'to', addr, 'dev', BRIDGE))?.[1];
const inNetns = (r: Running, script: string, ...args: string[]) =>
  execFileSync('ip', ['netns', 'exec', r.net!.netns!, '/usr/bin/python3', '-c', script, ...args], { encoding: 'utf8' });
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
async function untilNeighbour(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 150 && !cond(); i++) await sleep(30);
  assert.ok(cond(), 'the host learnt the neighbour');
}

/** A UDP listener on the host (bound to the bridge's address) that collects "source text". */
async function hostListener(family: 4 | 6): Promise<{ got: string[]; port: number; close: () => void }> {
  const sock: Socket = createSocket(family === 4 ? 'udp4' : 'udp6');
  const got: string[] = [];
  sock.on('message', (m, rinfo) => got.push(`${rinfo.address} ${m.toString()}`));
  await new Promise<void>((res) => sock.bind(0, family === 4 ? GW4 : GW6, () => res()));
  return { got, port: sock.address().port, close: () => sock.close() };
}

async function hostSend(family: 4 | 6, to: string, port: number, text: string): Promise<void> {
  const sock = createSocket(family === 4 ? 'udp4' : 'udp6');
  await new Promise<void>((res) => sock.bind(0, family === 4 ? GW4 : GW6, () => res()));
  for (let i = 0; i < 3; i++) await new Promise<void>((res) => sock.send(text, port, to, () => res()));
  sock.close();
}

describe('security: no spoofing on the bridge', () => {
  let base: SystemSnapshot;
  let a: Running;
  let b: Running;

  before(async () => {
    base = snapshot();
    a = await startJail(A4, A6);
    // B may open raw sockets (CAP_NET_RAW): its root forges from inside as well
    b = await startJail(B4, B6, { 'allow.raw_sockets': 'true' });
  });

  after(async () => {
    for (const r of [b, a]) if (r) await stopJail(r);
    for (const r of [a, b]) if (r) assertNoLeaks(base, r.marker);
    const rules = (() => {
      try {
        return execFileSync('nft', ['list', 'table', 'bridge', 'jailyard'], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        });
      } catch {
        return '';
      }
    })();
    for (const r of [a, b])
      if (r?.net?.veth) assert.ok(!rules.includes(r.net.veth.host), `the filter of ${r.net.veth.host} removed`);
    for (const r of [a, b]) r?.jail.cleanup();
  });

  test('host<->jail and jail<->jail traffic flows, IPv4 and IPv6', { timeout: 60_000 }, async () => {
    for (const [family, aAddr, bAddr, any] of [
      [4, A4, B4, '0.0.0.0'],
      [6, A6, B6, '::'],
    ] as const) {
      // A listens; B and the host send to it
      const recv = driver.runInJail(a.jail.ctx, a.facts!, [
        '/usr/bin/python3',
        '-c',
        RECV,
        any,
        '5000',
        '5',
        'from-b',
        'from-host',
      ]);
      // until its socket is bound (a datagram sent before would be refused, not queued)
      const bound = () =>
        execFileSync('ip', ['netns', 'exec', a.net!.netns!, 'ss', '-Hlun', 'sport = :5000'], {
          encoding: 'utf8',
        }).trim() !== '';
      for (let i = 0; i < 400 && !bound(); i++) await sleep(25);
      assert.ok(bound(), `IPv${family}: the receiver in A bound :5000`);
      const fromB = await driver.runInJail(b.jail.ctx, b.facts!, [
        '/usr/bin/python3',
        '-c',
        SEND,
        aAddr,
        '5000',
        'from-b',
      ]);
      assert.equal(fromB.code, 0, fromB.stderr);
      await hostSend(family, aAddr, 5000, 'from-host');
      const r = await recv;
      assert.match(r.stdout, new RegExp(`^${bAddr} from-b$`, 'm'), `IPv${family} B -> A: ${r.stdout} ${r.stderr}`);
      assert.match(
        r.stdout,
        new RegExp(`^${family === 4 ? GW4 : GW6} from-host$`, 'm'),
        `IPv${family} host -> A: ${r.stdout}`,
      );
      // A -> host
      const l = await hostListener(family);
      // (the first datagrams may wait for neighbour discovery: a slow machine gets a while)
      for (let i = 0; i < 10 && !l.got.includes(`${aAddr} from-a`); i++) {
        const toHost = await driver.runInJail(a.jail.ctx, a.facts!, [
          '/usr/bin/python3',
          '-c',
          SEND,
          family === 4 ? GW4 : GW6,
          String(l.port),
          'from-a',
        ]);
        assert.equal(toHost.code, 0, toHost.stderr);
        await sleep(300);
      }
      l.close();
      assert.ok(l.got.includes(`${aAddr} from-a`), `IPv${family} A -> host: ${l.got.join(', ')}`);
    }
  });

  test("a forged ARP reply from B does not move the host's neighbour entry for A", { timeout: 30_000 }, async () => {
    const aMac = macOf(a);
    const bMac = macOf(b);
    await hostSend(4, A4, 9, 'arp-me');
    await untilNeighbour(() => neighMac(A4) === aMac);
    await sleep(1200); // past the neighbour entry's locktime (1 s): a reply now would count
    // B claims A's address with its own MAC, then with A's MAC as the frame's source: from
    // inside the jail (raw sockets allowed) and from its netns with the host's tools
    const inside = await driver.runInJail(b.jail.ctx, b.facts!, [
      '/usr/bin/python3',
      '-c',
      FORGE,
      'arp',
      bMac,
      A4,
      bridgeMac(),
      GW4,
      aMac,
    ]);
    assert.equal(inside.code, 0, `forging from inside the jail with allow.raw_sockets: ${inside.stderr}`);
    inNetns(b, FORGE, 'arp', bMac, A4, bridgeMac(), GW4, bMac);
    inNetns(b, FORGE, 'arp', bMac, A4, bridgeMac(), GW4, aMac);
    // sampled at once and for a while: the host's own probes may repair a poisoned entry
    const seen = new Set<string | undefined>();
    for (let i = 0; i < 20; i++) {
      seen.add(neighMac(A4));
      await sleep(20);
    }
    assert.deepEqual([...seen], [aMac], "the host's entry for A only ever had A's MAC");
  });

  test("a forged neighbour advertisement from B does not move the host's entry for A's IPv6 address", {
    timeout: 30_000,
  }, async () => {
    const aMac = macOf(a);
    const bMac = macOf(b);
    await hostSend(6, A6, 9, 'nd-me');
    await untilNeighbour(() => neighMac(A6) === aMac);
    // from B's own address (its source passes), claiming A's address for B's MAC
    inNetns(b, FORGE, 'na', B6, GW6, A6, bMac, bMac, bridgeMac());
    const seen = new Set<string | undefined>();
    for (let i = 0; i < 20; i++) {
      seen.add(neighMac(A6));
      await sleep(20);
    }
    assert.deepEqual([...seen], [aMac], "the host's entry for A's IPv6 address only ever had A's MAC");
  });

  test("UDP with A's source address sent from B never reaches a listener", { timeout: 30_000 }, async () => {
    const aMac = macOf(a);
    const bMac = macOf(b);
    for (const family of [4, 6] as const) {
      const l = await hostListener(family);
      const [src, dst] = family === 4 ? [A4, GW4] : [A6, GW6];
      // an honest datagram from B first: the listener works, and B knows the host's MAC
      inNetns(b, SEND, dst, String(l.port), 'honest');
      await sleep(100);
      // raw frames: A's source address, from B's MAC and from A's MAC
      inNetns(b, FORGE, `udp${family}`, src, dst, String(l.port), bMac, bridgeMac(), 'forged-raw');
      inNetns(b, FORGE, `udp${family}`, src, dst, String(l.port), aMac, bridgeMac(), 'forged-raw-mac');
      // and B's kernel sending from A's address (added to B's eth0 from the host)
      ip(
        '-n',
        b.net!.netns!,
        'addr',
        'add',
        `${src}/${family === 4 ? 32 : 128}`,
        'dev',
        'eth0',
        ...(family === 6 ? ['nodad'] : []),
      );
      inNetns(b, SEND_FROM, dst, String(l.port), 'forged-kernel', src);
      // the honest one awaited (it may wait for neighbour discovery), then a while for any forged
      for (let i = 0; i < 100 && !l.got.some((g) => g.endsWith(' honest')); i++) await sleep(50);
      await sleep(500);
      l.close();
      ip('-n', b.net!.netns!, 'addr', 'del', `${src}/${family === 4 ? 32 : 128}`, 'dev', 'eth0');
      assert.deepEqual(
        l.got.filter((g) => g.includes('forged')),
        [],
        `IPv${family}: nothing forged arrived`,
      );
      assert.ok(
        l.got.some((g) => g.endsWith(' honest')),
        `IPv${family}: B's honest datagram arrived: ${l.got.join(', ')}`,
      );
    }
  });
});

test("security: reconcile removes a port's bridge filter rules that a crash left without the veth", {
  timeout: 30_000,
}, async (t) => {
  const { spoofRules } = await import('../../src/platform/linux/addresses.ts');
  const { stateTag } = await import('../../src/platform/linux/paths.ts');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const state = mkdtempSync(`${tmpdir()}/jy-secnet-`);
  const veth = `jyh${stateTag(`${state}/jails/x`)}99998`;
  const rulesOf = () => {
    try {
      return execFileSync('nft', ['list', 'table', 'bridge', 'jailyard'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch {
      return '';
    }
  };
  t.after(() => rmSync(state, { recursive: true, force: true }));
  execFileSync('nft', ['-f', '-'], {
    input: `${spoofRules(veth, '02:00:00:00:99:98', [{ address: '198.51.100.218', family: 4 }]).join('\n')}\n`,
  });
  assert.ok(rulesOf().includes(`chain port-${veth} `));
  const found = await driver.scanLeftovers();
  assert.ok(found.links.includes(veth), `reported as a leftover link: ${found.links.join(' ')}`);
  await driver.removeLeftover('links', veth);
  assert.ok(!rulesOf().includes(veth), 'its map element and chain are gone');
});
