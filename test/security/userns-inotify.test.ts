// The kernel charges inotify instances (and watches, user namespaces, POSIX message queues,
// pending signals, RLIMIT_NPROC) per (user namespace, uid), each level of a nested
// namespace to the namespace's owner in its parent. A `userns` jail's namespace must be
// owned by the range's first uid, not host root: otherwise a jail holding
// `fs.inotify.max_user_instances` instances makes host root's inotify_init1 fail with
// EMFILE (jailyard's daemon, systemd...). Red-team finding of 2026-12-04; docs/userns.md.
// Addresses: none (this area's sub-range 198.51.100.241-245 is unused).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { SecurityHost } from './helpers.ts';
import { recordedRange } from '../../src/platform/linux/userns.ts';

const JAIL = 'f5-inotify';
let h: SecurityHost;

before(async () => {
  h = await SecurityHost.open('f5-inotify');
  await h.jail(JAIL, { strategy: 'nullfs', params: ['userns'] });
});

after(async () => {
  await h?.close();
});

/** NS_GET_OWNER_UID (ioctl _IO(0xb7, 0x4)) of /proc/PID/ns/user: the uid that owns it, as
 * the host's user namespace sees it. */
function nsOwner(pid: number): number {
  const py = `
import array, fcntl, os, sys
fd = os.open('/proc/%s/ns/user' % sys.argv[1], os.O_RDONLY)
uid = array.array('I', [0])
fcntl.ioctl(fd, 0xb704, uid, True)
print(uid[0])
`;
  return Number(execFileSync('python3', ['-c', py, String(pid)], { encoding: 'utf8' }).trim());
}

/** One inotify_init1 by a new host-root process: 'ok' or the errno's name. */
function hostInotify(): string {
  const py = `
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0o2000000)
print('ok' if fd >= 0 else errno.errorcode[ctypes.get_errno()])
`;
  return execFileSync('python3', ['-c', py], { encoding: 'utf8' }).trim();
}

test("userns: the jail's user namespace is owned by the range's first uid, not host root", () => {
  const r = recordedRange(h.jailDir(JAIL));
  assert.ok(r, 'no recorded range');
  const { initPid } = h.facts(JAIL);
  assert.notEqual(readlinkSync(`/proc/${initPid}/ns/user`), readlinkSync('/proc/self/ns/user'));
  assert.equal(nsOwner(initPid), r.base);
});

test("userns: a jail holding every inotify instance it may open leaves host root's alone", async (t) => {
  const limit = Number(readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8'));
  if (limit > 4096) {
    t.skip(`fs.inotify.max_user_instances is ${limit}: too many to open here`);
    return;
  }
  const { initPid } = h.facts(JAIL);
  const tmp = `/proc/${initPid}/root/tmp`;
  // the jail's root opens instances until the kernel refuses one, says how many and why,
  // and holds them until the host says so (60 s at most)
  const hold = String.raw`
import ctypes, errno, os, time
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while len(fds) < 8192:
    fd = libc.inotify_init1(0o2000000)
    if fd < 0:
        break
    fds.append(fd)
why = errno.errorcode.get(ctypes.get_errno(), '?') if len(fds) < 8192 else 'none'
with open('/tmp/f5-held.tmp', 'w') as f:
    f.write('%d %s\n' % (len(fds), why))
os.rename('/tmp/f5-held.tmp', '/tmp/f5-held')
for _ in range(1200):
    if os.path.exists('/tmp/f5-release'):
        break
    time.sleep(0.05)
print(len(fds))
`;
  const holding = h.exec(JAIL, ['python3', '-c', hold], { timeoutMs: 90_000 });
  let released = false;
  const release = () => {
    if (!released) writeFileSync(`${tmp}/f5-release`, '');
    released = true;
  };
  t.after(release);
  for (let i = 0; i < 600 && !existsSync(`${tmp}/f5-held`); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(existsSync(`${tmp}/f5-held`), 'the jail did not report its instances');
  const [count, why] = readFileSync(`${tmp}/f5-held`, 'utf8').trim().split(' ');
  // while the jail holds them: host root still gets one
  const host = hostInotify();
  release();
  const done = await holding;
  assert.equal(done.code, 0, done.stderr);
  assert.equal(host, 'ok', `host root's inotify_init1 failed while the jail held ${count} instances (${why})`);
  // the jail was stopped by its own budget (the range's first uid's), all of it
  assert.equal(why, 'EMFILE');
  assert.equal(Number(count), limit, `the jail opened ${count} of ${limit}`);
  assert.equal(hostInotify(), 'ok');
});
