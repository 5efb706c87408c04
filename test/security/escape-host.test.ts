// The escape suite (issue 11), part two: attacks a jailed root aims at the host's own steps
// and at other jails. Symlinks planted where start, stop, remove and upgrade create, mount,
// write or delete (the host's victim must stay untouched), host binaries reached through
// /proc while jailyard enters the jail (the runc CVE-2019-5736 class), processes and
// metadata of another jail, and a real fork bomb. Every strategy where the steps differ.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  hostRunMs,
  SecurityHost,
  STRATEGIES,
  jailModes,
  miniRoot,
  securityAddr,
  type CliResult,
  type ExecOutcome,
  type JailMode,
} from './helpers.ts';

let h: SecurityHost;
/** A host directory with a tmpfs of the test's own at VICTIM/m: planted symlinks point there. */
let victim = '';
const keepText = 'host file: must never change\n';

before(async () => {
  h = await SecurityHost.open('sec-host');
  miniRoot(join(h.state, 'mini-root'));
  await h.skeleton('mini', join(h.state, 'mini-root'));
  // outside the state folder: the leak check counts what is below it as the test's own
  victim = mkdtempSync(join(tmpdir(), 'jy-sec-victim-'));
  mkdirSync(`${victim}/m`, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'jy-sec-victim', `${victim}/m`]);
  writeFileSync(`${victim}/m/keep`, keepText);
});

after(async () => {
  try {
    await h?.close();
  } finally {
    // whatever an attack that got through mounted on the victim, then the victim itself
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '');
    for (const m of mounts.filter((m) => m && (m === victim || m.startsWith(`${victim}/`))).reverse()) {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    }
    if (victim) rmSync(victim, { recursive: true, force: true });
  }
});

/** The victim as it must stay: the tmpfs mounted, only `keep` in it, `keep` unchanged, nothing mounted below. */
function assertVictimUntouched(when: string): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '');
  assert.ok(mounts.includes(`${victim}/m`), `${when}: the host's own mount at the symlink's target was unmounted`);
  const below = mounts.filter((m) => m.startsWith(`${victim}/m/`));
  assert.deepEqual(below, [], `${when}: something was mounted on the host through a planted symlink`);
  assert.deepEqual(
    readdirSync(`${victim}/m`),
    ['keep'],
    `${when}: a host step created files through a planted symlink`,
  );
  assert.equal(
    readFileSync(`${victim}/m/keep`, 'utf8'),
    keepText,
    `${when}: a host step wrote through a planted symlink`,
  );
  assert.deepEqual(readdirSync(victim), ['m'], `${when}: a host step created files next to the victim`);
}

const breaches = (r: ExecOutcome): string[] => r.stdout.split('\n').filter((l) => l.startsWith('BREACH'));

for (const mode of jailModes()) {
  STRATEGIES.forEach((strategy, i) => {
    const name = `hst-${mode.name === 'root' ? 'r' : 'u'}${i}`;
    describe(`symlinks against host steps (${mode.name}, ${strategy})`, { timeout: 240_000 }, () => {
      before(async () => {
        await h.jail(name, { strategy, mode, skeleton: strategy === 'full' ? 'mini' : 'host' });
      });

      let restarted: CliResult | undefined;

      test('symlinks and a directory link planted for stop and remove: deleting the jail deletes nothing of the host', async () => {
        const r = await h.sh(
          name,
          `
          V=${victim}
          ln -s $V/m/keep /tmp/x; ln -s $V/m /tmp/dir; ln -s / /tmp/root
          mkdir -p /var/tmp /root; ln -s $V/m /var/tmp/v; ln -s $V/m/keep /root/keep
          ln $V/m/keep /tmp/hard 2>/dev/null && echo "BREACH hard link to a host file"
          true`,
        );
        assert.deepEqual(breaches(r), [], r.stdout);
        const s = await h.jy('restart', name);
        assert.equal(s.code, 0, s.stderr);
        assertVictimUntouched('after restart');
        await h.assertAlive(name);
        // the remove itself happens at the end (close); the victim is checked after it below
      });

      test('mount targets and their parents replaced by symlinks to a host dir: stop and start touch nothing there', async () => {
        // The jail owns its tree: it moves each parent of a mount point aside (the mounts go
        // with it) and leaves a symlink to the host's victim in its place.
        const r = await h.sh(
          name,
          `
          V=${victim}/m
          # jailyard's names kept as real folders, the holder's bind target a symlink
          mv /.jailyard /.jailyard.jyold3 && mkdir /.jailyard && : > /.jailyard/tini &&
            ln -s "$V/hold" /.jailyard/hold && echo "planted /.jailyard/hold"
          for m in $(awk '$5 != "/" {print $5}' /proc/self/mountinfo | sort -u); do
            case "$m" in /proc|/proc/*|/dev|/dev/*|/sys|/sys/*) continue;; esac
            p=""
            for c in $(echo "$m" | tr / ' '); do
              p="$p/$c"
              awk -v p="$p" '$5 == p {f=1} END {exit !f}' /proc/self/mountinfo && continue
              [ -L "$p" ] && break
              mv "$p" "$p.jyold" 2>/dev/null && ln -s "$V" "$p" && echo "planted $p"
              break
            done
          done
          # and the names the stage makes in every root
          for p in /.jailyard/tini /run/jailyard; do
            [ -L "$p" ] || { mv "$p" "$p.jyold2" 2>/dev/null; ln -s "$V" "$p" 2>/dev/null && echo "planted $p"; }
          done
          true`,
        );
        assert.match(r.stdout, /planted/, `nothing could be planted: ${r.stdout} ${r.stderr}`);
        let s = await h.jy('stop', name);
        assertVictimUntouched('after stop');
        assert.equal(s.code, 0, s.stderr);
        s = await h.jy('start', name);
        restarted = s;
        assertVictimUntouched('after start');
      });

      test("after planting those symlinks the jail starts again (what it put at jailyard's names is moved aside)", async () => {
        assert.ok(restarted, 'the attack above did not run');
        assert.equal(restarted.code, 0, `the jail does not start again after the attack: ${restarted.stderr}`);
        await h.assertAlive(name);
      });
    });
  });
}

describe('after every jail is removed', () => {
  test('the victim of the planted symlinks is untouched', async () => {
    await h.removeAll();
    assertVictimUntouched('after remove');
  });
});

describe('upgrade writes nothing through symlinks the jail planted in its config', { timeout: 120_000 }, () => {
  const tree = (dir: string, files: Record<string, string>): string => {
    for (const [rel, text] of Object.entries(files)) {
      mkdirSync(join(dir, rel, '..'), { recursive: true });
      writeFileSync(join(dir, rel), text);
    }
    return dir;
  };
  before(async () => {
    const v1 = tree(join(h.state, 'up1'), { 'etc/app.conf': 'one\n', 'etc/sub/f.conf': 'x\n', 'etc/keep.conf': 'k\n' });
    const v2 = tree(join(h.state, 'up2'), {
      'etc/app.conf': 'two\n',
      'etc/sub/f.conf': 'y\n',
      'etc/keep.conf': 'k\n',
      'etc/new.conf': 'new\n',
    });
    for (const v of [v1, v2]) assert.equal((await h.jy('skel', 'create', 'up', '--copy', v)).code, 0);
  });

  for (const cow of [true, false]) {
    test(`${cow ? 'copy-on-write /etc' : 'copied /etc'}: app.conf, sub/ and new.conf are symlinks to the host`, async () => {
      const name = `upg-${cow ? 'cow' : 'copy'}`;
      await h.jail(name, { skeleton: 'up@1', start: false, params: cow ? ['skeleton.cow=etc'] : ['skeleton.cow='] });
      // The jail is stopped: what its root wrote while it ran is in its tree (a copied
      // /etc) or in its upper layer (a copy-on-write /etc). Planted here the same way.
      const etc = cow ? join(h.jailDir(name), 'cow/etc/upper') : join(h.jailDir(name), 'root/etc');
      mkdirSync(etc, { recursive: true });
      for (const f of ['app.conf', 'sub', 'new.conf']) rmSync(join(etc, f), { recursive: true, force: true });
      execFileSync('ln', ['-s', `${victim}/m/keep`, join(etc, 'app.conf')]);
      execFileSync('ln', ['-s', `${victim}/m`, join(etc, 'sub')]);
      execFileSync('ln', ['-s', `${victim}/m/new.conf`, join(etc, 'new.conf')]);
      const r = await h.jy('upgrade', name, '--to', 'up@2', '--json');
      assertVictimUntouched(`upgrade (${r.code === 0 ? 'succeeded' : `failed: ${r.stderr.trim()}`})`);
      const rm = await h.jy('remove', name);
      assert.equal(rm.code, 0, rm.stderr);
      h.jails.delete(name);
      assertVictimUntouched('after remove');
    });
  }
});

describe('host binaries through /proc while jailyard enters the jail (CVE-2019-5736 class)', {
  timeout: 120_000,
}, () => {
  const modes: JailMode[] = jailModes();
  for (const mode of modes) {
    test(`${mode.name}: the jail never writes or traces jailyard's helpers, nor reaches the host root`, async () => {
      const name = `race-${mode.name === 'root' ? 'r' : 'u'}`;
      await h.jail(name, { mode, strategy: 'nullfs' });
      const bins = ['jy-enter', 'jy-stage', 'jy-spawner']
        .map((b) => join(import.meta.dirname, '../../native/build', b))
        .filter((b) => existsSync(b));
      const sums = bins.map((b) => createHash('sha256').update(readFileSync(b)).digest('hex'));
      writeFileSync(`${h.state}/HOST-MARKER`, 'host\n');
      // in the jail: watch /proc for 4 s for any process whose exe or root is not the jail's
      const watcher = h.exec(
        name,
        [
          'python3',
          '-c',
          `
import os, time, ctypes
libc = ctypes.CDLL(None, use_errno=True)
seen = set(); end = time.time() + 4; me = str(os.getpid())
while time.time() < end:
    for p in os.listdir("/proc"):
        if not p.isdigit() or p == me or p in seen: continue
        try:
            if os.path.exists("/proc/%s/root${h.state}/HOST-MARKER" % p):
                print("BREACH host root through /proc/%s/root" % p); seen.add(p)
            fd = os.open("/proc/%s/exe" % p, os.O_PATH)
            exe = os.readlink("/proc/%s/exe" % p)
            if "jy-" in exe or "/.jailyard/" in exe:
                # tini is the jail's own pid 1 (the jail's credentials): tracing it gains nothing;
                # jailyard's helpers on their way in must not be traceable
                if "jy-" in exe and libc.ptrace(16, int(p), None, None) == 0:   # PTRACE_ATTACH
                    print("BREACH ptrace attached to", exe); libc.ptrace(17, int(p), None, None)
                try:
                    w = os.open("/proc/self/fd/%d" % fd, os.O_WRONLY)
                    print("BREACH host binary opened for writing:", exe); os.close(w)
                except OSError:
                    pass
            os.close(fd)
        except OSError:
            pass
print("done")
`,
        ],
        { timeoutMs: 30_000 },
      );
      // meanwhile the host enters the jail again and again
      const t0 = Date.now();
      while (Date.now() - t0 < 3500) await h.exec(name, ['/bin/true']);
      const r = await watcher;
      assert.match(r.stdout, /done/, r.stderr);
      assert.deepEqual(breaches(r), [], r.stdout);
      for (const [k, b] of bins.entries()) {
        assert.equal(createHash('sha256').update(readFileSync(b)).digest('hex'), sums[k], `${b} changed`);
      }
      await h.assertAlive(name);
    });
  }
});

describe('across jails', { timeout: 180_000 }, () => {
  const secret = randomBytes(8).toString('hex');
  before(async () => {
    await h.jail('xa', { strategy: 'nullfs', params: [`ip4.addr=${securityAddr(10)}`] });
    const params = [`ip4.addr=${securityAddr(11)}`, `env.secret=env-${secret}`, `meta.secret=meta-${secret}`];
    await h.jail('xb', { strategy: 'overlay', params });
    await h.exec('xb', ['/bin/sh', '-c', `echo file-${secret} > /root/secret; nohup sleep 600.5 >/dev/null 2>&1 &`]);
  });

  test('a jail reads nothing of another jail (env, meta, files) through /run, /proc or its tree', async () => {
    const r = await h.sh(
      'xa',
      `
      grep -rs "${secret}" /run /tmp /var/run /etc /root /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | head
      cat /run/jailyard/* 2>/dev/null; true`,
    );
    assert.ok(!r.stdout.includes(secret), `jail xa read jail xb's data:\n${r.stdout}`);
  });

  test("a jail neither sees, signals nor traces another jail's processes", async () => {
    const { cgroups } = h.facts('xb');
    const group = cgroups.find((c) => c.includes('/pids/')) ?? cgroups[0]!;
    const hostPidsOfB = readFileSync(join(group, 'cgroup.procs'), 'utf8').trim().split('\n').map(Number);
    assert.ok(hostPidsOfB.length >= 2, 'xb runs processes');
    const r = await h.exec('xa', [
      'python3',
      '-c',
      `
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            if ("600" + ".5") in open("/proc/%s/cmdline" % d).read(): print("BREACH xb's process visible:", d)
        except OSError: pass
for pid in ${JSON.stringify(hostPidsOfB)}:
    if os.path.exists("/proc/%d" % pid): continue
    try: os.kill(pid, 9); print("BREACH killed", pid)
    except OSError: pass
    if libc.syscall(101, 16, pid, 0, 0) == 0: print("BREACH ptrace attach", pid)
`,
    ]);
    assert.deepEqual(breaches(r), [], r.stdout + r.stderr);
    for (const pid of hostPidsOfB) process.kill(pid, 0);
  });

  test("kill -9 -1 in one jail ends only that jail's processes; the host and the other jail go on", async (t) => {
    const sleeper = execFileSync('sh', ['-c', 'sleep 60 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).trim();
    t.after(() => process.kill(Number(sleeper), 'SIGKILL'));
    await h.exec('xa', ['/bin/sh', '-c', 'kill -9 -1; true']);
    process.kill(Number(sleeper), 0);
    const r = await h.sh('xb', 'cat /root/secret; ps ax | grep -c "[s]leep 600.5"');
    assert.equal(r.stdout, `file-${secret}\n1\n`, r.stderr);
    // the jail that killed its own processes is started again and works
    const s = await h.jy('restart', 'xa');
    assert.equal(s.code, 0, s.stderr);
    await h.assertAlive('xa');
  });
});

describe('fork bomb', { timeout: 120_000 }, () => {
  test('an exponential fork bomb under limits.procs: the host stays responsive and the jail can be stopped', async () => {
    await h.jail('bomb', { strategy: 'nullfs', params: ['limits.procs=64', 'limits.memory=256M', 'stop.timeout=5'] });
    const bomb = h.sh('bomb', 'b() { b | b & }; b', { timeoutMs: 8000 }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 2000));
    const { cgroups } = h.facts('bomb');
    const pidsGroup = cgroups.find((c) => c.includes('/pids/'));
    if (pidsGroup) {
      const n = readFileSync(join(pidsGroup, 'pids.current'), 'utf8').trim();
      assert.ok(Number(n) <= 64, `the bomb has ${n} processes, over limits.procs`);
    }
    const hostMs = hostRunMs();
    assert.ok(hostMs < 1000, `the host is not responsive: ${hostMs} ms to run a program`);
    const t1 = Date.now();
    const s = await h.jy('stop', 'bomb');
    assert.equal(s.code, 0, `the bombed jail cannot be stopped: ${s.stderr}`);
    assert.ok(Date.now() - t1 < 20_000, `stop took ${Date.now() - t1} ms`);
    await bomb;
    assert.ok(!lstatSync(h.jailDir('bomb')).isSymbolicLink());
  });
});
