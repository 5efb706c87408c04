// Who in a jail may use the routes of its guest socket that change something (red-team
// finding of 2026-12-04): the socket checked that the caller was in the jail's namespaces,
// not who it was, so `nobody` in a jail with children.max>=1 made a child whose exec.start
// ran as the jail's root. As jail_set(2) needs privilege on FreeBSD, the in-jail jail(8) and
// readiness (PUT/DELETE /ready) now take the jail's root only (uid 0 of the jail's user
// namespace: host uid 0, or the range's first uid), through the daemon's guest socket and
// through the channel `jailyard exec` opens without a daemon. Reading (GET /env, jls) stays
// open to every process of the jail. One root-mode and one user-namespace jail.
// Addresses: none.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SecurityHost } from './helpers.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { guestDir } from '../../src/layout.ts';

/** A request on the jail's guest socket from inside, printed as "STATUS BODY". */
const ask = (method: string, path: string): string =>
  `python3 -c '
import socket
s = socket.socket(socket.AF_UNIX)
s.connect("/run/jailyard/guest.sock")
s.sendall(b"${method} ${path} HTTP/1.1\\r\\nHost: g\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n")
out = b""
while True:
    c = s.recv(4096)
    if not c: break
    out += c
head, _, body = out.partition(b"\\r\\n\\r\\n")
print(head.split(b" ")[1].decode(), body.decode().strip())
'`;

describe("the guest socket's privileged routes take the jail's root only", () => {
  let h: SecurityHost;
  const kids = (): string[] => {
    const store = openStore(h.state);
    try {
      return store
        .listJails()
        .map((j) => j.name)
        .filter((n) => n.includes('.'));
    } finally {
      store.close();
    }
  };
  const ready = (jail: string): boolean => {
    const store = openStore(h.state);
    try {
      return store.requireJail(jail).ready === true;
    } finally {
      store.close();
    }
  };

  before(async () => {
    h = await SecurityHost.open('groot');
    await h.jail('gr', { params: ['children.max=1', 'env=gr-env'] });
    await h.jail('gru', { params: ['userns', 'children.max=1', 'env=gru-env'] });
  });
  after(async () => {
    await h?.close();
  });

  for (const jail of ['gr', 'gru']) {
    test(`${jail}: without a daemon (jexec's channel), nobody's jail -c is refused and nothing is made; root's works`, async () => {
      const jexec = (script: string, user?: string) =>
        h.cli(['jexec', ...(user ? ['-U', user] : []), jail, '/bin/sh', '-c', script]);
      const create = `jail -c name=kid persist 'exec.start=touch /kid-ran'`;
      let r = await jexec(create, 'nobody');
      assert.notEqual(r.code, 0, `nobody made a child: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /only the jail's root may do this: Operation not permitted/);
      assert.deepEqual(kids(), []);
      // reading stays open: jls as nobody answers
      r = await jexec('jls name', 'nobody');
      assert.equal(r.code, 0, r.stderr);
      r = await jexec(create);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(kids(), [`${jail}.kid`]);
      r = await jexec('jail -r kid');
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(kids(), []);
    });
  }

  test("through the daemon's guest socket: nobody may read env and list, not make a child nor change readiness; root may", async () => {
    const daemon = await h.serve();
    try {
      for (const jail of ['gr', 'gru']) {
        const sock = join(guestDir(h.state, jail), 'guest.sock');
        for (const t0 = Date.now(); !existsSync(sock); await new Promise((r) => setTimeout(r, 20)))
          if (Date.now() - t0 > 10_000) throw new Error(`no guest socket for ${jail}`);
        const asNobody = { user: 'nobody' };
        let r = await h.sh(jail, ask('GET', '/env'), asNobody);
        assert.equal(r.stdout.trim(), `200 ${jail}-env`, r.stderr);
        r = await h.sh(jail, ask('PUT', '/ready'), asNobody);
        assert.match(r.stdout, /^403 \/ready: only the jail's root may do this/, r.stderr);
        assert.equal(ready(jail), false, 'nobody made the jail ready');
        r = await h.sh(jail, `jail -c name=kid persist 'exec.start=touch /kid-ran'`, asNobody);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /only the jail's root may do this: Operation not permitted/);
        assert.deepEqual(kids(), []);
        r = await h.sh(jail, 'jls name', asNobody);
        assert.equal(r.code, 0, r.stderr);
        // the jail's root: uid 0 inside (host uid 0, or the range's first uid for gru)
        r = await h.sh(jail, ask('PUT', '/ready'));
        assert.equal(r.stdout.trim(), '204', r.stderr);
        assert.equal(ready(jail), true);
        r = await h.sh(jail, ask('DELETE', '/ready'), asNobody);
        assert.match(r.stdout, /^403 /);
        assert.equal(ready(jail), true, 'nobody took readiness away');
        r = await h.sh(jail, `jail -c name=kid persist`);
        assert.equal(r.code, 0, r.stderr);
        r = await h.sh(jail, 'jail -r kid');
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(kids(), []);
      }
    } finally {
      await daemon.stop();
    }
  });
});
