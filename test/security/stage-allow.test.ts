// jail(8)'s allow.* on Linux, through jy-stage: allow.raw_sockets gives pid 1's lineage
// CAP_NET_RAW and lets raw and packet sockets through the filter (ping works);
// allow.socket_af other families; allow.read_msgbuf the kernel log. The default jail is
// checked in stage-kernel.test.ts. (exec goes through jy-enter, which gets the same
// arguments from security.ts; its own tests are the exec ones.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { PING_PY, StageHost, buildProbe, probeResults, waitForLog, type StageJail } from './stage-fixture.ts';

let host: StageHost;
let jail: StageJail;
let log = '';

before(async () => {
  host = new StageHost('stage-allow');
  jail = host.define({
    'ip4.addr': '198.51.100.161/24',
    'allow.raw_sockets': true,
    'allow.socket_af': true,
    'allow.read_msgbuf': true,
  });
  await host.start(jail, {
    beforeCreate: (j) => {
      buildProbe(`${j.root}/tmp/probe`);
      writeFileSync(`${j.root}/tmp/ping.py`, PING_PY);
    },
    holder: ['/bin/sh', '-c', '/tmp/probe; python3 /tmp/ping.py 198.51.100.1; echo probe-done; exec sleep infinity'],
  });
  log = await waitForLog(jail, 'probe-done');
});

after(async () => {
  await host.close();
});

test("allow.raw_sockets: CAP_NET_RAW in pid 1's bounding set, raw and packet sockets, ping", () => {
  const bnd = BigInt(
    `0x${/CapBnd:\s+([0-9a-f]+)/.exec(readFileSync(`/proc/${jail.facts!.initPid}/status`, 'utf8'))![1]}`,
  );
  assert.equal((bnd >> 13n) & 1n, 1n, 'net_raw kept');
  assert.equal((bnd >> 21n) & 1n, 0n, 'sys_admin still not');
  const p = probeResults(log);
  assert.equal(p.socket_raw, 'ok', log);
  assert.equal(p.socket_packet, 'ok', log);
  assert.equal(p.ping, 'ok', log);
});

test('allow.socket_af: other families pass the filter; allow.read_msgbuf: syslog(2)', () => {
  const p = probeResults(log);
  assert.notEqual(p.socket_alg, 'EPERM', 'AF_ALG is up to the kernel now (EAFNOSUPPORT when it lacks it)');
  // vsock has no network namespace: it would reach the hypervisor and the host's listeners
  assert.equal(p.socket_vsock, 'EPERM', 'AF_VSOCK stays closed');
  assert.equal(p.syslog, 'ok', log);
  // what no allow.* parameter opens
  for (const call of ['keyctl', 'unshare_user', 'mount', 'bpf', 'tiocsti']) assert.equal(p[call], 'EPERM', call);
});
