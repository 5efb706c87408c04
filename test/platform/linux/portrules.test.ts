// The nftables text of published ports (portrules.ts): what is generated, that nft itself
// accepts it (`nft -c`: checked, nothing applied), and reading the kernel's JSON back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  addElements,
  commentOf,
  deleteElements,
  listeningPorts,
  parsePortMap,
  parsePortMaps,
  parsePortTables,
  portElements,
  portsTable,
  portsTableTag,
  rulesetText,
  tableRuleset,
} from '../../../src/platform/linux/portrules.ts';

const ports = [
  { proto: 'tcp' as const, hostPort: 8080, hostPortEnd: 8080, address: '198.51.100.7', jailPort: 80, jailPortEnd: 80 },
  { proto: 'udp' as const, hostPort: 9000, hostPortEnd: 9002, address: '198.51.100.7', jailPort: 53, jailPortEnd: 55 },
];

test('a range is one element per host port, shifted to the jail range', () => {
  const els = portElements(ports, 'www');
  assert.deepEqual(
    els.map((e) => `${e.proto} ${e.hostPort} ${e.address}:${e.jailPort} ${e.jail}`),
    [
      'tcp 8080 198.51.100.7:80 www',
      'udp 9000 198.51.100.7:53 www',
      'udp 9001 198.51.100.7:54 www',
      'udp 9002 198.51.100.7:55 www',
    ],
  );
});

test('table names carry the state tag; other tables are not ours', () => {
  assert.equal(portsTable('ab12'), 'jy-ab12-ports');
  assert.equal(portsTableTag('jy-ab12-ports'), 'ab12');
  for (const t of ['jailyard', 'jy-ab12-7', 'jy-ab12-ports-x', 'nat', 'jy-zz12-ports'])
    assert.equal(portsTableTag(t), undefined, t);
});

test('the ruleset: DNAT in prerouting and output through the map, masquerade to the bridge, the loopback guard', () => {
  const text = tableRuleset('jy-ab12-ports', 'jy0', false).join('\n');
  assert.match(text, /prerouting \{ type nat hook prerouting priority dstnat;/);
  assert.match(
    text,
    /add rule ip jy-ab12-ports prerouting fib daddr type local dnat ip to meta l4proto \. th dport map @published/,
  );
  assert.match(text, /add rule ip jy-ab12-ports output fib daddr type local dnat/);
  assert.match(text, /postrouting oifname "jy0" ct status dnat masquerade/);
  assert.match(text, /guard iifname != "lo" ip daddr 127\.0\.0\.0\/8 drop/);
  assert.doesNotMatch(text, /forward/);
  assert.match(
    tableRuleset('jy-ab12-ports', 'jy0', true).join('\n'),
    /forward iifname "jy0" ct status & dnat == 0 drop/,
  );
  // nothing but plain tokens reaches the text
  assert.throws(() => tableRuleset('jy-ab12-ports', 'jy0" drop; #', false), TypeError);
  assert.throws(() => tableRuleset('nat', 'jy0', false), TypeError);
  assert.throws(
    () => addElements('jy-ab12-ports', [{ proto: 'tcp', hostPort: 1, address: '1.2.3.4 . 5 }', jailPort: 1 }]),
    TypeError,
  );
});

test('element comments are jail names only when plain', () => {
  assert.equal(commentOf('www.db-1'), 'www.db-1');
  assert.equal(commentOf('a"b'), undefined);
  assert.equal(commentOf('a b'), undefined);
  const [line] = addElements('jy-ab12-ports', portElements(ports.slice(0, 1), 'x"; flush ruleset'));
  assert.equal(line, 'add element ip jy-ab12-ports published { tcp . 8080 : 198.51.100.7 . 80 }');
  assert.deepEqual(deleteElements('jy-ab12-ports', portElements(ports)), [
    'delete element ip jy-ab12-ports published { tcp . 8080, udp . 9000, udp . 9001, udp . 9002 }',
  ]);
  assert.deepEqual(addElements('jy-ab12-ports', []), []);
});

test('nft itself accepts the generated text (nft -c: checked, not applied)', { skip: process.getuid?.() !== 0 }, () => {
  const lines = [
    ...tableRuleset('jy-ffff-ports', 'jy0', true),
    ...addElements('jy-ffff-ports', portElements(ports, 'www')),
  ];
  const r = spawnSync('nft', ['-c', '-f', '-'], { input: rulesetText(lines), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test("reading the kernel's JSON: tables, elements with and without comments", () => {
  const tables = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'bridge', name: 'jailyard', handle: 1 } },
      { table: { family: 'ip', name: 'jy-ab12-ports', handle: 2 } },
      { table: { family: 'ip', name: 'nat', handle: 3 } },
      { table: { family: 'inet', name: 'jy-cd34-ports', handle: 4 } },
    ],
  });
  assert.deepEqual(parsePortTables(tables), ['jy-ab12-ports']);
  const map = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      {
        map: {
          family: 'ip',
          name: 'published',
          table: 'jy-ab12-ports',
          elem: [
            [{ elem: { val: { concat: ['tcp', 18080] }, comment: 'j1' } }, { concat: ['198.51.100.77', 80] }],
            [{ concat: ['udp', 5353] }, { concat: ['198.51.100.78', 53] }],
          ],
        },
      },
    ],
  });
  assert.deepEqual(parsePortMap(map), [
    { proto: 'tcp', hostPort: 18080, address: '198.51.100.77', jailPort: 80, jail: 'j1' },
    { proto: 'udp', hostPort: 5353, address: '198.51.100.78', jailPort: 53 },
  ]);
  assert.deepEqual(parsePortMap(JSON.stringify({ nftables: [{ map: { name: 'published' } }] })), []);
  // `nft -j list maps ip`: every table's maps; only jailyard's port tables count
  const maps = JSON.stringify({
    nftables: [
      {
        map: {
          family: 'ip',
          name: 'published',
          table: 'jy-ab12-ports',
          elem: [[{ concat: ['tcp', 1] }, { concat: ['198.51.100.1', 2] }]],
        },
      },
      { map: { family: 'ip', name: 'published', table: 'jy-cd34-ports' } },
      {
        map: {
          family: 'ip',
          name: 'published',
          table: 'someone-else',
          elem: [[{ concat: ['tcp', 3] }, { concat: ['10.0.0.1', 4] }]],
        },
      },
      { map: { family: 'ip', name: 'other', table: 'jy-ab12-ports' } },
    ],
  });
  assert.deepEqual(Object.fromEntries(parsePortMaps(maps)), {
    'jy-ab12-ports': [{ proto: 'tcp', hostPort: 1, address: '198.51.100.1', jailPort: 2 }],
    'jy-cd34-ports': [],
  });
});

test('host sockets: listening TCP and unconnected UDP count, connected ones do not', () => {
  const head = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
  const tcp = `${head}   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n`;
  const tcp6 = `${head}   0: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1\n`;
  const udp = `${head}   5: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4 2\n   6: 0200000A:D431 0100000A:0035 01 00000000:00000000 00:00000000 00000000     0        0 5 2\n`;
  assert.deepEqual([...listeningPorts({ tcp: [tcp, tcp6], udp: [udp] })].sort(), ['tcp/22', 'tcp/8081', 'udp/53']);
});
