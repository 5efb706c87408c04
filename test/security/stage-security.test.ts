// security.ts (pure): jail(8)'s allow.* mapped onto the capabilities a jail keeps and the
// allowances of its seccomp filter, and the /proc rules of the defaults file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jailSecurity, kernelFsArgs, kernelFsTypes, procArgs, procRules } from '../../src/platform/linux/security.ts';
import { JAIL_KEEP_CAPS } from '../../src/platform/linux/caps.ts';
import { loadDefaults } from '../../src/defaults.ts';
import { isJailyardError } from '../../src/errors.ts';

const spec = (params: Record<string, string | boolean | number> = {}) => ({
  name: 'j',
  params: { name: 'j', ...params },
});
const caps = (s: string) => s.split(',').map(Number);

test("no allow.*: Docker's set minus mknod and net_raw, the default filter", () => {
  const s = jailSecurity(spec());
  assert.deepEqual(s, { keepCaps: JAIL_KEEP_CAPS, seccomp: '' });
  assert.ok(!caps(s.keepCaps).includes(13), 'no CAP_NET_RAW');
  for (const c of [16, 17, 19, 21, 22, 25, 27, 34])
    assert.ok(!caps(s.keepCaps).includes(c), `capability ${c} never kept by default`);
});

test('allow.raw_sockets keeps CAP_NET_RAW and lets raw sockets through the filter', () => {
  for (const on of [true, 1, 'true', 'yes']) {
    const s = jailSecurity(spec({ 'allow.raw_sockets': on }));
    assert.ok(caps(s.keepCaps).includes(13));
    assert.equal(s.seccomp, 'raw_sockets');
  }
  for (const off of [false, 0, '0', 'false', ''])
    assert.deepEqual(jailSecurity(spec({ 'allow.raw_sockets': off })), jailSecurity(spec()));
});

test('allow.settime/adjtime, read_msgbuf, mlock, socket_af map onto capabilities and allowances', () => {
  const s = jailSecurity(
    spec({ 'allow.settime': true, 'allow.read_msgbuf': true, 'allow.mlock': true, 'allow.socket_af': true }),
  );
  assert.deepEqual(s.seccomp.split(','), ['read_msgbuf', 'settime', 'socket_af']);
  for (const c of [25, 34, 14]) assert.ok(caps(s.keepCaps).includes(c), `capability ${c}`);
  assert.deepEqual(jailSecurity(spec({ 'allow.adjtime': true })).seccomp, 'settime');
  // sorted, no duplicates: both time parameters give one allowance and one capability
  const both = jailSecurity(spec({ 'allow.settime': true, 'allow.adjtime': true }));
  assert.equal(both.seccomp, 'settime');
  assert.equal(caps(both.keepCaps).filter((c) => c === 25).length, 1);
  assert.deepEqual(
    caps(both.keepCaps),
    [...caps(both.keepCaps)].sort((a, b) => a - b),
  );
});

test('allow.mount*, sysvipc, chflags, set_hostname change nothing (documented: no meaning without a user namespace, or namespaced already)', () => {
  const none = jailSecurity(spec());
  for (const p of [
    'allow.mount',
    'allow.mount.tmpfs',
    'allow.mount.procfs',
    'allow.sysvipc',
    'allow.chflags',
    'allow.set_hostname',
  ]) {
    assert.deepEqual(jailSecurity(spec({ [p]: true })), none, p);
  }
});

test("the defaults file's /proc rules: the OCI read-only and masked paths", () => {
  const rules = procRules(loadDefaults());
  for (const p of ['/proc/sys', '/proc/sysrq-trigger', '/proc/irq', '/proc/bus', '/proc/fs'])
    assert.ok(rules.readonly.includes(p), p);
  for (const p of ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug', '/proc/acpi', '/proc/scsi'])
    assert.ok(rules.masked.includes(p), p);
  assert.deepEqual(procArgs({ readonly: ['/proc/sys'], masked: ['/proc/kcore'] }), [
    '--proc-ro',
    '/proc/sys',
    '--proc-mask',
    '/proc/kcore',
  ]);
  assert.deepEqual(procRules({}), { readonly: [], masked: [] });
});

test('a /proc rule outside /proc or with .. is refused, naming the list', () => {
  for (const bad of [
    '/etc/shadow',
    '/proc',
    '/proc/',
    '/proc/../etc',
    '/proc/sys/../../etc',
    'proc/sys',
    '/proc//sys',
    '/proc/./sys',
  ]) {
    assert.throws(
      () => procRules({ isolation: { proc: { linux: { readonly: [bad] } } } }),
      (e) => isJailyardError(e) && e.code === 'JY_ERR_PARAM_VALUE' && e.place.param === 'isolation.proc.readonly',
      bad,
    );
  }
});

test('kernel-state file system types: sysfs and cgroup among them; a malformed type is refused', () => {
  const types = kernelFsTypes(loadDefaults());
  for (const t of ['sysfs', 'cgroup', 'cgroup2', 'securityfs', 'debugfs']) assert.ok(types.includes(t), t);
  assert.deepEqual(kernelFsArgs(['sysfs', 'cgroup']), ['--ro-fstype', 'sysfs', '--ro-fstype', 'cgroup']);
  assert.throws(
    () => kernelFsTypes({ isolation: { kernelfs: { linux: ['sys fs'] } } }),
    (e) => isJailyardError(e) && e.place.param === 'isolation.kernelfs',
  );
});
