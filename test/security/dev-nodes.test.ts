// The jail's /dev holds the host's device nodes bound in. A bind is the same inode: a chmod
// or chown by the jailed root changed the HOST's /dev/null. The binds are read-only, so the
// devices work and their inodes cannot be changed, for the stage's /dev and mount.devfs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { SecurityHost } from './helpers.ts';

let h: SecurityHost;

before(async () => {
  h = await SecurityHost.open('devnodes');
  await h.jail('dn1');
  await h.jail('dn2', { params: ['mount.devfs'] });
});

after(async () => {
  await h.close();
});

for (const jail of ['dn1', 'dn2']) {
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
