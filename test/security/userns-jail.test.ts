// User-namespace jails (issue 11, parameter `userns`, docs/userns.md): the jail's root is
// uid 0 inside and an unprivileged range uid on the host, for every strategy. Real jails,
// checked from the host: process credentials, file owners on disk, setuid bits, sysctls,
// the keyring, the shared skeleton, disjoint ranges and no leftovers.
// Addresses: 198.51.100.240-249 (this area's sub-range).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, readFileSync, readdirSync, readlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { SecurityHost, STRATEGIES, miniRoot, type Strategy } from './helpers.ts';
import { recordedRange, usernsConfig, type UidRange } from '../../src/platform/linux/userns.ts';
import { openStore } from '../../src/store/sqlite.ts';

let h: SecurityHost;
const name = (s: Strategy) => `un-${s}`;

before(async () => {
  h = await SecurityHost.open('userns');
  // `full` copies its whole skeleton into the jail (and, with userns, shifts every owner):
  // the host's root would be gigabytes (~40 s), a small root says the same
  await h.skeleton('mini', miniRoot(join(h.state, 'mini-root')));
  for (const [i, s] of STRATEGIES.entries()) {
    // nullfs gets an address (a netns made by the addresses step), the others none (a new
    // netns made by the stage); both are owned by the host's user namespace
    // basejail gets the plan's /dev (mount.devfs, made host-side), the others the stage's
    const extra = [...(i === 0 ? ['ip4.addr=198.51.100.240/24'] : []), ...(s === 'basejail' ? ['mount.devfs'] : [])];
    const skeleton = s === 'full' ? { skeleton: 'mini' } : {};
    await h.jail(name(s), { strategy: s, ...skeleton, params: ['userns', ...extra] });
  }
});

after(async () => {
  await h?.close();
});

function range(jail: string): UidRange {
  const r = recordedRange(h.jailDir(jail));
  assert.ok(r, `${jail} has no recorded range`);
  return r;
}

function initPid(jail: string): number {
  const store = openStore(h.state);
  try {
    const pid = store.requireJail(jail).runtime?.create?.initPid;
    assert.ok(pid, `${jail} is not running`);
    return pid;
  } finally {
    store.close();
  }
}

/** uid and gid lines of /proc/PID/status: [real, effective, saved, fs]. */
function ids(pid: number): { uid: number[]; gid: number[] } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n');
  const line = (k: string) =>
    status
      .find((l) => l.startsWith(`${k}:`))!
      .split(/\s+/)
      .slice(1)
      .map(Number);
  return { uid: line('Uid'), gid: line('Gid') };
}

/** Host pids of every process in the jail's pid namespace. */
function jailPids(jail: string): number[] {
  const ns = readlinkSync(`/proc/${initPid(jail)}/ns/pid`);
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((p) => {
      try {
        return readlinkSync(`/proc/${p}/ns/pid`) === ns;
      } catch {
        return false;
      }
    });
}

for (const s of STRATEGIES) {
  test(`userns ${s}: root inside, the range's first uid on the host (pid 1 and exec'd programs)`, async () => {
    const jail = name(s);
    const r = range(jail);
    assert.ok(r.base >= 65536 && r.count === usernsConfig().size);
    // checked while an exec'd program still runs
    const running = h.sh(jail, 'id -u; id -g; exec sleep 2');
    const execd = (p: number) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8') === 'sleep\x002\x00';
      } catch {
        return false;
      }
    };
    let pids: number[] = [];
    for (let i = 0; i < 200 && !pids.some(execd); i++) {
      await new Promise((r) => setTimeout(r, 50));
      pids = jailPids(jail);
    }
    assert.ok(pids.length >= 3 && pids.some(execd), `tini, the holder and the exec'd sleep: ${pids.length}`);
    for (const p of pids) {
      const { uid, gid } = ids(p);
      assert.deepEqual(uid, [r.base, r.base, r.base, r.base], `pid ${p} runs as host uid ${uid}`);
      assert.deepEqual(gid, [r.base, r.base, r.base, r.base], `pid ${p} runs as host gid ${gid}`);
    }
    const inside = await running;
    assert.equal(inside.code, 0, inside.stderr);
    assert.deepEqual(inside.stdout.trim().split('\n'), ['0', '0']);
  });

  test(`userns ${s}: files the jail makes are owned by the range on disk, setuid means a range uid`, async () => {
    const jail = name(s);
    const r = range(jail);
    const made = await h.sh(
      jail,
      'set -e; touch /tmp/f /root/f /etc/f /var/f; chown 1000:1000 /root/f; cp /bin/true /tmp/suid; chmod 4755 /tmp/suid; stat -c "%u %g %a" /tmp/suid',
    );
    assert.equal(made.code, 0, made.stderr);
    assert.equal(made.stdout.trim(), '0 0 4755', 'inside: a setuid-root file');
    const pid = initPid(jail);
    // through /proc/PID/root the host sees the jail's writable mounts as they are on disk
    for (const f of ['/tmp/f', '/etc/f', '/var/f']) {
      const st = lstatSync(`/proc/${pid}/root${f}`);
      assert.equal(st.uid, r.base, `${f} on disk is owned by ${st.uid}`);
      assert.equal(st.gid, r.base, `${f} on disk has group ${st.gid}`);
    }
    assert.equal(lstatSync(`/proc/${pid}/root/root/f`).uid, r.base + 1000, 'the jail user 1000 is range uid base+1000');
    const suid = lstatSync(`/proc/${pid}/root/tmp/suid`);
    assert.equal(suid.mode & 0o7777, 0o4755);
    assert.equal(suid.uid, r.base, 'setuid to the range root, not to host root');
    if (s !== 'overlay') {
      // the jail's root folder itself is its writable part
      assert.equal(lstatSync(join(h.jailDir(jail), 'root', 'tmp', 'f')).uid, r.base);
    }
  });

  test(`userns ${s}: the jail's root owns its /dev as without a user namespace`, async () => {
    const r = await h.sh(name(s), 'touch /dev/jy-x && stat -c "%u %g" /dev /dev/jy-x /dev/shm && rm /dev/jy-x');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '0 0\n0 0\n0 0');
  });

  test(`userns ${s}: no sysctl, hostname, mount or host keyring for the jail's root`, async (t) => {
    const jail = name(s);
    const pattern = readFileSync('/proc/sys/kernel/core_pattern', 'utf8');
    const w = await h.sh(jail, 'echo "|/tmp/x" > /proc/sys/kernel/core_pattern');
    assert.notEqual(w.code, 0, 'core_pattern written');
    assert.equal(readFileSync('/proc/sys/kernel/core_pattern', 'utf8'), pattern);
    assert.notEqual((await h.sh(jail, 'hostname evil')).code, 0, 'hostname changed');
    assert.notEqual((await h.sh(jail, 'mkdir -p /mnt/x && mount -t tmpfs none /mnt/x')).code, 0, 'mounted a tmpfs');
    assert.notEqual((await h.sh(jail, 'umount /usr/bin 2>&1 || umount -l / 2>&1')).code, 0, 'unmounted something');
    // a key in host root's user keyring: its id and its description never reach the jail
    const desc = `jy-userns-${s}`;
    const id = execFileSync('keyctl', ['add', 'user', desc, 'host-secret', '@u'], { encoding: 'utf8' }).trim();
    t.after(() => execFileSync('keyctl', ['unlink', id, '@u'], { stdio: 'ignore' }));
    const k = await h.sh(
      jail,
      `cat /proc/keys 2>/dev/null; keyctl print ${id} 2>/dev/null; keyctl show @u 2>/dev/null; true`,
    );
    assert.doesNotMatch(k.stdout, /host-secret/);
    assert.ok(!k.stdout.includes(desc), `the jail sees host root's key: ${k.stdout}`);
  });
}

test('userns: the jail can still bind ports below 1024 and run programs as its users', async () => {
  const jail = name('nullfs');
  const b = await h.exec(jail, [
    'python3',
    '-c',
    'import socket; s=socket.socket(); s.bind(("198.51.100.240", 80)); print("bound")',
  ]);
  assert.equal(b.stdout.trim(), 'bound', b.stderr);
  const u = await h.exec(jail, ['id', '-u'], { user: 'nobody' });
  assert.equal(u.stdout.trim(), '65534', u.stderr);
});

test('userns: the skeleton is shared through idmapped mounts, not copied', async () => {
  const host = lstatSync('/usr/bin/ls');
  for (const [s, at] of [
    ['nullfs', '/usr/bin'],
    ['basejail', '/basejail'],
  ] as const) {
    const jail = name(s);
    const pid = initPid(jail);
    const inJail = lstatSync(`/proc/${pid}/root${at === '/usr/bin' ? '' : at}/usr/bin/ls`);
    assert.equal(inJail.ino, host.ino, `${s}: /usr/bin/ls is the host's inode`);
    assert.equal(inJail.dev, host.dev);
    // the mount holding /usr/bin (basejail: the whole skeleton at /basejail, or a live
    // skeleton's romounts dirs below it)
    const points = at === '/usr/bin' ? [at] : [at, `${at}/usr/bin`];
    const line = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .find((l) => points.includes(l.split(' ')[4]!));
    assert.ok(
      line?.split(' ')[5]?.split(',').includes('idmapped'),
      `${s}: ${points.join(' or ')} is not idmapped: ${line}`,
    );
    const seen = await h.sh(jail, 'stat -c "%u %g" /usr/bin/ls');
    assert.equal(seen.stdout.trim(), '0 0', `${s}: inside, the skeleton's files are root's`);
  }
  // the overlay strategy: the skeleton is the lower layer, seen through the idmapping
  const ov = await h.sh(name('overlay'), 'stat -c "%u %g" /usr/bin/ls /etc/hostname');
  assert.equal(ov.stdout.trim(), '0 0\n0 0');
  // no idmapped lower left attached in the host's mount table (overlayfs keeps its clones)
  assert.ok(
    !readFileSync('/proc/self/mountinfo', 'utf8').includes(`${h.state}/jails/${name('overlay')}/idmap/`),
    'a temporary idmapped lower is still mounted',
  );
});

test('userns: jails get disjoint ranges, recorded host-wide', async () => {
  const ranges = STRATEGIES.map((s) => range(name(s)));
  const sorted = [...ranges].sort((a, b) => a.base - b.base);
  for (let i = 1; i < sorted.length; i++)
    assert.ok(sorted[i]!.base >= sorted[i - 1]!.base + sorted[i - 1]!.count, 'ranges overlap');
  const cfg = usernsConfig();
  for (const [i, s] of STRATEGIES.entries()) {
    const slot = JSON.parse(readFileSync(join(cfg.registry, String(ranges[i]!.slot)), 'utf8'));
    assert.equal(slot.stateDir, h.jailDir(name(s)));
  }
  assert.notEqual(ids(initPid(name('nullfs'))).uid[0], ids(initPid(name('overlay'))).uid[0]);
});

test("userns: a restart keeps the range and the jail's files", async () => {
  const jail = name('nullfs');
  const r = range(jail);
  const restarted = await h.jy('restart', jail);
  assert.equal(restarted.code, 0, restarted.stderr);
  assert.deepEqual(range(jail), r);
  const again = await h.sh(jail, 'stat -c "%u" /tmp/f /tmp/suid && echo more >> /tmp/f');
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout.trim(), '0\n0');
  assert.ok(existsSync(join(h.jailDir(jail), 'userns.json')));
});

test('userns: a nested jail with a user namespace of its own is refused at its mounts step, nothing left', async (t) => {
  await h.jail('unp', { params: ['children.max=1', 'allow.jails'] });
  await h.jail('unp.kid', { params: ['userns'], start: false });
  const r = await h.jy('start', 'unp.kid');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /parameter "userns", step mount: a nested jail cannot have a user namespace of its own/);
  const store = openStore(h.state);
  t.after(() => store.close());
  assert.equal(store.requireJail('unp.kid').runtime?.create, undefined);
});
