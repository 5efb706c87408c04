// Every devpts instance draws on the kernel's one pool of ptys (kernel.pty.max), and
// kernel.pty.reserve keeps back only the host's initial instance: a user of one jail could
// open every pty of the pool and leave the others none (`jailyard exec -t`, sshd and script
// failed in every jail; red-team run 2). A jail's own devpts now holds at most limits.ptys
// (defaults limits.ptys, 256), for the stage's /dev and mount.devfs, with and without a user
// namespace; its root cannot raise the cap.
//
// Opening stops at the cap + 8 at most, so without the cap the test fails (the count is
// above it, no ENOSPC) without ever draining the pool that other tests on this host use.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SecurityHost } from './helpers.ts';
import { loadDefaults } from '../../src/defaults.ts';

let h: SecurityHost;
const DEFAULT_CAP = loadDefaults().limits.ptys?.linux;

/** name, parameter words, the cap the jail's devpts must have */
const JAILS: [string, string[], number][] = [
  ['pty1', [], DEFAULT_CAP ?? 0],
  ['pty2', ['mount.devfs'], DEFAULT_CAP ?? 0],
  ['pty3', ['userns', 'limits.ptys=16'], 16],
  ['pty4', ['userns', 'mount.devfs', 'limits.ptys=12'], 12],
];

/** Opens ptys up to argv[1] (or an error), writes "COUNT ERRNO" to /dev/shm/pty-held, and
 * holds them until /dev/shm/pty-release appears (at most 60 s). */
const HOLD = `
import errno, os, sys, time
fds, err = [], 'none'
while len(fds) < int(sys.argv[1]):
    try:
        fds.append(os.open('/dev/ptmx', os.O_RDWR | os.O_NOCTTY))
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
        break
with open('/dev/shm/pty-held.tmp', 'w') as f:
    f.write(f'{len(fds)} {err}\\n')
os.rename('/dev/shm/pty-held.tmp', '/dev/shm/pty-held')
end = time.time() + 60
while not os.path.exists('/dev/shm/pty-release') and time.time() < end:
    time.sleep(0.05)
`;

/** Opens one pty and prints "opened", or the error. */
const ONE = `
import os
try:
    os.open('/dev/ptmx', os.O_RDWR | os.O_NOCTTY)
    print('opened')
except OSError as e:
    print('failed', e)
`;

before(async () => {
  assert.ok(typeof DEFAULT_CAP === 'number' && DEFAULT_CAP > 0, 'defaults limits.ptys.linux is a cap');
  h = await SecurityHost.open('ptylimit');
  for (const [name, params] of JAILS) await h.jail(name, { params });
});

after(async () => {
  await h.close();
});

/** The jail's /dev/pts mount options as it sees them. */
async function ptsOptions(jail: string): Promise<string[]> {
  const r = await h.sh(jail, 'awk \'$5 == "/dev/pts" { print $NF }\' /proc/self/mountinfo');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `${jail}: one /dev/pts: ${r.stdout}`);
  return lines[0]!.split(',');
}

async function waitForFile(jail: string, path: string): Promise<string> {
  const end = Date.now() + 60_000;
  for (;;) {
    const r = await h.sh(jail, `cat ${path} 2>/dev/null`);
    if (r.stdout.trim()) return r.stdout.trim();
    assert.ok(Date.now() < end, `${jail}: ${path} did not appear`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

for (const [i, [jail, params, cap]] of JAILS.entries()) {
  const other = JAILS[(i + 1) % JAILS.length]![0];
  test(`${jail} (${params.join(' ') || 'stage /dev'}): its devpts holds ${cap} ptys; nobody's opening stops there with ENOSPC while ${other} still opens one`, {
    timeout: 180_000,
  }, async () => {
    assert.ok((await ptsOptions(jail)).includes(`max=${cap}`), `${jail}: devpts max=${cap}`);
    await h.sh(jail, 'rm -f /dev/shm/pty-held /dev/shm/pty-release');
    const holder = h.exec(jail, ['/usr/bin/python3', '-c', HOLD, String(cap + 8)], {
      user: 'nobody',
      timeoutMs: 120_000,
    });
    try {
      const held = await waitForFile(jail, '/dev/shm/pty-held');
      assert.equal(held, `${cap} ENOSPC`, `${jail}: nobody opened ptys up to the cap, then ENOSPC`);
      // the pool the other jails draw on is not used up
      const r = await h.exec(other, ['/usr/bin/python3', '-c', ONE], { user: 'nobody' });
      assert.match(r.stdout, /^opened$/m, `${other} opens a pty while ${jail} holds its cap: ${r.stdout}${r.stderr}`);
    } finally {
      await h.sh(jail, 'touch /dev/shm/pty-release');
      const done = await holder;
      assert.equal(done.code, 0, `${jail}: holder: ${done.stderr}`);
      await h.sh(jail, 'rm -f /dev/shm/pty-held /dev/shm/pty-release');
    }
    // the cap is the jail's own devpts's: once released, its ptys open again
    const again = await h.exec(jail, ['/usr/bin/python3', '-c', ONE], { user: 'nobody' });
    assert.match(again.stdout, /^opened$/m, `${jail}: ptys open again: ${again.stdout}${again.stderr}`);
  });

  test(`${jail}: the jail's root cannot raise the cap (remount) nor mount a devpts of its own`, {
    timeout: 60_000,
  }, async () => {
    const r = await h.sh(
      jail,
      'mount -t devpts -o remount,max=4096 devpts /dev/pts 2>/dev/null; echo remount=$?; mkdir -p /dev/shm/pts; mount -t devpts -o newinstance devpts /dev/shm/pts 2>/dev/null; echo new=$?',
    );
    assert.match(r.stdout, /remount=[1-9]/, `${jail}: remount refused: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /new=[1-9]/, `${jail}: new devpts refused: ${r.stdout}${r.stderr}`);
    assert.ok((await ptsOptions(jail)).includes(`max=${cap}`), `${jail}: still max=${cap}`);
  });
}

test('limits.ptys outside 1..1048576 is refused at create', { timeout: 60_000 }, async () => {
  for (const v of ['0', '1048577', 'x']) {
    const r = await h.jy('create', 'pty9', 'persist', `limits.ptys=${v}`);
    assert.notEqual(r.code, 0, `limits.ptys=${v} refused`);
    assert.match(r.stderr, /limits\.ptys/, r.stderr);
  }
});
