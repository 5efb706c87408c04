// The jail's /dev holds the host's device nodes bound in. A bind is the same inode: a chmod
// or chown by the jailed root changed the HOST's /dev/null. The binds are read-only, so the
// devices work and their inodes cannot be changed, for the stage's /dev and mount.devfs.
// The same for every other way to the host's /dev/null: the masks over /proc files
// (defaults isolation.proc masked) are read-only binds too, and no descriptor a jail's
// process holds (pid 1's stdin: /proc/1/fd/0) is the host's /dev/null or any other file on
// a mount outside the jail's own table.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, type Stats } from 'node:fs';
import { SecurityHost } from './helpers.ts';
import { loadDefaults } from '../../src/defaults.ts';
import { procRules } from '../../src/platform/linux/security.ts';

let h: SecurityHost;

before(async () => {
  h = await SecurityHost.open('devnodes');
  await h.jail('dn1');
  await h.jail('dn2', { params: ['mount.devfs'] });
  await h.jail('dn3', { params: ['userns'] });
});

after(async () => {
  await h.close();
});

for (const jail of ['dn1', 'dn2', 'dn3']) {
  test(`${jail}: chmod/chown of /dev nodes fail, the devices still work, the host's nodes are unchanged`, {
    timeout: 60_000,
  }, async () => {
    const before = ['null', 'zero', 'urandom', 'tty'].map((n) => statSync(`/dev/${n}`));
    for (const [i, n] of ['null', 'zero', 'urandom', 'tty'].entries()) {
      // the same mode and owner as now: on a jail that is not confined this changes only the
      // host node's ctime (seen below), never its mode or owner
      const r = await h.sh(
        jail,
        `chmod $(stat -c %a /dev/${n}) /dev/${n}; echo chmod=$?; chown $(stat -c %u:%g /dev/${n}) /dev/${n}; echo chown=$?`,
      );
      assert.match(r.stdout, /chmod=1/, `${jail}: chmod /dev/${n}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /chown=1/, `${jail}: chown /dev/${n}: ${r.stdout}${r.stderr}`);
      const after = statSync(`/dev/${n}`);
      assert.equal(after.mode, before[i]!.mode, `host /dev/${n} mode unchanged`);
      assert.equal(after.uid, before[i]!.uid, `host /dev/${n} owner unchanged`);
      assert.equal(after.ctimeMs, before[i]!.ctimeMs, `host /dev/${n} inode untouched`);
    }
    const io = await h.sh(jail, 'echo x > /dev/null && head -c 16 /dev/urandom | wc -c && head -c 4 /dev/zero | wc -c');
    assert.equal(io.code, 0, io.stderr);
    assert.deepEqual(io.stdout.trim().split(/\s+/), ['16', '4']);
  });
}

/** What of the host's /dev/null a jailed root could change (ctime: any change at all). */
function nullStat(st: Stats) {
  return { mode: st.mode, uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
}

const KPAGE = ['/proc/kpageflags', '/proc/kpagecount', '/proc/kpagecgroup'];

test("the defaults mask the kernel's physical page state like kcore", () => {
  const masked = procRules(loadDefaults()).masked;
  for (const p of ['/proc/kcore', ...KPAGE]) assert.ok(masked.includes(p), p);
});

for (const jail of ['dn1', 'dn2', 'dn3']) {
  test(`${jail}: touch, chmod, chown through /proc/1/fd/0, the /proc masks and /dev/null fail; the host's /dev/null is unchanged`, {
    timeout: 60_000,
  }, async () => {
    const targets = ['/proc/1/fd/0', '/dev/null', ...procRules(loadDefaults()).masked];
    const before = nullStat(statSync('/dev/null'));
    // the same times, mode and owner as now (touch -r: the jail's /dev/null, the host's
    // inode): on the old code this changed only the host node's ctime, seen below
    const r = await h.sh(
      jail,
      `for f in ${targets.join(' ')}; do test -e "$f" || continue
        touch -c -m -r /dev/null "$f" 2>/dev/null; echo "touch $f $?"
        chmod "$(stat -L -c %a "$f")" "$f" 2>/dev/null; echo "chmod $f $?"
        chown "$(stat -L -c %u:%g "$f")" "$f" 2>/dev/null; echo "chown $f $?"
      done`,
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    for (const t of ['/proc/1/fd/0', '/dev/null', '/proc/keys'])
      assert.ok(
        lines.some((l) => l.startsWith(`touch ${t} `)),
        `${jail}: ${t} tried: ${r.stdout}`,
      );
    for (const l of lines) assert.doesNotMatch(l, / 0$/, `${jail}: ${l} must fail`);
    assert.deepEqual(nullStat(statSync('/dev/null')), before, `${jail}: the host's /dev/null is unchanged`);
    // the masks still read nothing and the jail's /dev/null still works
    const io = await h.sh(jail, 'wc -c < /proc/keys; echo x > /dev/null && echo written');
    assert.equal(io.code, 0, io.stderr);
    assert.deepEqual(io.stdout.trim().split(/\s+/), ['0', 'written']);
  });

  test(`${jail}: /proc/kpageflags, kpagecount, kpagecgroup read nothing`, { timeout: 60_000 }, async () => {
    for (const f of KPAGE) {
      const r = await h.sh(jail, `test -e ${f} || { echo absent; exit 0; }; head -c 8 ${f} | wc -c`);
      assert.ok(['0', 'absent'].includes(r.stdout.trim()), `${jail}: ${f} reads nothing: ${r.stdout} ${r.stderr}`);
    }
  });

  test(`${jail}: no descriptor of a jail's process is a file on a mount outside the jail or a writable devtmpfs`, {
    timeout: 60_000,
  }, async () => {
    // every descriptor of every process the jail sees: its target and its mount (fdinfo
    // mnt_id), looked up in the jail's own mount table
    const r = await h.sh(
      jail,
      `for d in /proc/[0-9]*; do for fd in "$d"/fd/*; do
        l=$(readlink "$fd" 2>/dev/null) || continue
        m=$(sed -n 's/^mnt_id:[[:space:]]*//p' "$d/fdinfo/\${fd##*/}" 2>/dev/null) || continue
        [ -n "$m" ] && printf 'FD %s %s %s %s\n' "\${d#/proc/}" "\${fd##*/}" "$m" "$l"
      done; done; cat /proc/self/mountinfo`,
    );
    assert.equal(r.code, 0, r.stderr);
    const mounts = new Map<string, { opts: string; type: string }>();
    const fds: { pid: string; fd: string; mnt: string; link: string }[] = [];
    for (const line of r.stdout.split('\n')) {
      const f = line.match(/^FD (\d+) (\d+) (\d+) (.*)$/);
      if (f) {
        fds.push({ pid: f[1]!, fd: f[2]!, mnt: f[3]!, link: f[4]! });
        continue;
      }
      const [left, right] = line.split(' - ');
      if (!left || !right) continue;
      const parts = left.split(' ');
      mounts.set(parts[0]!, { opts: parts[5] ?? '', type: right.split(' ')[0] ?? '' });
    }
    assert.ok(
      fds.some((d) => d.pid === '1' && d.fd === '0'),
      `${jail}: pid 1's descriptors seen: ${r.stdout}`,
    );
    for (const d of fds) {
      if (!d.link.startsWith('/')) continue; // pipe:[...], socket:[...], anon_inode:...: no path
      const m = mounts.get(d.mnt);
      assert.ok(m, `${jail}: pid ${d.pid} fd ${d.fd} -> ${d.link} is on mount ${d.mnt}, not one of the jail's`);
      if (m.type === 'devtmpfs')
        assert.ok(
          m.opts.split(',').includes('ro'),
          `${jail}: pid ${d.pid} fd ${d.fd} -> ${d.link}: a writable devtmpfs`,
        );
    }
  });
}
