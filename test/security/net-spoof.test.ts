// Issue #11 item 5: a jail's port on the bridge carries only the jail's own MAC and
// addresses. The attacker is jail B's network namespace driven from the host
// (`ip netns exec` with raw packet sockets: stronger than root in the jail, which has no
// CAP_NET_RAW by default): B forges ARP replies for A's address and UDP with A's source
// address; the host's neighbour entry for A keeps A's MAC and no forged datagram arrives.
// Ordinary traffic (host<->jail, jail<->jail, IPv4 and IPv6) still flows.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createLinuxDriver } from '../../src/platform/linux/index.ts';
import { addressBits } from '../../src/platform/linux/addresses.ts';
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
// "udp4 SRC DST PORT ETHSRC ETHDST TEXT [SPORT]", "udp6 ..." likewise,
// "icmp6 SRC DST ETHSRC ETHDST TYPE CODE HEXBODY" (hop limit 255), "icmp4 ..." likewise.
const FORGE = `
import socket, struct, sys, ipaddress
def mac(m): return bytes(int(x, 16) for x in m.split(':'))
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
def icmp6(src, dst, esrc, edst, icmp):
    # ICMP with its checksum field zero: the checksum, an IPv6 header (hop limit 255), 3 frames
    s6, d6 = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    pseudo = s6 + d6 + struct.pack('!IxxxB', len(icmp), 58)
    icmp = icmp[:2] + struct.pack('!H', csum(pseudo + icmp)) + icmp[4:]
    ip = struct.pack('!IHBB', 0x60000000, len(icmp), 58, 255) + s6 + d6
    for _ in range(3):
        s.send(mac(edst) + mac(esrc) + struct.pack('!H', 0x86dd) + ip + icmp)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('eth0', 0))
kind = sys.argv[1]
if kind == 'na':
    # an unsolicited neighbour advertisement (override) for TARGET from SRC (B's own address)
    src, dst, target, lladdr, esrc, edst = sys.argv[2:8]
    icmp6(src, dst, esrc, edst, struct.pack('!BBHI', 136, 0, 0, 0x20000000) + ipaddress.IPv6Address(target).packed + bytes([2, 1]) + mac(lladdr))
elif kind == 'arp':
    sha, spa, tha, tpa, esrc = sys.argv[2:7]
    arp = struct.pack('!HHBBH', 1, 0x0800, 6, 4, 2) + mac(sha) + socket.inet_aton(spa) + mac(tha) + socket.inet_aton(tpa)
    for edst in (tha, 'ff:ff:ff:ff:ff:ff'):
        s.send(mac(edst) + mac(esrc) + struct.pack('!H', 0x0806) + arp)
elif kind == 'icmp6':
    # an ICMPv6 message of TYPE and CODE with BODY (hex, after the checksum), hop limit 255
    src, dst, esrc, edst, typ, code, body = sys.argv[2:9]
    icmp6(src, dst, esrc, edst, struct.pack('!BBH', int(typ), int(code), 0) + bytes.fromhex(body))
elif kind == 'icmp4':
    src, dst, esrc, edst, typ, code, body = sys.argv[2:9]
    icmp = struct.pack('!BBH', int(typ), int(code), 0) + bytes.fromhex(body)
    icmp = icmp[:2] + struct.pack('!H', csum(icmp)) + icmp[4:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0, socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    for _ in range(3):
        s.send(mac(edst) + mac(esrc) + struct.pack('!H', 0x0800) + ip + icmp)
else:
    # "udp4|udp6 SRC DST PORT ETHSRC ETHDST TEXT [SPORT]"
    src, dst, port, esrc, edst, text = sys.argv[2:8]
    sport = int(sys.argv[8]) if len(sys.argv) > 8 else 40000
    data = text.encode()
    udp = struct.pack('!HHHH', sport, int(port), 8 + len(data), 0) + data
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

// What arrives on eth0 from one MAC for SECS seconds, a line per frame: "icmp6 TYPE",
// "icmp4 TYPE", "udp SPORT" (either family), "other" (ETH_P_ALL; frames sent out skipped).
const SNIFF = `
import socket, struct, sys, time
src = bytes(int(x, 16) for x in sys.argv[1].split(':'))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(('eth0', 0))
s.settimeout(0.2)
print('listening', flush=True)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        f, addr = s.recvfrom(2000)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING or f[6:12] != src:
        continue
    et, p = struct.unpack('!H', f[12:14])[0], f[14:]
    if et == 0x86dd and p[6] == 58:
        print('icmp6', p[40], flush=True)
    elif et == 0x86dd and p[6] == 17:
        print('udp', struct.unpack('!H', p[40:42])[0], flush=True)
    elif et == 0x0800 and p[9] in (1, 17):
        h = (p[0] & 15) * 4
        print('icmp4 %d' % p[h] if p[9] == 1 else 'udp %d' % struct.unpack('!H', p[h:h + 2])[0], flush=True)
    else:
        print('other', flush=True)
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

  // Issue: a jail is never a router on the bridge. With raw sockets, B sends router
  // advertisements (a prefix, a non-zero router lifetime), redirects and DHCP server replies
  // from its own addresses (the source checks pass): the bridge drops them, and neither a
  // jail's netns nor the bridge on the host accepts router advertisements or redirects.
  const RA_PREFIX = '2001:db8:5eed::';
  const ipIn = (r: Running, ...args: string[]) => ip('-n', r.net!.netns!, ...args);
  const addrsOf = (text: string) =>
    text
      .split('\n')
      .map((l) => /\sinet6?\s+(\S+)/.exec(l)?.[1])
      .filter((x): x is string => !!x)
      .sort();
  const jailView = (r: Running) => ({
    addrs: addrsOf(ipIn(r, '-o', 'addr', 'show')),
    routes: ipIn(r, '-6', 'route', 'show', 'table', 'all').trim(),
    routes4: ipIn(r, '-4', 'route', 'show', 'table', 'all').trim(),
  });
  const hostView = () => ({
    addrs: addrsOf(ip('-6', '-o', 'addr', 'show', 'dev', BRIDGE)),
    routes: ip('-6', 'route', 'show', 'dev', BRIDGE).trim(),
  });
  const hex6 = (a: string) => addressBits(a).bits.toString(16).padStart(32, '0');
  const hexIp4 = (a: string) =>
    a
      .split('.')
      .map((o) => Number(o).toString(16).padStart(2, '0'))
      .join('');
  const hexMac = (m: string) => m.replaceAll(':', '');
  /** An RA body (after the checksum): hop limit 64, the router lifetime, a prefix option
   * (on-link, autonomous) for RA_PREFIX/64 and a source link-layer option. */
  const raBody = (lifetime: number, lladdr: string) =>
    [
      '40',
      '00',
      lifetime.toString(16).padStart(4, '0'),
      '00000000',
      '00000000',
      // prefix information: type 3, length 4, /64, L and A, valid 60 s, preferred 30 s
      '0304',
      '40',
      'c0',
      '0000003c',
      '0000001e',
      '00000000',
      hex6(RA_PREFIX),
      '0101',
      hexMac(lladdr),
    ].join('');
  const linkLocal = (text: string) => /inet6 (fe80::[0-9a-f:]+)\//.exec(text)?.[1];
  const bridgeLinkLocal = () => linkLocal(ip('-6', '-o', 'addr', 'show', 'dev', BRIDGE, 'scope', 'link'))!;
  const jailLinkLocal = (r: Running) => linkLocal(ipIn(r, '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'link'))!;
  async function forgeFromB(...args: string[]): Promise<void> {
    const r = await driver.runInJail(b.jail.ctx, b.facts!, ['/usr/bin/python3', '-c', FORGE, ...args]);
    assert.equal(r.code, 0, `forging from inside B (allow.raw_sockets): ${r.stderr}`);
  }
  /** Removes whatever a router advertisement gave the host's bridge (old code, a failure). */
  function cleanBridge(): void {
    for (const a of hostView().addrs.filter((x) => x.startsWith('2001:db8:5eed:')))
      execFileSync('ip', ['-6', 'addr', 'del', a, 'dev', BRIDGE], { stdio: 'ignore' });
    for (const l of ip('-6', 'route', 'show', 'dev', BRIDGE).split('\n')) {
      if (!l.includes('proto ra') && !l.startsWith('2001:db8:5eed:')) continue;
      const route = l.replace(/\s+(proto|metric|expires|pref)\s+\S+/g, '').trim();
      execFileSync('ip', ['-6', 'route', 'del', ...route.split(/\s+/), 'dev', BRIDGE], { stdio: 'ignore' });
    }
  }

  test('router advertisements and redirects are off in the jail and on the bridge', () => {
    const inA = (key: string) =>
      execFileSync('ip', ['netns', 'exec', a.net!.netns!, 'sysctl', '-n', key], { encoding: 'utf8' }).trim();
    for (const dev of ['all', 'default', 'eth0']) {
      assert.equal(inA(`net.ipv6.conf.${dev}.accept_ra`), '0', `jail ${dev} accept_ra`);
      assert.equal(inA(`net.ipv6.conf.${dev}.accept_redirects`), '0', `jail ${dev} IPv6 accept_redirects`);
      assert.equal(inA(`net.ipv4.conf.${dev}.accept_redirects`), '0', `jail ${dev} IPv4 accept_redirects`);
    }
    const onHost = (p: string) => readFileSync(`/proc/sys/net/${p}`, 'utf8').trim();
    assert.equal(onHost(`ipv6/conf/${BRIDGE}/accept_ra`), '0', `${BRIDGE} accept_ra`);
    assert.equal(onHost(`ipv6/conf/${BRIDGE}/accept_redirects`), '0', `${BRIDGE} IPv6 accept_redirects`);
    assert.equal(onHost(`ipv4/conf/${BRIDGE}/accept_redirects`), '0', `${BRIDGE} IPv4 accept_redirects`);
  });

  test("a router advertisement from B to A's link-local address changes nothing in A", {
    timeout: 30_000,
  }, async () => {
    const before = jailView(a);
    const bMac = macOf(b);
    await forgeFromB('icmp6', jailLinkLocal(b), jailLinkLocal(a), bMac, macOf(a), '134', '0', raBody(1800, bMac));
    await sleep(1000);
    assert.deepEqual(jailView(a), before, "A's addresses and routes are as before");
  });

  test("a router advertisement from B to the bridge's link-local address changes nothing on the host", {
    timeout: 30_000,
  }, async (t) => {
    t.after(cleanBridge);
    const before = hostView();
    const bMac = macOf(b);
    const send = (lifetime: number) =>
      forgeFromB('icmp6', jailLinkLocal(b), bridgeLinkLocal(), bMac, bridgeMac(), '134', '0', raBody(lifetime, bMac));
    // a probe first (router lifetime 0: never a default route for the host), and the real one
    // only once the probe changed nothing
    await send(0);
    await sleep(1000);
    assert.deepEqual(hostView(), before, `the probe left ${BRIDGE}'s addresses and routes as they were`);
    await send(30);
    await sleep(1000);
    assert.deepEqual(hostView(), before, `${BRIDGE}'s addresses and routes are as before`);
  });

  test("a redirect from B does not move A's route that goes through B", { timeout: 30_000 }, async (t) => {
    // A routes 2001:db8:77::/64 through B (the first-hop router a redirect must come from)
    const bLl = jailLinkLocal(b);
    ipIn(a, '-6', 'route', 'add', '2001:db8:77::/64', 'via', bLl, 'dev', 'eth0');
    t.after(() => execFileSync('ip', ['-n', a.net!.netns!, '-6', 'route', 'flush', 'cache'], { stdio: 'ignore' }));
    t.after(() => ipIn(a, '-6', 'route', 'del', '2001:db8:77::/64'));
    const bMac = macOf(b);
    // "for 2001:db8:77::1 use fe80::77" (with its link-layer address)
    const body = `00000000${hex6('fe80::77')}${hex6('2001:db8:77::1')}0201020000000077`;
    await forgeFromB('icmp6', bLl, jailLinkLocal(a), bMac, macOf(a), '137', '0', body);
    await sleep(1000);
    const via = ipIn(a, '-6', 'route', 'get', '2001:db8:77::1');
    assert.match(via, new RegExp(`via ${bLl} `), `A still routes through B: ${via}`);
  });

  test('B sends no router advertisement, redirect, router renumbering or DHCP reply to A', {
    timeout: 30_000,
  }, async () => {
    const aMac = macOf(a);
    const bMac = macOf(b);
    // a sniffer on A's eth0 (from the host): what arrives from B's MAC
    const sniff = spawn('ip', ['netns', 'exec', a.net!.netns!, '/usr/bin/python3', '-c', SNIFF, bMac, '3'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let seen = '';
    sniff.stdout.setEncoding('utf8').on('data', (d: string) => (seen += d));
    const done = new Promise<void>((res) => sniff.on('close', () => res()));
    for (let i = 0; i < 200 && !seen.includes('listening'); i++) await sleep(10);
    assert.ok(seen.includes('listening'), 'the sniffer runs');
    const [bLl, aLl] = [jailLinkLocal(b), jailLinkLocal(a)];
    // allowed, to show the sniffer sees B: an echo request each way
    await forgeFromB('icmp6', B6, A6, bMac, aMac, '128', '0', '00010001');
    await forgeFromB('icmp4', B4, A4, bMac, aMac, '8', '0', '00010001');
    // dropped
    await forgeFromB('icmp6', bLl, aLl, bMac, aMac, '134', '0', raBody(1800, bMac));
    await forgeFromB('icmp6', bLl, aLl, bMac, aMac, '137', '0', `00000000${hex6('fe80::77')}${hex6('2001:db8:77::1')}`);
    await forgeFromB('icmp6', B6, A6, bMac, aMac, '138', '0', '0000000000000000');
    // an ICMPv4 host redirect ("use 198.51.100.1") quoting a datagram A sent to B
    const quoted = `4500001c0001000040110000${hexIp4(A4)}${hexIp4(B4)}9c40138800080000`;
    await forgeFromB('icmp4', B4, A4, bMac, aMac, '5', '1', `${hexIp4(GW4)}${quoted}`);
    await forgeFromB('udp4', B4, A4, '68', bMac, aMac, 'dhcp4-offer', '67');
    await forgeFromB('udp6', bLl, aLl, '546', bMac, aMac, 'dhcp6-reply', '547');
    await done;
    const got = seen.split('\n').filter((l) => l && l !== 'listening');
    assert.ok(got.includes('icmp6 128') && got.includes('icmp4 8'), `B's echo requests arrived: ${got.join(', ')}`);
    const forbidden = ['icmp6 134', 'icmp6 137', 'icmp6 138', 'icmp4 5', 'udp 67', 'udp 547'];
    assert.deepEqual(
      got.filter((g) => forbidden.includes(g)),
      [],
      'no router advertisement, redirect, router renumbering or DHCP reply from B arrived',
    );
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
