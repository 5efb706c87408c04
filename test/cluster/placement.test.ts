// Placement is pure: nodes and loads in, a node name or JY_ERR_NO_NODE (with the reason) out.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JailyardError } from '../../src/errors.ts';
import fc from 'fast-check';
import {
  checkNodeAddresses,
  choosePlacement,
  jailIpv4,
  restartPolicy,
  type NodeLoad,
} from '../../src/cluster/placement.ts';
import {
  parseClusterJail,
  parseNodeRecord,
  parseSettings,
  toJailRecord,
  type ClusterJail,
} from '../../src/cluster/records.ts';
import type { Params } from '../../src/conf/spec.ts';

function n(name: string, range: string, placed: number, labels: Record<string, string> = {}, capacity = 10): NodeLoad {
  return { record: { name, labels, range, capacity, startedAt: '', version: 1 }, placed };
}

const nodes = [
  n('a', '198.51.100.80/29', 3, { zone: 'z1', disk: 'ssd' }),
  n('b', '198.51.100.88/29', 1, { zone: 'z1' }),
  n('c', '198.51.100.96/29', 1, { zone: 'z2' }, 1),
];

const place = (params: Params, opts?: { exclude?: ReadonlySet<string> }) =>
  choosePlacement({ name: 'j', params }, nodes, opts);

function noNode(re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof JailyardError, String(e));
    assert.equal(e.code, 'JY_ERR_NO_NODE');
    assert.equal(e.place.jail, 'j');
    assert.match(e.message, re);
    return true;
  };
}

test('least loaded node with room wins, ties by name', () => {
  // c is full (1/1): b beats a on load
  assert.equal(place({}), 'b');
  assert.equal(
    choosePlacement({ name: 'j', params: {} }, [n('y', '198.51.100.80/29', 0), n('x', '198.51.100.88/29', 0)]),
    'x',
  );
  assert.equal(place({}, { exclude: new Set(['b']) }), 'a');
});

test('node names one node; node.selector selects by label', () => {
  assert.equal(place({ node: 'a' }), 'a');
  assert.equal(place({ 'node.selector': 'disk=ssd' }), 'a');
  assert.equal(place({ 'node.selector': 'zone=z1' }), 'b');
  assert.equal(place({ 'node.selector': 'zone in (z1),!disk' }), 'b');
  assert.throws(() => place({ node: 'zz' }), noNode(/node "zz" is not a live node/));
  assert.throws(() => place({ 'node.selector': 'zone=z9' }), noNode(/labels matching "zone=z9"/));
  assert.throws(() => place({ node: 'b', 'node.selector': 'disk=ssd' }), noNode(/no matching node has labels/));
  assert.throws(
    () => place({ 'node.selector': 'zone in (' }),
    (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_SELECTOR' && e.place.param === 'node.selector',
  );
});

test('a jail with addresses goes only where its addresses route', () => {
  assert.equal(place({ 'ip4.addr': ['198.51.100.82/29'] }), 'a');
  assert.equal(place({ 'ip4.addr': ['eth0|198.51.100.90'] }), 'b');
  assert.throws(
    () => place({ 'ip4.addr': ['198.51.100.82', '198.51.100.90'] }),
    noNode(/no such node's range holds 198\.51\.100\.82, 198\.51\.100\.90/),
  );
  assert.throws(() => place({ 'ip4.addr': ['198.51.100.98'] }), noNode(/every such node is full \(c: 1\/1\)/));
  assert.throws(() => place({ node: 'b', 'ip4.addr': ['198.51.100.82'] }), noNode(/b: 198\.51\.100\.88\/29/));
  assert.throws(
    () => jailIpv4('j', { 'ip4.addr': ['not-an-address'] }),
    (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_ADDRESS' && e.place.param === 'ip4.addr',
  );
  // a comma list is read as the node's driver reads it: every address counts
  assert.throws(
    () => place({ 'ip4.addr': '198.51.100.82,198.51.100.90' }),
    noNode(/no such node's range holds 198\.51\.100\.82,198\.51\.100\.90/),
  );
  // nodes have no IPv6 range: an ip6.addr is refused at placement, naming the parameter
  const ip6 = (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_ADDRESS' && e.place.param === 'ip6.addr';
  assert.throws(() => place({ 'ip6.addr': '2001:db8::1' }), ip6);
  assert.throws(() => place({ 'ip4.addr': '198.51.100.82', 'ip6.addr': ['2001:db8::1'] }), ip6);
  assert.equal(place({ 'ip4.addr': '198.51.100.82', 'ip6.addr': [] }), 'a');
});

test("a node's own check of a record's addresses (the agent's, for records that skipped placement)", () => {
  const b = { name: 'b', range: '198.51.100.88/29' };
  checkNodeAddresses('j', {}, b);
  checkNodeAddresses('j', { 'ip4.addr': ['198.51.100.88', 'eth0|198.51.100.95/24'] }, b);
  const refused = (param: string, re: RegExp) => (e: unknown) => {
    assert.ok(e instanceof JailyardError && e.code === 'JY_ERR_ADDRESS', String(e));
    assert.equal(e.place.jail, 'j');
    assert.equal(e.place.param, param);
    assert.match(e.message, re);
    return true;
  };
  for (const a of ['198.51.100.87', '198.51.100.96/29', '198.51.100.90,198.51.100.20', '10.0.0.1 netmask 255.0.0.0'])
    assert.throws(
      () => checkNodeAddresses('j', { 'ip4.addr': a }, b),
      refused('ip4.addr', /is outside node b's range 198\.51\.100\.88\/29/),
    );
  assert.throws(
    () => checkNodeAddresses('j', { 'ip4.addr': '198.51.100.9x' }, b),
    refused('ip4.addr', /is not an IPv4 address/),
  );
  assert.throws(
    () => checkNodeAddresses('j', { 'ip6.addr': 'eth0|2001:db8::1/64' }, b),
    refused('ip6.addr', /node b has no IPv6 jail range/),
  );
});

test('no live node at all, and restart policies', () => {
  assert.throws(() => choosePlacement({ name: 'j', params: {} }, []), noNode(/no live node/));
  assert.throws(() => place({}, { exclude: new Set(['a', 'b', 'c']) }), noNode(/no live node/));
  assert.equal(restartPolicy({}), 'no');
  assert.equal(restartPolicy({ 'restart.policy': 'always' }), 'always');
  assert.equal(restartPolicy({ 'restart.policy': 'on-failure' }), 'on-failure');
});

// records.ts is the door for what etcd holds (hostile input): anything is either a valid
// record or JY_ERR_CLUSTER_RECORD naming the key, never another exception.
const onlyRecordErrors = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof JailyardError && e.code === 'JY_ERR_CLUSTER_RECORD', String(e));
    assert.equal(e.place.key, 'k');
  }
};

test('records: any text or JSON value is a record or JY_ERR_CLUSTER_RECORD', () => {
  const now = '2026-12-02T00:00:00.000Z';
  const good: ClusterJail = {
    name: 'j',
    params: { path: '/srv/j', 'ip4.addr': ['198.51.100.81'] },
    meta: 'a=1',
    env: '',
    desired: 'running',
    placement: { node: 'n1', token: 't', at: now },
    status: { state: 'running', jid: 2, ready: true, lastError: null, addresses: [], token: 't', at: now },
    createdAt: now,
    updatedAt: now,
    version: 1,
  };
  const fields = Object.keys(good);
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.json(),
        // a valid record with one field replaced by anything
        fc.tuple(fc.constantFrom(...fields), fc.jsonValue()).map(([f, v]) => JSON.stringify({ ...good, [f]: v })),
      ),
      (text) => {
        onlyRecordErrors(() => parseClusterJail('k', text, 'j'));
        onlyRecordErrors(() => parseNodeRecord('k', text));
        onlyRecordErrors(() => parseSettings('k', text));
      },
    ),
    { numRuns: 300 },
  );
  const parsed = parseClusterJail('k', JSON.stringify(good), 'j');
  assert.deepEqual(parsed, good);
  const r = toJailRecord(parsed, 42);
  assert.deepEqual([r.state, r.jid, r.ready, r.revision, r.node, r.runtime], ['running', 2, true, 42, 'n1', null]);
  assert.throws(() => parseClusterJail('k', JSON.stringify(good), 'other'), /names jail "j", its key names "other"/);
  assert.throws(
    () => parseClusterJail('k', JSON.stringify({ ...good, params: { meta: 'x' } })),
    /parameter "meta" does not belong in "params"/,
  );
  assert.throws(() => parseClusterJail('k', JSON.stringify({ ...good, version: 2 })), /unsupported record version 2/);
});

test('records: node names and API addresses that `nodes` and `ls` print are plain (no terminal escapes)', () => {
  const now = '2026-12-02T00:00:00.000Z';
  const node = {
    name: 'n1',
    labels: {},
    range: '198.51.100.80/28',
    capacity: 10,
    api: 'http://198.51.100.81:8080',
    startedAt: now,
    version: 1,
  };
  assert.equal(parseNodeRecord('k', JSON.stringify(node)).name, 'n1');
  assert.equal(parseNodeRecord('k', JSON.stringify({ ...node, api: 'http://[::1]:8080' })).api, 'http://[::1]:8080');
  for (const name of ['n\u001b[2J', 'a b', '-n', 'é'])
    assert.throws(() => parseNodeRecord('k', JSON.stringify({ ...node, name })), /node name .* is not a valid name/);
  for (const api of ['http://h:1/\u001b[31m', 'javascript:alert(1)', 'http://a b'])
    assert.throws(() => parseNodeRecord('k', JSON.stringify({ ...node, api })), /field "api" .* is not an http/);
  const jail = {
    name: 'j',
    params: {},
    meta: '',
    env: '',
    desired: 'stopped',
    placement: { node: 'n\u0007', token: 't', at: now },
    status: null,
    createdAt: now,
    updatedAt: now,
    version: 1,
  };
  assert.throws(() => parseClusterJail('k', JSON.stringify(jail), 'j'), /node name .* is not a valid name/);
});

test("rollout in a cluster: a new jail's node comes first (as placement chooses), then an address of its range", async () => {
  const { placeAddress } = await import('../../src/lb/rollout.ts');
  const nodes = [
    { name: 'a', labels: { zone: 'z1' }, range: '198.51.100.32/28', capacity: 10 },
    { name: 'b', labels: { zone: 'z1' }, range: '198.51.100.48/28', capacity: 10 },
    { name: 'c', labels: { zone: 'z2' }, range: '198.51.100.64/28', capacity: 10 },
  ];
  const jails = [
    { node: 'a', params: { 'ip4.addr': ['198.51.100.37/24'] } },
    { node: 'b', params: { 'ip4.addr': ['198.51.100.53/24'] } },
  ];
  // the rollout's loop: each new jail is counted on the node its address routes to
  const rollout = (count: number, template: Params, range: [number, number]) => {
    const all = [...jails];
    const news: { node: string }[] = [];
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      const addr = placeAddress(all, nodes, template, range, news);
      const node = choosePlacement(
        { name: `n${i}`, params: { ...template, 'ip4.addr': addr } },
        nodes.map((record) => ({
          record: { ...record, startedAt: '', version: 1 as const },
          placed: all.filter((j) => j.node === record.name).length,
        })),
      );
      all.push({ node, params: { 'ip4.addr': [`${addr}/24`] } });
      news.push({ node });
      out.push(`${node} ${addr}`);
    }
    return out;
  };
  // the old way (first free address of the range) put all of them on a
  assert.deepEqual(
    [0, 1].map(() => placeAddress(jails, undefined, {}, [44, 54])),
    ['198.51.100.44', '198.51.100.44'],
  );
  // c holds no address of 44-54: a and b take turns, least loaded first
  assert.deepEqual(rollout(4, {}, [44, 54]), [
    'a 198.51.100.44',
    'b 198.51.100.48',
    'a 198.51.100.45',
    'b 198.51.100.49',
  ]);
  // the whole /24: c (no jail yet) first
  assert.deepEqual(rollout(3, {}, [2, 254]), ['c 198.51.100.64', 'a 198.51.100.32', 'b 198.51.100.48']);
  // mid-rollout (surge 1): v2 #1 on a, a's v1 removed, b's still there: loads tie, the new
  // jails spread, so #2 goes to b
  const mid = [
    { node: 'a', params: { 'ip4.addr': ['198.51.100.44/24'] } },
    { node: 'b', params: { 'ip4.addr': ['198.51.100.53/24'] } },
  ];
  assert.equal(placeAddress(mid, nodes, {}, [44, 54], [mid[0]!]), '198.51.100.48');
  assert.equal(placeAddress(mid, nodes, {}, [44, 54]), '198.51.100.45');
  // the template's node and node.selector narrow the nodes, as placement does
  assert.deepEqual(rollout(2, { node: 'b' }, [2, 254]), ['b 198.51.100.48', 'b 198.51.100.49']);
  assert.deepEqual(rollout(2, { 'node.selector': 'zone=z2' }, [2, 254]), ['c 198.51.100.64', 'c 198.51.100.65']);
  // a full node is passed over; nothing left is a clear error
  assert.equal(placeAddress(jails, [{ ...nodes[0]!, capacity: 1 }, nodes[1]!], {}, [2, 254]), '198.51.100.48');
  const taken = [
    ...jails,
    { node: 'a', params: { 'ip4.addr': '198.51.100.44' } },
    { node: 'a', params: { 'ip4.addr': '198.51.100.45/24' } },
  ];
  assert.throws(
    () => placeAddress(taken, nodes, {}, [44, 45]),
    (e: unknown) =>
      e instanceof JailyardError &&
      e.code === 'JY_ERR_ADDRESS' &&
      e.message ===
        'no node has a free address for a new jail in 198.51.100.44-45 (c: 198.51.100.64/28 has no address in 198.51.100.44-45; b: 198.51.100.48/28 has no address in 198.51.100.44-45; a: 198.51.100.44-45 all taken)',
  );
});
