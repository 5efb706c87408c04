// `jailyard exec -U USER` (jexec -U): the uid change is jy-enter's, not a program of the
// jail's. It ran the jail's own `setpriv` (the first in the jail's PATH, /usr/local/bin
// first: a jailed root could put its own there, red-team run of 2026-12-04) and a jail
// without setpriv (a minimal root) could not run anything as another user. The user, its
// group and its supplementary groups (the jail's /etc/group, as initgroups(3) makes them)
// come from the jail's own files, read with their links resolved inside the jail.
// Addresses: none.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SecurityHost, miniRoot } from './helpers.ts';

describe('exec -U without a program of the jail', () => {
  let h: SecurityHost;
  before(async () => {
    h = await SecurityHost.open('execuser');
    const root = miniRoot(join(h.state, 'mini-root'));
    // no setpriv in this jail at all
    for (const d of ['usr/bin', 'usr/sbin', 'bin', 'sbin']) rmSync(join(root, d, 'setpriv'), { force: true });
    await h.skeleton('nosetpriv', root);
    await h.jail('eu', { strategy: 'full', skeleton: 'nosetpriv' });
    // a group of the jail's that lists nobody
    const r = await h.exec('eu', ['/bin/sh', '-c', 'echo extra:x:4242:nobody >> /etc/group']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await h?.close();
  });

  test('runs as the user, its group and its supplementary groups, with no setpriv in the jail', async () => {
    const r = await h.exec('eu', ['/bin/sh', '-c', 'id -u; id -g; id -G; command -v setpriv || echo none'], {
      user: 'nobody',
    });
    assert.equal(r.code, 0, r.stderr);
    const [uid, gid, groups, setpriv] = r.stdout.trim().split('\n');
    assert.equal(uid, '65534');
    assert.equal(gid, '65534');
    assert.deepEqual(groups!.split(' ').sort(), ['4242', '65534']);
    assert.equal(setpriv, 'none');
  });

  test("a setpriv the jail's root puts first in PATH is never run for -U", async () => {
    let r = await h.exec('eu', [
      '/bin/sh',
      '-c',
      'mkdir -p /usr/local/bin && printf "#!/bin/sh\\ntouch /tmp/fake-setpriv-ran\\nshift 7; exec \\"\\$@\\"\\n" > /usr/local/bin/setpriv && chmod 755 /usr/local/bin/setpriv',
    ]);
    assert.equal(r.code, 0, r.stderr);
    r = await h.exec('eu', ['id', '-u'], { user: 'nobody' });
    assert.equal(r.stdout.trim(), '65534', r.stderr);
    r = await h.exec('eu', ['/bin/sh', '-c', 'test -e /tmp/fake-setpriv-ran && echo ran || echo not']);
    assert.equal(r.stdout.trim(), 'not');
  });

  test('a user the jail does not know is an error naming the jail', async () => {
    await assert.rejects(h.exec('eu', ['id'], { user: 'jy-no-such-user' }), /no user "jy-no-such-user"/);
  });
});
