// Issue 11 items 1, 5 (capabilities), 6, 13 (the stage's command line): what a jailed root
// reaches of the kernel through what jy-stage hands it. /proc/sys and friends are read-only,
// kcore/keys and the rest masked (defaults isolation.proc), the seccomp filter denies what
// Docker's denies (also through int 0x80), no CAP_NET_RAW by default, host root's keyring
// out of reach, no descriptor of the host crosses, and no host path in the stage's cmdline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { PING_PY, StageHost, buildProbe, probeResults, sh, waitForLog, type StageJail } from './stage-fixture.ts';
import { JY_STAGE } from '../../src/platform/linux/native.ts';
import { childrenOf } from '../../src/platform/linux/proc.ts';

let host: StageHost;
let jail: StageJail;
let probeLog = '';

before(async () => {
  host = new StageHost('stage-kernel');
  jail = host.define({ 'ip4.addr': '198.51.100.160/24' });
  // pid 1's own child runs the probe: exactly the filter and capabilities the stage installed
  await host.start(jail, {
    beforeCreate: (j) => {
      buildProbe(`${j.root}/tmp/probe`);
      writeFileSync(`${j.root}/tmp/ping.py`, PING_PY);
    },
    holder: [
      '/bin/sh',
      '-c',
      'grep -E "^Cap(Bnd|Eff)" /proc/self/status; /tmp/probe; python3 /tmp/ping.py 198.51.100.1; echo probe-done; exec sleep infinity',
    ],
  });
  probeLog = await waitForLog(jail, 'probe-done');
});

after(async () => {
  await host.close();
});

test('host sysctls are read-only in the jail: core_pattern, modprobe, drop_caches, pid_max', async () => {
  // this kernel may lack some (kernel/modprobe needs CONFIG_MODULES): those must stay absent
  // drop_caches is write-only
  const read = (k: string) =>
    existsSync(`/proc/sys/${k}`) && k !== 'vm/drop_caches' ? readFileSync(`/proc/sys/${k}`, 'utf8') : undefined;
  // Each write puts back the value the host has (drop_caches: the page cache, harmless): a
  // jailyard where the write goes through (the old code did) changes nothing on this host.
  const keys: Record<string, string> = {
    'kernel/core_pattern': read('kernel/core_pattern')?.trim() ?? 'core',
    'kernel/modprobe': read('kernel/modprobe')?.trim() ?? '/sbin/modprobe',
    'vm/drop_caches': '1',
    'kernel/pid_max': read('kernel/pid_max')?.trim() ?? '32768',
  };
  const before = Object.keys(keys).map(read);
  let present = 0;
  for (const [key, value] of Object.entries(keys)) {
    const r = await sh(jail, `echo '${value}' > /proc/sys/${key}`);
    assert.notEqual(r.code, 0, `writing ${key} must fail`);
    if (existsSync(`/proc/sys/${key}`)) {
      present++;
      assert.match(r.stderr, /Read-only file system/, key);
    }
  }
  assert.ok(present >= 3, 'core_pattern, drop_caches and pid_max exist on every kernel');
  assert.deepEqual(Object.keys(keys).map(read), before, 'the host values are unchanged');
  // readable still (programs read sysctls), and the read-only mount cannot be undone
  assert.equal((await sh(jail, 'cat /proc/sys/kernel/core_pattern')).stdout, read('kernel/core_pattern'));
  assert.notEqual((await sh(jail, 'mount -o remount,rw /proc/sys')).code, 0);
  assert.notEqual((await sh(jail, 'umount /proc/sys')).code, 0);
  assert.match(
    (await sh(jail, 'grep " /proc/sys " /proc/self/mountinfo')).stdout,
    /\/proc\/sys \S*ro,nosuid,nodev,noexec/,
  );
  // the jail's own network namespace's sysctls are read-only too (as in Docker)
  assert.notEqual((await sh(jail, 'echo 1 > /proc/sys/net/ipv4/ip_forward')).code, 0);
});

test('/proc/sysrq-trigger cannot be written; /proc/kcore and /proc/keys read nothing', async () => {
  const sysrq = await sh(jail, 'echo h > /proc/sysrq-trigger');
  assert.notEqual(sysrq.code, 0);
  if (existsSync('/proc/sysrq-trigger')) assert.match(sysrq.stderr, /Read-only file system/);
  for (const f of ['/proc/kcore', '/proc/keys', '/proc/key-users', '/proc/timer_list', '/proc/sched_debug']) {
    const r = await sh(jail, `test -e ${f} || { echo absent; exit 0; }; wc -c < ${f}`);
    assert.ok(['0', 'absent'].includes(r.stdout.trim()), `${f} reads nothing: ${r.stdout} ${r.stderr}`);
  }
  for (const d of ['/proc/acpi', '/proc/scsi', '/proc/asound']) {
    const r = await sh(jail, `test -d ${d} || { echo absent; exit 0; }; ls -A ${d} | wc -l`);
    assert.ok(['0', 'absent'].includes(r.stdout.trim()), `${d} is empty: ${r.stdout}`);
  }
  assert.notEqual((await sh(jail, 'umount /proc/kcore')).code, 0, 'the mask stays');
});

test('the jail has no sysfs', async () => {
  const r = await sh(
    jail,
    'grep -c " sysfs " /proc/self/mountinfo; test -e /sys/kernel && echo has-kernel || echo no-kernel',
  );
  assert.equal(r.stdout.trim().split('\n')[0], '0');
  assert.match(r.stdout, /no-kernel/);
});

test('seccomp: denied calls fail with EPERM, also through int 0x80; clone3 ENOSYS; ordinary calls work', (t) => {
  const p = probeResults(probeLog);
  const denied = [
    'keyctl',
    'add_key',
    'unshare_user',
    'unshare_mnt',
    'mount',
    'umount',
    'open_tree',
    'open_tree_attr',
    'setns',
    'bpf',
    'perf_event_open',
    'userfaultfd',
    'io_uring_setup',
    'syslog',
    'tiocsti',
    'personality_norandom',
    'socket_raw',
    'socket_packet',
    'socket_alg',
    'socket_vsock',
  ];
  for (const call of denied) assert.equal(p[call], 'EPERM', `${call}: ${probeLog}`);
  if (p.getpid_i386 === 'NOIA32') {
    // no IA32 emulation in this kernel: int 0x80 reaches no system call at all
    t.diagnostic('this kernel has no IA32 emulation: the i386 calls are not reachable');
    assert.deepEqual([p.keyctl_i386, p.unshare_i386], ['NOIA32', 'NOIA32'], probeLog);
  } else {
    assert.equal(p.keyctl_i386, 'EPERM', 'i386 keyctl through int 0x80');
    assert.equal(p.unshare_i386, 'EPERM', 'i386 unshare(CLONE_NEWUSER) through int 0x80');
    assert.equal(p.getpid_i386, 'ok', `getpid_i386: ${probeLog}`);
  }
  assert.equal(p.clone3, 'ENOSYS');
  for (const call of ['unshare_files', 'personality_query', 'socket_netlink', 'socket_tcp', 'fork'])
    assert.equal(p[call], 'ok', `${call}: ${probeLog}`);
  // util-linux's unshare: no user namespace for a jailed root
  assert.equal(
    readFileSync(`/proc/${jail.facts!.initPid}/status`, 'utf8').match(/^Seccomp:\s+(\d)/m)?.[1],
    '2',
    'pid 1 runs under a filter',
  );
});

test('capabilities: no CAP_NET_RAW by default (no raw socket, no ping)', async () => {
  const bnd = BigInt(
    `0x${/CapBnd:\s+([0-9a-f]+)/.exec(readFileSync(`/proc/${jail.facts!.initPid}/status`, 'utf8'))![1]}`,
  );
  assert.equal((bnd >> 13n) & 1n, 0n, "net_raw is not in pid 1's bounding set");
  assert.equal((bnd >> 21n) & 1n, 0n, "sys_admin is not in pid 1's bounding set");
  assert.equal(probeResults(probeLog).ping, 'Operation_not_permitted', probeLog);
  const r = await sh(jail, 'python3 /tmp/ping.py 198.51.100.1');
  assert.equal(r.stdout.trim(), 'ping=Operation_not_permitted');
  const raw = await sh(
    jail,
    `python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)'`,
  );
  assert.notEqual(raw.code, 0);
  assert.match(raw.stderr, /Operation not permitted/);
});

test("host root's keyring is out of reach: its key is not readable, /proc/keys is empty", async (t) => {
  const id = execFileSync('keyctl', ['add', 'user', 'jy-stage-secret', 's3cret-of-the-host', '@u'], {
    encoding: 'utf8',
  }).trim();
  t.after(() => execFileSync('keyctl', ['unlink', id, '@u']));
  assert.equal(
    execFileSync('keyctl', ['print', id], { encoding: 'utf8' }).trim(),
    's3cret-of-the-host',
    'readable on the host',
  );
  const r = await sh(jail, `keyctl print ${id}; keyctl show @u; cat /proc/keys`);
  assert.doesNotMatch(r.stdout, /s3cret-of-the-host|jy-stage-secret/);
  assert.doesNotMatch(r.stderr, /s3cret-of-the-host/);
  // pid 1's own lineage (filter and session keyring of the stage)
  assert.doesNotMatch(probeLog, /s3cret/);
  const holder = readFileSync(`/proc/${jail.facts!.initPid}/status`, 'utf8');
  assert.match(holder, /^Seccomp:\s+2/m);
});

test("no host path, cgroup or pid in the stage's command line", () => {
  const chain = [jail.facts!.holderPid!, ...childrenOf(jail.facts!.holderPid!)].filter(
    (p) => p !== jail.facts!.initPid,
  );
  assert.ok(chain.length >= 1);
  for (const pid of chain) {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    assert.equal(cmdline, 'jy-stage\0', `pid ${pid}: ${JSON.stringify(cmdline.slice(0, 200))}`);
  }
  const tini = readFileSync(`/proc/${jail.facts!.initPid}/cmdline`, 'utf8');
  assert.ok(!tini.includes(host.state), `pid 1: ${tini}`);
});

test("only stdin, stdout and stderr cross into the jail's pid 1", async (t) => {
  // a descriptor of the host's root handed to the stage (as a careless caller might) must
  // not reach the jail: through /proc/self/fd/N it would be the host's whole tree
  const probeJail = host.define();
  await host.start(probeJail);
  const facts = probeJail.facts!;
  const fdsOf = (pid: number) =>
    readdirSync(`/proc/${pid}/fd`)
      .map(Number)
      .sort((a, b) => a - b);
  assert.deepEqual(
    fdsOf(facts.initPid),
    [0, 1, 2],
    `pid 1's descriptors: ${fdsOf(facts.initPid).map((f) => readlinkSync(`/proc/${facts.initPid}/fd/${f}`))}`,
  );
  await host.stop(probeJail);

  // jy-stage started directly with an extra inherited descriptor (fd 3: the host's /)
  const direct = await host.prepare(host.define());
  const rootFd = openSync('/', 'r');
  t.after(async () => {
    closeSync(rootFd);
    await host.stop(direct);
  });
  const child = spawn(
    JY_STAGE,
    [
      '--unshare-net',
      direct.root,
      'fdtest',
      '/usr/bin/tini-static',
      '0',
      'makedev',
      '--',
      '/bin/sh',
      '-c',
      'ls /proc/self/fd; echo fds-done; exec sleep 0.5',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe', rootFd],
    },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  assert.equal(code, 0, out);
  const listed = out
    .slice(out.indexOf('ready') + 5, out.indexOf('fds-done'))
    .trim()
    .split(/\s+/)
    .map(Number);
  // 3: the descriptor ls itself opens for the directory it lists
  assert.deepEqual(listed, [0, 1, 2, 3], `descriptors in the jail: ${out}`);
});

test('a sysfs or cgroup mount the administrator gives a jail is read-only inside it', async (t) => {
  // mount/mount.fstab lines may give a jail the kernel's own state (sysfs: uevent_helper,
  // firmware, devices; a cgroup hierarchy: release_agent, new groups); the jail gets it
  // read-only in its own namespace
  const k = host.define();
  k.plan.mkdirs.push(`${k.root}/sys`, `${k.root}/cg`);
  k.plan.mounts.push({
    kind: 'fs',
    fstype: 'sysfs',
    source: 'sysfs',
    target: `${k.root}/sys`,
    options: [],
    origin: 'mount',
  });
  k.plan.mounts.push({
    kind: 'bind',
    source: '/sys/fs/cgroup/pids',
    target: `${k.root}/cg`,
    readonly: false,
    origin: 'mount',
  });
  await host.start(k);
  const group = `/sys/fs/cgroup/pids/jy-stage-test-${process.pid}`;
  t.after(async () => {
    if (existsSync(group)) execFileSync('rmdir', [group]);
    await host.stop(k);
  });
  const info = (await sh(k, 'cat /proc/self/mountinfo')).stdout;
  assert.match(info, / \/sys ro,nosuid,nodev,noexec\S*.* - sysfs /);
  assert.match(info, / \/cg ro,nosuid,nodev,noexec\S*.* - cgroup /);
  // writes put back the host's own value / make a group the test removes: harmless on a
  // jailyard that lets them through
  const thp = '/sys/kernel/mm/transparent_hugepage/enabled';
  if (existsSync(thp)) {
    const mode = /\[(\w+)\]/.exec(readFileSync(thp, 'utf8'))![1];
    const r = await sh(k, `echo ${mode} > ${thp}`);
    assert.match(r.stderr, /Read-only file system/);
  }
  const mk = await sh(k, `mkdir /cg/${group.split('/').pop()}`);
  assert.notEqual(mk.code, 0);
  assert.match(mk.stderr, /Read-only file system/);
  assert.ok(!existsSync(group));
});
