// A jail toggling its readiness in a loop (PUT/DELETE /ready on its guest socket, ~1,000 a
// second in the red-team run of 2026-12-04) grew the store by a write and an event per
// toggle and pushed other jails' events out of the watch history. The guest socket now
// stores readiness changes through a token bucket per tree of jails (src/api/guest.ts
// #setReady): `guestReadyBurst` at once, then one per `guestReadyIntervalMs`; a change asked
// for over that is coalesced (202) and the latest one is stored when the next token is due.
// No real jail: the store-only service of test/api/helpers.ts walks the state machine and
// the guest sockets are real unix sockets.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startTestDaemon, tempState, type TestDaemon } from '../api/helpers.ts';

const BURST = 3;
const INTERVAL_MS = 200;

describe('guest /ready under a toggling flood', () => {
  const state = tempState('jy-f6-ready-');
  const guestRoot = join(state.dir, 'guest');
  const sock = (name: string) => join(guestRoot, name, 'guest.sock');
  const agents = new Map<string, Agent>();
  let d: TestDaemon;

  /** One request through a kept-alive connection of the jail's socket. */
  const ask = async (name: string, method: 'PUT' | 'DELETE') => {
    let agent = agents.get(name);
    if (!agent) {
      agent = new Agent({ connect: { socketPath: sock(name) } });
      agents.set(name, agent);
    }
    const res = await request('http://localhost/ready', { method, dispatcher: agent });
    return { status: res.statusCode, body: await res.body.text() };
  };
  /** The store's events of `name` after revision `since`. */
  const eventsOf = (name: string, since: number) => d.store.eventsSince(since).filter((e) => e.name === name);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  before(async () => {
    d = await startTestDaemon(state.dir, {
      guestRoot,
      limits: { guestReadyBurst: BURST, guestReadyIntervalMs: INTERVAL_MS },
    });
    for (const name of ['f6-ra', 'f6-rb', 'f6-rb.kid']) {
      await d.service.create({ spec: { name, params: { name, path: '/x' } } });
      await d.service.start([name]);
    }
    for (
      const t0 = Date.now();
      !(existsSync(sock('f6-ra')) && existsSync(sock('f6-rb')) && existsSync(sock('f6-rb.kid')));
      await sleep(10)
    )
      if (Date.now() - t0 > 5000) throw new Error('no guest sockets');
  });
  after(async () => {
    await Promise.all([...agents.values()].map((a) => a.close()));
    await d.close();
    state.cleanup();
  });

  test('a burst of toggles stores at most the allowed changes; the last one asked for wins, promptly', async () => {
    const since = d.store.currentRevision();
    const t0 = Date.now();
    const statuses = new Map<number, number>();
    const n = 301; // odd: the flood ends on PUT
    for (let i = 0; i < n; i++) {
      const r = await ask('f6-ra', i % 2 === 0 ? 'PUT' : 'DELETE');
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status === 202) assert.match(r.body, /limited to 3 at once, then one per 200 ms/);
    }
    const elapsed = Date.now() - t0;
    // every request was answered, none refused: over the limit they coalesce
    assert.deepEqual(
      [...statuses.keys()].filter((s) => s !== 204 && s !== 202),
      [],
    );
    assert.ok((statuses.get(202) ?? 0) > 0, 'the flood went over the limit');
    // the final word is stored within one interval of the flood's end
    await sleep(INTERVAL_MS + 100);
    assert.equal(d.store.requireJail('f6-ra').ready, true);
    const events = eventsOf('f6-ra', since);
    const allowed = BURST + Math.ceil((Date.now() - t0) / INTERVAL_MS) + 1;
    assert.ok(events.length <= allowed, `${events.length} readiness events for ${n} toggles in ${elapsed} ms`);
    assert.ok(events.every((e) => e.type === 'MODIFIED'));
    assert.equal(events.at(-1)!.jail.ready, true);
  });

  test('a flood ending on DELETE leaves the jail not ready', async () => {
    for (let i = 0; i < 40; i++) await ask('f6-ra', i % 2 === 0 ? 'DELETE' : 'PUT');
    await ask('f6-ra', 'DELETE');
    await sleep(INTERVAL_MS + 100);
    assert.equal(d.store.requireJail('f6-ra').ready, false);
  });

  test("another jail's readiness is stored at once while the first one floods", async () => {
    const since = d.store.currentRevision();
    const flood = (async () => {
      for (let i = 0; i < 200; i++) await ask('f6-ra', i % 2 === 0 ? 'PUT' : 'DELETE');
    })();
    await sleep(20);
    const r = await ask('f6-rb', 'PUT');
    assert.equal(r.status, 204);
    assert.equal(d.store.requireJail('f6-rb').ready, true);
    await flood;
    assert.equal(eventsOf('f6-rb', since).length, 1);
    assert.equal((await ask('f6-rb', 'DELETE')).status, 204);
    assert.equal(d.store.requireJail('f6-rb').ready, false);
  });

  test('a jail and its children share one budget: children do not multiply the rate (third red-team run)', async () => {
    await sleep(BURST * INTERVAL_MS + 100); // a full bucket
    const since = d.store.currentRevision();
    const t0 = Date.now();
    for (let i = 0; i < 4; i++) {
      await ask('f6-rb', i % 2 === 0 ? 'PUT' : 'DELETE');
      await ask('f6-rb.kid', i % 2 === 0 ? 'PUT' : 'DELETE');
    }
    const stored = [...eventsOf('f6-rb', since), ...eventsOf('f6-rb.kid', since)].length;
    const allowed = BURST + Math.floor((Date.now() - t0) / INTERVAL_MS) + 1;
    assert.ok(stored <= allowed, `${stored} changes stored, the tree's budget is ${allowed}`);
    // the last word of each is stored once the budget allows
    await sleep(3 * INTERVAL_MS + 100);
    assert.equal(d.store.requireJail('f6-rb').ready, false);
    assert.equal(d.store.requireJail('f6-rb.kid').ready, false);
  });

  test('a request that changes nothing is answered 204 without a write, also over the limit', async () => {
    await sleep(BURST * INTERVAL_MS + 100);
    const want = d.store.requireJail('f6-ra').ready ? 'PUT' : 'DELETE';
    const since = d.store.currentRevision();
    for (let i = 0; i < 100; i++) assert.equal((await ask('f6-ra', want)).status, 204);
    assert.equal(d.store.currentRevision(), since);
  });

  test('a change waiting for the budget is dropped when the jail stops: a new life starts not ready', async () => {
    await sleep(BURST * INTERVAL_MS + 100);
    for (let i = 0; i < 2 * BURST; i++) await ask('f6-ra', i % 2 === 0 ? 'PUT' : 'DELETE');
    assert.equal((await ask('f6-ra', 'PUT')).status, 202);
    await d.service.restart(['f6-ra']);
    await sleep(INTERVAL_MS + 100);
    assert.equal(d.store.requireJail('f6-ra').state, 'running');
    assert.equal(d.store.requireJail('f6-ra').ready, false);
  });
});
