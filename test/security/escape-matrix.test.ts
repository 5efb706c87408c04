// The escape suite (issue 11): the classic attacks of a jailed root, each tried from inside
// a running jail of every skeleton strategy and of a jail without a path (and, once it exists, with a user namespace:
// see jailModes() in helpers.ts). Each case asserts that the attack fails, that the host
// is untouched, and that the jail still runs programs afterwards. One jail per strategy
// and mode, started once; the attacks run in it one after the other.
//
// An attack that reports "BREACH" lines got through: the lines name what it reached.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  statSync,
  openSync,
  closeSync,
  existsSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import {
  hostRunMs,
  SecurityHost,
  STRATEGIES,
  jailModes,
  miniRoot,
  securityAddr,
  type ExecOutcome,
  type Strategy,
} from './helpers.ts';

let h: SecurityHost;
let daemon: Awaited<ReturnType<SecurityHost['serve']>> | undefined;
/** A file on the host's root, in a directory jails see from the skeleton (usr/share). */
const victimDir = `/usr/share/jy-sec-escape-${randomBytes(4).toString('hex')}`;
const victimText = 'host file: must never change\n';
/** A key the host's root holds in its user keyring (issue 11 item 6). */
const keyName = `jy-sec-escape-${randomBytes(4).toString('hex')}`;
let keyId = '';
/** Host sysctls a jailed root must not be able to write (item 1). */
const SYSCTLS = [
  'kernel/core_pattern',
  'kernel/modprobe',
  'kernel/pid_max',
  'vm/drop_caches',
  'kernel/sysrq',
  'kernel/hostname',
  'fs/file-max',
].filter((s) => existsSync(`/proc/sys/${s}`));
const hostSysctls = new Map<string, string>();
/** The host's root disk, as major:minor. */
let rootDev = { major: 0, minor: 0 };

before(async () => {
  // the victim must exist before the skeleton is made from /
  mkdirSync(victimDir, { mode: 0o755 });
  writeFileSync(`${victimDir}/victim`, victimText, { mode: 0o644 });
  h = await SecurityHost.open('sec-escape');
  // `full` copies its whole skeleton into the jail: a small root, not the host's gigabytes
  miniRoot(join(h.state, 'mini-root'), [`${victimDir}/victim`]);
  await h.skeleton('mini', join(h.state, 'mini-root'));
  // the daemon runs as it would in production: API socket in the state folder, guest sockets
  daemon = await h.serve();
  writeFileSync(`${h.state}/HOST-MARKER`, 'host\n');
  keyId = execFileSync('keyctl', ['add', 'user', keyName, 'host-secret-payload', '@u'], { encoding: 'utf8' }).trim();
  for (const s of SYSCTLS) {
    try {
      hostSysctls.set(s, readFileSync(`/proc/sys/${s}`, 'utf8'));
    } catch {
      /* write-only (drop_caches) */
    }
  }
  const dev = statSync('/').dev;
  rootDev = {
    major: Number((BigInt(dev) >> 8n) & 0xfffn),
    minor: Number((BigInt(dev) & 0xffn) | ((BigInt(dev) >> 12n) & 0xfff00n)),
  };
});

after(async () => {
  try {
    if (keyId) execFileSync('keyctl', ['unlink', keyId, '@u'], { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
  try {
    await daemon?.stop();
    await h?.close();
  } finally {
    rmSync(victimDir, { recursive: true, force: true });
  }
});

const breaches = (r: ExecOutcome): string[] => r.stdout.split('\n').filter((l) => l.startsWith('BREACH'));
function assertNoBreach(r: ExecOutcome, what: string): void {
  assert.deepEqual(breaches(r), [], `${what} got through:\n${r.stdout}\n${r.stderr}`);
}

/** python3 -c SCRIPT in the jail (the jail's own python: a host-root skeleton has it). */
const py = (jail: string, script: string, user?: string) =>
  h.exec(jail, ['python3', '-c', script], user ? { user } : {});

// A small ctypes prelude: raw syscalls with errno, for calls no shell tool makes.
const PY_SYS = `
import ctypes, os, errno, sys
libc = ctypes.CDLL(None, use_errno=True)
def sc(nr, *args):
    r = libc.syscall(nr, *args)
    return (r, ctypes.get_errno() if r == -1 else 0)
`;

/** A jail without a path (jail(8): the parent's root; on Linux a thin jail on the implicit
 * host-root skeleton, docs/skeletons.md): the same attacks as every strategy, root mode. */
const PATHLESS = 'no path' as const;

for (const mode of jailModes()) {
  [...STRATEGIES, PATHLESS].forEach((strategy: Strategy | typeof PATHLESS, i) => {
    if (strategy === PATHLESS && mode.name !== 'root') return;
    const name = `esc-${mode.name === 'root' ? 'r' : 'u'}${i}`;
    describe(`escape (${mode.name}, ${strategy})`, { timeout: 300_000 }, () => {
      before(async () => {
        await h.jail(name, {
          ...(strategy === PATHLESS ? {} : { strategy }),
          mode,
          skeleton: strategy === PATHLESS ? null : strategy === 'full' ? 'mini' : 'host',
          params: [
            // the path-less jail's address: F3's range (198.51.100.180-189)
            `ip4.addr=${strategy === PATHLESS ? '198.51.100.186/24' : securityAddr((mode.name === 'root' ? 0 : 4) + i)}`,
            'limits.procs=128',
            'limits.memory=256M',
            'meta.secret=host-only-meta-value',
            'env.visible=1',
          ],
        });
      });

      if (mode.name === 'userns') {
        test("the mode holds: the jail's root is an unprivileged uid of the host (uid_map)", async () => {
          const r = await h.sh(name, 'cat /proc/self/uid_map');
          const [inside, outside] = r.stdout.trim().split(/\s+/).map(Number);
          assert.equal(inside, 0, r.stdout + r.stderr);
          assert.ok(outside! > 0, `the jail's root is host uid ${outside}`);
        });
      }

      test('remount a read-only mount read-write (by path and through /proc/self/fd)', async () => {
        const r = await h.sh(
          name,
          `
          ro=$(awk '$6 ~ /(^|,)ro(,|$)/ {print $5}' /proc/self/mountinfo)
          [ -n "$ro" ] || echo "NOTE no read-only mount"
          for m in $ro; do
            mount -o remount,rw "$m" 2>/dev/null
            mount -o remount,bind,rw "$m" 2>/dev/null
            exec 3<"$m" && mount -o remount,bind,rw /proc/self/fd/3 2>/dev/null; exec 3<&-
            awk -v m="$m" '$5 == m && $6 !~ /(^|,)ro(,|$)/ {print "BREACH now read-write: " m}' /proc/self/mountinfo
            if [ -d "$m" ]; then touch "$m/.jy-esc" 2>/dev/null && echo "BREACH wrote into $m" && rm -f "$m/.jy-esc"; fi
          done
          true`,
        );
        assertNoBreach(r, 'remount read-write');
        await h.assertAlive(name);
      });

      test('mount tmpfs, proc, sysfs, cgroup, a bind of /, and with the new mount API', async () => {
        const r = await h.sh(
          name,
          `
          before=$(wc -l < /proc/self/mountinfo)
          mkdir -p /tmp/m
          mount -t tmpfs x /tmp/m 2>/dev/null && echo "BREACH mount tmpfs"
          mount -t proc proc /tmp/m 2>/dev/null && echo "BREACH mount proc"
          mount -t sysfs sys /tmp/m 2>/dev/null && echo "BREACH mount sysfs"
          mount -t cgroup -o memory cgroup /tmp/m 2>/dev/null && echo "BREACH mount cgroup v1 memory"
          mount -t cgroup2 none /tmp/m 2>/dev/null && echo "BREACH mount cgroup2"
          mount --bind / /tmp/m 2>/dev/null && echo "BREACH bind of /"
          [ "$(wc -l < /proc/self/mountinfo)" = "$before" ] || echo "BREACH the mount table changed"
          python3 -c '${PY_SYS}
AT_FDCWD = -100
r = sc(430, b"tmpfs", 0)                           # fsopen
if r[0] >= 0: print("BREACH fsopen(tmpfs)")
r = sc(428, AT_FDCWD, b"/", 1 | 0x80000)           # open_tree(OPEN_TREE_CLONE|CLOEXEC)
if r[0] >= 0: print("BREACH open_tree clone of /")
'
          true`,
        );
        assertNoBreach(r, 'mount');
        await h.assertAlive(name);
      });

      test('umount a mount to uncover what is below it', async () => {
        const r = await h.sh(
          name,
          `
          before=$(md5sum < /proc/self/mountinfo)
          for m in $(awk '$5 != "/" {print $5}' /proc/self/mountinfo | sort -r); do
            umount "$m" 2>/dev/null && echo "BREACH umount $m"
            umount -l "$m" 2>/dev/null && echo "BREACH umount -l $m"
          done
          [ "$(md5sum < /proc/self/mountinfo)" = "$before" ] || echo "BREACH the mount table changed"
          true`,
        );
        assertNoBreach(r, 'umount');
        await h.assertAlive(name);
      });

      test('a user namespace of its own (unshare -U: the route of mount tricks and cgroup v1 escapes)', async () => {
        // The trusted runtimes' default filter refuses CLONE_NEWUSER: inside one, the jail's
        // root holds every capability over new mount and cgroup namespaces (issue 11 item 10).
        const r = await h.sh(
          name,
          `
          unshare -Urm true 2>/dev/null && echo "BREACH unshare -U"
          unshare -UrC true 2>/dev/null && echo "BREACH unshare -UC"
          true`,
        );
        assertNoBreach(r, 'unshare of a user namespace');
        await h.assertAlive(name);
      });

      test('cgroup v1 release_agent (mount a hierarchy, notify_on_release, run a program as host root)', async () => {
        const marker = `${h.state}/release-agent-ran-${name}`;
        const { initPid } = h.facts(name);
        const agents = releaseAgents();
        // the agent path as the host's kernel sees the jail's file: through its pid 1's root
        const r = await h.sh(
          name,
          `
          printf '#!/bin/sh\\ntouch ${marker}\\n' > /tmp/agent.sh; chmod 755 /tmp/agent.sh
          try() {
            mkdir -p /tmp/cg && mount -t cgroup -o "$1" cgroup /tmp/cg 2>/dev/null || return 0
            echo "BREACH mounted cgroup $1 ($2)"
            mkdir -p /tmp/cg/x && echo 1 > /tmp/cg/x/notify_on_release
            echo /proc/${initPid}/root/tmp/agent.sh > /tmp/cg/release_agent 2>/dev/null && echo "BREACH wrote release_agent ($2)"
            sh -c 'echo $$ > /tmp/cg/x/cgroup.procs' 2>/dev/null; sleep 0.2; rmdir /tmp/cg/x 2>/dev/null; umount /tmp/cg 2>/dev/null
          }
          for c in memory pids rdma; do try "$c" direct; done
          if unshare -UrmC true 2>/dev/null; then
            for c in memory pids rdma; do
              unshare -UrmC sh -c "mkdir -p /tmp/cg && mount -t cgroup -o $c cgroup /tmp/cg 2>/dev/null && echo /proc/${initPid}/root/tmp/agent.sh > /tmp/cg/release_agent 2>/dev/null && echo 'BREACH wrote release_agent ($c, in a user namespace)'"
            done
          fi
          sleep 0.3; true`,
        );
        assertNoBreach(r, 'release_agent');
        assert.equal(existsSync(marker), false, 'the release agent ran on the host');
        assert.deepEqual(releaseAgents(), agents, 'a host release_agent changed');
        await h.assertAlive(name);
      });

      test('mknod the host disk and read it; no block device in /dev', async () => {
        const r = await h.sh(
          name,
          `
          mknod /tmp/disk b ${rootDev.major} ${rootDev.minor} 2>/dev/null && echo "BREACH mknod of the host disk"
          [ -b /tmp/disk ] && head -c 512 /tmp/disk >/dev/null 2>&1 && echo "BREACH read the host disk"
          rm -f /tmp/disk
          mknod /tmp/mem c 1 1 2>/dev/null && echo "BREACH mknod /dev/mem"; rm -f /tmp/mem
          for d in /dev/* /dev/*/*; do [ -b "$d" ] && echo "BREACH block device $d"; done
          [ -e /sys/dev/block ] && ls /sys/dev/block >/dev/null 2>&1 && echo "NOTE /sys/dev/block is visible"
          true`,
        );
        assertNoBreach(r, 'mknod');
        await h.assertAlive(name);
      });

      test('load or remove a kernel module (init_module, finit_module, delete_module)', async () => {
        const r = await py(
          name,
          `${PY_SYS}
fd = os.open("/dev/null", os.O_RDONLY)
for what, res in [("init_module", sc(175, b"\\x7fELF-not-a-module", 18, b"")),
                  ("finit_module", sc(313, fd, b"", 0)),
                  ("delete_module", sc(176, b"jy_sec_no_such_module", 0o4000))]:
    if res[1] != errno.EPERM: print("BREACH", what, "was not refused with EPERM:", res)
`,
        );
        assertNoBreach(r, 'kernel modules');
        assert.equal(r.code, 0, r.stderr);
        await h.assertAlive(name);
      });

      test('open_by_handle_at on the root filesystem (the "shocker" escape)', async () => {
        // A file handle names an inode of the whole filesystem, whatever the caller's root:
        // handle 2 is the root directory of the host's disk.
        const r = await py(
          name,
          `${PY_SYS}
import struct
fd = os.open("/", os.O_RDONLY)
handle = struct.pack("IiQ", 8, 1, 2)                 # handle_bytes, FILEID_INO32_GEN, inode 2 gen 0
buf = ctypes.create_string_buffer(handle, len(handle))
r = sc(304, fd, buf, os.O_RDONLY)                     # open_by_handle_at
if r[0] >= 0: print("BREACH open_by_handle_at opened inode 2 of the disk:", os.listdir("/proc/self/fd/%d" % r[0])[:5])
`,
        );
        assertNoBreach(r, 'open_by_handle_at');
        assert.equal(r.code, 0, r.stderr);
        await h.assertAlive(name);
      });

      test('write host sysctls in /proc/sys (core_pattern, modprobe, ...) and /proc/sysrq-trigger', async () => {
        // Opening for writing is the probe: nothing is written, so a hole changes nothing.
        const r = await py(
          name,
          `
import os
for p in ${JSON.stringify(SYSCTLS.map((s) => `/proc/sys/${s}`))} + ["/proc/sysrq-trigger", "/proc/sys/kernel/ns_last_pid"]:
    try:
        os.close(os.open(p, os.O_WRONLY)); print("BREACH writable:", p)
    except OSError:
        pass
`,
        );
        assertNoBreach(r, '/proc/sys writes');
        for (const [s, v] of hostSysctls) assert.equal(readFileSync(`/proc/sys/${s}`, 'utf8'), v, `host ${s} changed`);
        await h.assertAlive(name);
      });

      test('read masked /proc files (kcore, keys, timer_list, sched_debug) and /sys', async () => {
        const r = await h.sh(
          name,
          `
          for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/kallsyms; do
            [ -e "$f" ] || continue
            n=$(head -c 4096 "$f" 2>/dev/null | wc -c)
            case "$f" in /proc/kallsyms) grep -qv '^0000000000000000' "$f" 2>/dev/null && echo "BREACH kernel addresses in $f";; *) [ "$n" -gt 0 ] && echo "BREACH readable: $f ($n bytes)";; esac
          done
          if [ -d /sys ]; then
            for f in /sys/kernel/uevent_helper /sys/power/state /sys/kernel/mm/transparent_hugepage/enabled; do
              [ -e "$f" ] && (: > "$f") 2>/dev/null && echo "BREACH writable: $f"
            done
            [ -d /sys/firmware ] && [ -n "$(ls /sys/firmware 2>/dev/null)" ] && echo "BREACH /sys/firmware is not masked"
          fi
          true`,
        );
        assertNoBreach(r, 'masked /proc and /sys');
        await h.assertAlive(name);
      });

      test("the host root's kernel keyring (read a host key, plant one)", async () => {
        const planted = `${keyName}-planted-${name}`;
        const r = await h.sh(
          name,
          `
          grep -q '${keyName}' /proc/keys 2>/dev/null && echo "BREACH host key listed in /proc/keys"
          id=$(keyctl search @u user '${keyName}' 2>/dev/null) && echo "BREACH host key found: $id" && keyctl print "$id" 2>/dev/null | sed 's/^/BREACH payload: /'
          keyctl show @u 2>/dev/null | grep -q '${keyName}' && echo "BREACH host key in the jail's @u"
          keyctl add user '${planted}' x @u >/dev/null 2>&1
          true`,
        );
        assertNoBreach(r, 'keyring');
        const hostKeys = execFileSync('keyctl', ['show', '@u'], { encoding: 'utf8' });
        // a key the jail planted is removed by its id (the first word of its line)
        for (const line of hostKeys.split('\n').filter((l) => l.includes(planted))) {
          execFileSync('keyctl', ['unlink', line.trim().split(/\s+/)[0]!, '@u'], { stdio: 'ignore' });
        }
        assert.ok(!hostKeys.includes(planted), "the jail planted a key in the host root's keyring");
        await h.assertAlive(name);
      });

      test("setuid/file capabilities grant nothing beyond the jail's bounding set", async () => {
        const r = await h.sh(
          name,
          `
          cp /usr/bin/python3 /tmp/py-caps 2>/dev/null || exit 0
          setcap cap_sys_admin,cap_sys_module,cap_sys_ptrace+eip /tmp/py-caps 2>/dev/null
          /tmp/py-caps -c 'import re;m=re.search(r"CapEff:\\s+(\\w+)",open("/proc/self/status").read());e=int(m.group(1),16)
for b,n in ((21,"sys_admin"),(16,"sys_module"),(19,"sys_ptrace")):
    print("BREACH file capability gave cap_"+n) if e>>b&1 else None' 2>/dev/null
          rm -f /tmp/py-caps; true`,
        );
        assertNoBreach(r, 'file capabilities');
        await h.assertAlive(name);
      });

      test("write through to the host's files in the skeleton (direct, hard link, basejail view)", async () => {
        const v = `${victimDir}/victim`;
        const r = await h.sh(
          name,
          `
          for p in ${v} /basejail${v}; do
            [ -e "$p" ] || continue
            ln "$p" /tmp/hl 2>/dev/null && { echo pwned >> /tmp/hl 2>/dev/null; rm -f /tmp/hl; }
            echo pwned >> "$p" 2>/dev/null
            chmod 4777 "$p" 2>/dev/null; chown 1234 "$p" 2>/dev/null
            touch "$(dirname "$p")/planted" 2>/dev/null
          done
          true`,
        );
        assert.equal(r.code, 0, r.stderr);
        assert.equal(readFileSync(v, 'utf8'), victimText, 'the host file changed');
        const st = statSync(v);
        assert.equal(st.mode & 0o7777, 0o644, "the host file's mode changed");
        assert.equal(st.uid, 0, "the host file's owner changed");
        assert.equal(existsSync(`${victimDir}/planted`), false, "a file was planted in the host's tree");
        if (strategy === 'full') {
          const copy = join(h.state, 'mini-root', v);
          assert.equal(readFileSync(copy, 'utf8'), victimText, "the skeleton's file changed");
          assert.equal(
            existsSync(join(h.state, 'mini-root', victimDir, 'planted')),
            false,
            'a file was planted in the skeleton',
          );
        }
        await h.assertAlive(name);
      });

      test("host processes' /proc/PID/root and cwd are not reachable; only the jail's processes are visible", async () => {
        const sleeper = execFileSync('sh', ['-c', 'sleep 60.123 >/dev/null 2>&1 & echo $!'], {
          encoding: 'utf8',
        }).trim();
        try {
          const r = await h.sh(
            name,
            `
            me=$(stat -L -c %d:%i /)
            for d in /proc/[0-9]*; do
              # a process whose root is not the jail's own root is a process of the host
              r=$(stat -L -c %d:%i "$d/root" 2>/dev/null) || continue
              [ "$r" = "$me" ] || echo "BREACH $d/root is not the jail's root"
              [ "$r" = "$me" ] || { [ -e "$d/root${h.state}/HOST-MARKER" ] && echo "BREACH host tree through $d/root"; }
              grep -qa '60[.]123' "$d/cmdline" 2>/dev/null && echo "BREACH host process visible: $d"
            done
            # (a skeleton that shows the host's state folder is a finding of its own test)
            [ -e ${h.state}/HOST-MARKER ] || { [ -e /proc/1/root/../../../../../..${h.state}/HOST-MARKER ] && echo "BREACH /proc/1/root/.. leaves the jail"; }
            true`,
          );
          assertNoBreach(r, '/proc of host processes');
        } finally {
          process.kill(Number(sleeper), 'SIGKILL');
        }
        await h.assertAlive(name);
      });

      test('kill -9 and ptrace of host pid numbers', async () => {
        const sleeper = execFileSync('sh', ['-c', 'sleep 60 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).trim();
        const pids = [Number(sleeper), process.pid];
        try {
          const r = await py(
            name,
            `${PY_SYS}
for pid in ${JSON.stringify(pids)}:
    if os.path.exists("/proc/%d" % pid): continue   # a jail process has that number
    try:
        os.kill(pid, 9); print("BREACH killed host pid", pid)
    except OSError: pass
    if sc(101, 16, pid, 0, 0)[0] == 0: print("BREACH ptrace attach to host pid", pid)   # PTRACE_ATTACH
    r = sc(434, pid, 0)                                                                  # pidfd_open
    if r[0] >= 0: print("BREACH pidfd_open of host pid", pid)
`,
          );
          assertNoBreach(r, 'kill/ptrace of host pids');
          process.kill(Number(sleeper), 0); // still alive, or this throws
        } finally {
          try {
            process.kill(Number(sleeper), 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        await h.assertAlive(name);
      });

      test("the host's /etc/shadow, ssh host keys and private keys through any route", async () => {
        const secrets = [
          '/etc/shadow',
          '/etc/gshadow',
          ...['ed25519', 'rsa', 'ecdsa'].map((k) => `/etc/ssh/ssh_host_${k}_key`),
        ]
          .filter((f) => existsSync(f))
          .map((f) => ({ f, text: readFileSync(f, 'utf8') }));
        const hashes = secrets.flatMap(({ text }) =>
          text
            .split('\n')
            .map((l) => l.split(':')[1] ?? '')
            .filter((x) => x.startsWith('$')),
        );
        const r = await h.sh(
          name,
          `
          for f in /etc/shadow /etc/gshadow /etc/ssh/ssh_host_* /etc/ssl/private/* \\
                   /basejail/etc/shadow /basejail/etc/gshadow /basejail/etc/ssh/ssh_host_* /basejail/etc/ssl/private/* \\
                   /proc/1/root/etc/shadow; do
            [ -f "$f" ] && { echo "=== $f"; cat "$f" 2>/dev/null; }
          done; true`,
        );
        const sections = r.stdout
          .split(/^=== /m)
          .filter(Boolean)
          .map((s) => ({ path: s.slice(0, s.indexOf('\n')), text: s.slice(s.indexOf('\n') + 1) }));
        for (const { f, text } of secrets) {
          const lines = text.split('\n').filter((l) => !l.includes('PRIVATE KEY') && l.length > 40);
          for (const s of sections) {
            if (text.trim() && s.text.includes(text))
              assert.fail(`host ${f} is readable in the jail as ${s.path}, byte for byte`);
            const line = lines.find((l) => s.text.includes(l));
            if (line) assert.fail(`host ${f} content is readable in the jail as ${s.path}`);
          }
        }
        for (const hash of hashes) assert.ok(!r.stdout.includes(hash), 'a host password hash is readable in the jail');
        await h.assertAlive(name);
      });

      test("the host's own tree outside the skeleton (state folder and store, /root, /home) is not reachable", async () => {
        // A jail may see the skeleton's system dirs; it must not see the host's files beside
        // them: jailyard's state (every jail's tree, guest sockets, the store with every
        // jail's meta), root's home, users' homes.
        const hostRoot = readdirSync('/root').filter((e) => !e.startsWith('.jy'));
        const r = await h.sh(
          name,
          `
          for p in "" /basejail; do
            [ -e "$p${h.state}/HOST-MARKER" ] && echo "BREACH the host's state folder as $p${h.state}"
            for db in "$p${h.state}"/jailyard.db*; do
              [ -f "$db" ] && grep -qa host-only-meta-value "$db" 2>/dev/null && echo "BREACH every jail's meta in $db"
            done
            ls -A "$p/root" 2>/dev/null | sed "s|^|ROOT $p |"
          done
          true`,
        );
        const seen = r.stdout
          .split('\n')
          .filter((l) => l.startsWith('ROOT '))
          .map((l) => l.split(' ').slice(2).join(' '));
        const leaked = hostRoot.filter((e) => seen.includes(e));
        assertNoBreach(r, "the host's tree");
        assert.deepEqual(leaked, [], `host root's home is readable in the jail: ${leaked.join(' ')}`);
        await h.assertAlive(name);
      });

      test("the daemon's API socket and other jails' guest sockets cannot be reached", async () => {
        const r = await py(
          name,
          `
import socket, glob
paths = []
for p in ["", "/basejail"]:
    paths += glob.glob(p + "${h.state}/*.sock") + glob.glob(p + "${h.state}/jails/*/guest/*.sock")
for path in paths:
    if "/jails/${name}/guest/" in path: continue      # its own guest socket, by another path
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    try:
        s.connect(path)
        url = b"/env" if path.endswith("guest.sock") else b"/v1/jails"
        s.sendall(b"GET " + url + b" HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
        status = s.recv(64).split(b"\\r\\n")[0]
        # a guest socket may refuse a stranger (403); any answer with data is a breach
        print("BREACH" if b" 2" in status[:13] else "REFUSED", path, status)
    except OSError:
        pass
    finally:
        s.close()
`,
        );
        assertNoBreach(r, 'sockets of the host');
        assert.equal(r.code, 0, r.stderr);
        await h.assertAlive(name);
      });

      test('host paths and host-only metadata are not disclosed (mountinfo, environment, process list)', async () => {
        const r = await h.sh(
          name,
          `
          cat /proc/self/mountinfo; env
          cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\0" " "
          cat /proc/[0-9]*/environ 2>/dev/null | tr "\\0" "\\n"
          cat /run/jailyard/* 2>/dev/null; true`,
        );
        const shown = r.stdout.split('\n').filter((l) => l.includes(h.state));
        assert.deepEqual(shown, [], `the host state path is visible in the jail:\n${shown.join('\n')}`);
        assert.ok(!r.stdout.includes('host-only-meta-value'), 'meta (host only) is readable in the jail');
        await h.assertAlive(name);
      });

      test("the guest folder's bind shows no host path as its mount root", async () => {
        const r = await h.sh(name, 'cat /proc/self/mountinfo');
        const shown = r.stdout.split('\n').filter((l) => l.includes(h.state));
        assert.deepEqual(shown, [], `the host state path is visible in the jail:\n${shown.join('\n')}`);
      });

      // What jy-stage and jy-enter do the same for every strategy and costs seconds (a node
      // start, bombs that wait for their children): in the default strategy only.
      if (strategy !== 'nullfs') return;

      test('descriptors of the caller do not cross into the jail (a host directory open as fd 3, 4 and 200)', async () => {
        const dirFd = openSync(h.state, 'r');
        try {
          const r = await h.execCli(
            name,
            [
              'python3',
              '-c',
              `
import os, re
for fd in sorted(os.listdir("/proc/self/fd"), key=int):
    try: target = os.readlink("/proc/self/fd/" + fd)
    except OSError: continue
    if int(fd) > 2 and not re.match(r"^/proc/\\d+/fd$", target): print("BREACH fd", fd, "->", target)
    if os.path.exists("/proc/self/fd/%s/HOST-MARKER" % fd): print("BREACH host state folder through fd", fd)
print("checked")
`,
            ],
            { extraStdio: [dirFd, dirFd, 'pipe'], openFd: { fd: 200, path: h.state } },
          );
          assertNoBreach(r, 'descriptor leak');
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stdout, /checked/);
        } finally {
          closeSync(dirFd);
        }
        await h.assertAlive(name);
      });

      test('fork bomb under limits.procs: bounded, the host stays responsive, the jail recovers', async () => {
        const bomb = h.exec(
          name,
          [
            'python3',
            '-c',
            `
import os, time
# the children wait on a pipe until the bomb ends: on a loaded machine forking is slow, and
# children that exited after a fixed time left room under the limit (61 forks in 1.5 s)
r, w = os.pipe()
end = time.time() + 10; n = 0; refused = 0
while time.time() < end and refused < 20:
    try:
        if os.fork() == 0:
            os.close(w); os.read(r, 1); os._exit(0)
        n += 1
    except OSError:
        refused += 1; time.sleep(0.005)
os.close(w)
print(n, refused)
`,
          ],
          { timeoutMs: 30_000 },
        );
        // the host spawns programs as usual meanwhile
        await new Promise((r) => setTimeout(r, 1000));
        const hostMs = hostRunMs();
        const r = await bomb;
        const [n, refused] = r.stdout.trim().split(' ').map(Number);
        assert.ok(refused! > 0 && n! < 128, `the bomb was not bounded by limits.procs: ${r.stdout} ${r.stderr}`);
        assert.ok(hostMs < 1000, `the host took ${hostMs} ms to run a program`);
        await new Promise((r) => setTimeout(r, 1000)); // its children exit
        await h.assertAlive(name);
      });

      test('memory bomb under limits.memory: killed in the jail, the host and the jail go on', async () => {
        // 16 MiB chunks, written (not lazily zeroed), up to 2 GiB: far beyond the 256M limit
        const hog =
          'b=[]\nfor i in range(128): b.append(bytearray(b"\\x01") * (16<<20))\nprint("BREACH allocated 2 GiB")';
        const r = await h.exec(name, ['python3', '-c', hog], { timeoutMs: 60_000 });
        assertNoBreach(r, 'memory bomb');
        assert.notEqual(r.code, 0, 'allocating without bound succeeded');
        await h.assertAlive(name);
      });
    });
  });
}

/** The host's cgroup v1 release_agent files and their contents. */
function releaseAgents(): Map<string, string> {
  const found = new Map<string, string>();
  const controllers = [
    'memory',
    'pids',
    'cpu',
    'cpuacct',
    'devices',
    'freezer',
    'blkio',
    'rdma',
    'net_cls',
    'perf_event',
  ];
  for (const c of [...controllers, 'hugetlb', 'cpuset', 'systemd']) {
    const f = `/sys/fs/cgroup/${c}/release_agent`;
    try {
      found.set(f, readFileSync(f, 'utf8'));
    } catch {
      /* not mounted */
    }
  }
  return found;
}
