// Who may talk to the daemon's unix sockets (issue 11 item 4, guest sockets; item 8): a
// jail's guest socket serves only processes of that jail, and the API socket no process
// inside any jail, even when a view of the host's tree (a basejail of the live root) shows
// them the socket files. The peer is told by SO_PEERCRED (native/jy-peer) and the jail's
// recorded namespaces.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SecurityHost } from './helpers.ts';
import { rawRequest } from './api-helpers.ts';
import { JY_PEER } from '../../src/api/peer.ts';

/** python3 in `jail` (or on the host in another jail's pid namespace): one request, prints the status line. */
const ASK = (path: string, request: string) => `
import socket
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect(${JSON.stringify(path)})
    s.sendall(${JSON.stringify(request)}.encode())
    print(s.recv(200).decode(errors="replace").split("\\r\\n")[0] or "EMPTY")
except OSError as e:
    print("OSERROR", e.errno)
`;
const GET_ENV = 'GET /env HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
const GET_JAILS = 'GET /v1/jails HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';

describe('unix socket peers (guest sockets, the API socket)', {
  skip: !existsSync(JY_PEER) && 'native/build/jy-peer is not built',
}, () => {
  let h: SecurityHost;
  let daemon: Awaited<ReturnType<SecurityHost['serve']>>;
  const guestOf = (name: string) => join(h.jailDir(name), 'guest', 'guest.sock');
  const initPid = (name: string) => h.facts(name).initPid;
  /** python3 on the host's tree, in `jail`'s pid namespace only: a process of that jail that
   * can name the host's paths (what a view of the host tree gives a jail). */
  const fromOtherJail = (jail: string, script: string) =>
    execFileSync('nsenter', ['-t', String(initPid(jail)), '-p', '--', '/usr/bin/python3', '-c', script], {
      encoding: 'utf8',
    }).trim();

  before(async () => {
    h = await SecurityHost.open('apic-peer');
    await h.jail('gp1', { strategy: 'nullfs' });
    await h.jail('gp2', { strategy: 'basejail' });
    daemon = await h.serve();
    const t0 = Date.now();
    while (!existsSync(guestOf('gp1')) || !existsSync(guestOf('gp2'))) {
      if (Date.now() - t0 > 10_000) throw new Error('guest sockets did not appear');
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  after(async () => {
    await daemon?.stop();
    await h?.close();
  });

  test('a process of the jail is served by its guest socket', async () => {
    const r = await h.exec('gp1', ['/usr/bin/python3', '-c', ASK('/run/jailyard/guest.sock', GET_ENV)]);
    assert.equal(r.stdout.trim(), 'HTTP/1.1 200 OK', r.stderr);
  });

  test("a host process gets 403 from a jail's guest socket; the host keeps the API", async () => {
    const r = await rawRequest({ path: guestOf('gp1') }, GET_ENV, 5000);
    assert.equal(r.status, 403, r.text);
    assert.equal((await rawRequest({ path: daemon.socket }, GET_JAILS, 5000)).status, 200);
  });

  test('a process of another jail gets 403 from the guest socket and 401 from the API socket', () => {
    assert.equal(fromOtherJail('gp2', ASK(guestOf('gp1'), GET_ENV)), 'HTTP/1.1 403 Forbidden');
    assert.equal(fromOtherJail('gp2', ASK(daemon.socket, GET_JAILS)), 'HTTP/1.1 401 Unauthorized');
  });

  test('the connecting process exits and a child of it asks: 401 (a peer that cannot be read is not the host)', () => {
    // SO_PEERCRED names the process that connected; once it is gone its namespaces cannot be
    // read (and its number may be reused by a host process). Audit: a jail's process got 200
    const out = join(h.jailDir('gp1'), '..', 'peer-handoff.txt');
    const handOff = `
import os, socket, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(${JSON.stringify(daemon.socket)})
if os.fork() == 0:
    time.sleep(0.5)
    s.sendall(${JSON.stringify(GET_JAILS)}.encode())
    try:
        line = s.recv(200).decode(errors="replace").split("\\r\\n")[0] or "EMPTY"
    except OSError as e:
        line = "OSERROR %d" % e.errno
    open(${JSON.stringify(out)}, "w").write(line)
os._exit(0)
`;
    const answer = (): string => {
      const t0 = Date.now();
      while (!existsSync(out) && Date.now() - t0 < 10_000) execFileSync('sleep', ['0.1']);
      const line = readFileSync(out, 'utf8');
      rmSync(out);
      return line;
    };
    fromOtherJail('gp2', handOff);
    assert.equal(answer(), 'HTTP/1.1 401 Unauthorized', 'a process of a jail');
    execFileSync('/usr/bin/python3', ['-c', handOff]);
    assert.equal(answer(), 'HTTP/1.1 401 Unauthorized', 'and the same hand-off on the host: unknown is refused');
    assert.equal(fromOtherJail('gp2', ASK(daemon.socket, GET_JAILS)), 'HTTP/1.1 401 Unauthorized');
  });

  test("through a basejail's view of the host tree: the same refusals", async (t) => {
    const view = (p: string) => join('/basejail', p);
    const probe = await h.exec('gp2', [
      '/usr/bin/python3',
      '-c',
      `import os; print(os.path.exists(${JSON.stringify(view(guestOf('gp1')))}))`,
    ]);
    if (probe.stdout.trim() !== 'True') return t.skip('the basejail view does not show the state folder');
    const g = await h.exec('gp2', ['/usr/bin/python3', '-c', ASK(view(guestOf('gp1')), GET_ENV)]);
    assert.match(g.stdout.trim(), /^(HTTP\/1\.1 403 Forbidden|OSERROR \d+)$/, g.stderr);
    const a = await h.exec('gp2', ['/usr/bin/python3', '-c', ASK(view(daemon.socket), GET_JAILS)]);
    assert.match(a.stdout.trim(), /^(HTTP\/1\.1 401 Unauthorized|OSERROR \d+)$/, a.stderr);
  });
});
