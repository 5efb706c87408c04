import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { createRemoteService } from '../../src/api/client.ts';
import { Collector, stopCollectors, startTestDaemon, tempState, type TestDaemon } from './helpers.ts';
import { assertNoLeaks, snapshot } from '../helpers/leaks.ts';

async function ask(
  socketPath: string,
  method: 'GET' | 'PUT' | 'POST' | 'DELETE',
  path: string,
): Promise<{ status: number; body: string }> {
  const agent = new Agent({ connect: { socketPath } });
  try {
    const res = await request(`http://localhost${path}`, { method, dispatcher: agent });
    return { status: res.statusCode, body: await res.body.text() };
  } finally {
    await agent.close();
  }
}

describe('guest sockets (one per running jail)', () => {
  const state = tempState();
  const guestRoot = join(state.dir, 'guest');
  let d: TestDaemon;
  const sock = (name: string) => join(guestRoot, name, 'guest.sock');

  before(async () => {
    d = await startTestDaemon(state.dir, { guestRoot });
    const remote = createRemoteService(d.url);
    for (const [name, secret] of [
      ['g-a', 'alpha'],
      ['g-b', 'bravo'],
    ] as const) {
      await remote.create({
        spec: { name, params: { name, path: '/x' } },
        env: [
          { op: 'set', key: 'secret', value: secret },
          { op: 'set', key: 'role', value: name },
        ],
        meta: [{ op: 'set', key: 'admin_only', value: `meta-of-${name}` }],
      });
    }
  });
  after(async () => {
    await stopCollectors(d.url);
    await d.close();
    state.cleanup();
  });

  const waitFor = async (pred: () => boolean) => {
    const t0 = Date.now();
    while (!pred()) {
      if (Date.now() - t0 > 5000) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  test('a socket appears when the jail runs: mode 0666 in a 0755 folder', async () => {
    assert.equal(existsSync(sock('g-a')), false);
    await d.daemon.app.inject({ method: 'POST', url: '/v1/jails/g-a/start' });
    await d.daemon.app.inject({ method: 'POST', url: '/v1/jails/g-b/start' });
    await waitFor(() => existsSync(sock('g-a')) && existsSync(sock('g-b')));
    assert.equal(statSync(sock('g-a')).mode & 0o777, 0o666);
    assert.equal(statSync(join(guestRoot, 'g-a')).mode & 0o777, 0o755);
  });

  test("each socket answers with its own jail's env only, never meta", async () => {
    const a = await ask(sock('g-a'), 'GET', '/env');
    assert.equal(a.status, 200);
    assert.match(a.body, /secret=alpha/);
    assert.doesNotMatch(a.body, /bravo|admin_only|meta-of/);
    assert.equal((await ask(sock('g-a'), 'GET', '/env/secret')).body, 'alpha');
    assert.equal((await ask(sock('g-b'), 'GET', '/env/secret')).body, 'bravo');
    // no way to name another jail or reach meta through a socket
    assert.equal((await ask(sock('g-a'), 'GET', '/env/admin_only')).status, 404);
    assert.equal((await ask(sock('g-a'), 'GET', '/v1/jails/g-b')).status, 404);
    assert.equal((await ask(sock('g-a'), 'GET', '/env/../../v1/jails/g-b')).status, 404);
    assert.equal((await ask(sock('g-a'), 'GET', '/meta')).status, 404);
  });

  test('the socket works through a read-only bind of the guest folder (as the jail sees it)', async () => {
    const before = snapshot();
    const view = mkdtempSync(join(tmpdir(), 'jy-api-robind-'));
    const mount = (...args: string[]) => execFileSync('mount', args);
    mount('--bind', join(guestRoot, 'g-b'), view);
    try {
      mount('-o', 'remount,bind,ro', view);
      assert.throws(() => writeFileSync(join(view, 'x'), ''), /EROFS/);
      const r = await ask(join(view, 'guest.sock'), 'GET', '/env/secret');
      assert.equal(r.body, 'bravo');
    } finally {
      execFileSync('umount', [view]);
    }
    // the folder as the marker: only this test's mounts count (others run tests too)
    assertNoLeaks(before, view);
    rmSync(view, { recursive: true });
  });

  test('env changes are live', async () => {
    await d.daemon.app.inject({ method: 'PATCH', url: '/v1/jails/g-a', payload: { env: ['secret=alpha2'] } });
    assert.equal((await ask(sock('g-a'), 'GET', '/env/secret')).body, 'alpha2');
  });

  test('PUT /ready: the jail shows ready=true; watchers get a MODIFIED with the next global revision, kept in the log', async () => {
    // from the revision read first: a stream from "now" would miss a change made before its
    // request reached the daemon
    const global = d.store.currentRevision();
    const c = new Collector(d.url, { selector: 'role=g-a', since: global });
    const r = await ask(sock('g-a'), 'PUT', '/ready');
    assert.equal(r.status, 204);
    await c.until((ev) => ev.some((e) => e.type === 'MODIFIED'));
    await c.stop();
    assert.equal(c.events[0]!.jail!.ready, true);
    assert.equal(c.events[0]!.revision, global + 1);
    assert.deepEqual(
      d.store.eventsSince(global).map((e) => [e.revision, e.type, e.name, e.jail.ready]),
      [[global + 1, 'MODIFIED', 'g-a', true]],
    );
    assert.equal(d.store.requireJail('g-a').ready, true);
    assert.equal((await d.daemon.app.inject({ url: '/v1/jails/g-a' })).json().ready, true);
    assert.equal((await d.daemon.app.inject({ url: '/v1/jails/g-b' })).json().ready, false);
    // the CLI (another store connection, no daemon) sees it too
    assert.equal((await createRemoteService(d.url).get('g-a')).ready, true);
  });

  test('PUT /ready again changes nothing (no revision, no event); POST works like PUT', async () => {
    const global = d.store.currentRevision();
    assert.equal((await ask(sock('g-a'), 'PUT', '/ready')).status, 204);
    assert.equal((await ask(sock('g-a'), 'POST', '/ready')).status, 204);
    assert.equal(d.store.currentRevision(), global);
    assert.equal((await ask(sock('g-a'), 'GET', '/ready')).status, 405);
  });

  test('a watcher resuming with since gets the readiness event', async () => {
    const since = d.store.currentRevision();
    assert.equal((await ask(sock('g-b'), 'POST', '/ready')).status, 204);
    // connects only after the change: the event comes from the log (resume), not live
    const c = new Collector(d.url, { since });
    await c.until((ev) => ev.some((e) => e.type === 'MODIFIED' && e.jail?.name === 'g-b'));
    await c.stop();
    assert.deepEqual(
      c.events.map((e) => [e.type, e.revision, e.jail?.name, e.jail?.ready]),
      [['MODIFIED', since + 1, 'g-b', true]],
    );
  });

  test('DELETE /ready takes readiness back (one MODIFIED event)', async () => {
    // from the revision read first: a stream from "now" would miss a change made before its
    // request reached the daemon
    const global = d.store.currentRevision();
    const c = new Collector(d.url, { selector: 'role=g-b', since: global });
    assert.equal((await ask(sock('g-b'), 'DELETE', '/ready')).status, 204);
    await c.until((ev) => ev.some((e) => e.type === 'MODIFIED'));
    await c.stop();
    assert.deepEqual(
      c.events.map((e) => [e.type, e.revision, e.jail?.ready]),
      [['MODIFIED', global + 1, false]],
    );
    assert.equal(d.store.requireJail('g-b').ready, false);
    assert.equal((await ask(sock('g-b'), 'PUT', '/ready')).status, 204);
    assert.equal(d.store.requireJail('g-b').ready, true);
  });

  test('stopping the jail removes its socket and its readiness', async () => {
    await d.daemon.app.inject({ method: 'POST', url: '/v1/jails/g-a/stop' });
    await waitFor(() => !existsSync(sock('g-a')));
    assert.equal((await d.daemon.app.inject({ url: '/v1/jails/g-a' })).json().ready, false);
    assert.ok(existsSync(sock('g-b')));
  });

  test('closing the daemon removes every guest socket; readiness survives the daemon restart', async () => {
    assert.equal((await d.daemon.app.inject({ url: '/v1/jails/g-b' })).json().ready, true);
    await d.close();
    assert.equal(existsSync(sock('g-b')), false);
    d = await startTestDaemon(state.dir, { guestRoot });
    await waitFor(() => existsSync(sock('g-b')));
    assert.equal((await d.daemon.app.inject({ url: '/v1/jails/g-b' })).json().ready, true);
    const list = (await d.daemon.app.inject({ url: '/v1/jails?fields=ready' })).json();
    assert.deepEqual(list.items, [
      { name: 'g-a', ready: false },
      { name: 'g-b', ready: true },
    ]);
  });

  test('a restart clears readiness and leaves one working socket (its shut and open never overlap)', async () => {
    await d.daemon.app.inject({ method: 'POST', url: '/v1/jails/g-b/restart' });
    assert.equal((await d.daemon.app.inject({ url: '/v1/jails/g-b' })).json().ready, false);
    // the socket is shut and opened again after the restart's events reach the guest hub:
    // asked until it answers (a request to the old one may be cut when it shuts)
    let answer: string | undefined;
    for (const end = Date.now() + 5000; answer !== 'bravo' && Date.now() < end; ) {
      answer = await ask(sock('g-b'), 'GET', '/env/secret').then(
        (r) => r.body,
        () => undefined,
      );
      if (answer !== 'bravo') await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(answer, 'bravo');
    assert.ok(existsSync(sock('g-b')));
    assert.equal((await ask(sock('g-b'), 'PUT', '/ready')).status, 204);
    assert.equal(d.store.requireJail('g-b').ready, true);
  });
});
