import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { createRemoteService, watch } from '../../src/api/client.ts';
import { parseListen } from '../../src/api/daemon.ts';
import { JailyardError } from '../../src/errors.ts';
import { startTestDaemon, tempState, type TestDaemon } from './helpers.ts';

const isCode =
  (code: string, extra: (e: JailyardError) => void = () => {}) =>
  (e: unknown) => {
    assert.ok(e instanceof JailyardError, String(e));
    assert.equal(e.code, code);
    extra(e);
    return true;
  };

describe('createRemoteService over the unix socket and TCP', () => {
  const state = tempState();
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  let d: TestDaemon;

  before(async () => {
    writeFileSync(join(state.dir, 'token'), token);
    d = await startTestDaemon(state.dir, { listen: { host: '127.0.0.1', port: 0 }, token });
  });
  after(async () => {
    await d.close();
    state.cleanup();
  });

  test('the same records and errors as the local service', async () => {
    const remote = createRemoteService(d.url);
    const created = await remote.create({
      spec: { name: 'c-1', params: { name: 'c-1', path: '/x' } },
      meta: [{ op: 'set', key: 'app', value: 'www' }],
    });
    const local = await d.service.get('c-1');
    assert.deepEqual(created, { ...local, runtime: null });
    assert.deepEqual(
      (await remote.list({ selector: 'app=www' })).map((j) => j.name),
      ['c-1'],
    );
    await assert.rejects(
      remote.get('nope'),
      isCode('JY_ERR_JAIL_NOT_FOUND', (e) => assert.equal(e.place.jail, 'nope')),
    );
    await assert.rejects(
      remote.create({ spec: { name: 'c-1', params: { name: 'c-1' } } }),
      isCode('JY_ERR_JAIL_EXISTS'),
    );
    await assert.rejects(
      remote.modify('c-1', { meta: [{ op: 'set', key: 'x', value: '1' }] }, { ifRevision: created.revision - 1 }),
      isCode('JY_ERR_REVISION_CONFLICT'),
    );
    const m = await remote.modify(
      'c-1',
      { meta: [{ op: 'set', key: 'x', value: '1' }] },
      { ifRevision: created.revision },
    );
    assert.equal(m.meta, 'x=1\napp=www');
    await assert.rejects(remote.list({ selector: 'a in (' }), isCode('JY_ERR_SELECTOR'));
  });

  test('batches: the BatchResult comes back even when a jail fails', async () => {
    const remote = createRemoteService(d.url);
    // a caller's AbortSignal (a CLI's signal trap) stays with the caller: the body is still valid
    const signal = new AbortController().signal;
    assert.deepEqual(await remote.start(['c-1'], { signal }), { ok: true, outcomes: [{ name: 'c-1', status: 'ok' }] });
    const again = await remote.start(['c-1']);
    assert.equal(again.ok, false);
    assert.equal(again.outcomes[0]!.code, 'JY_ERR_INVALID_TRANSITION');
    assert.equal((await remote.remove(['c-1'])).ok, true);
  });

  test('TCP needs the bearer token: 401 JY_ERR_UNAUTHORIZED without or with a wrong one', async () => {
    const url = `http://${d.daemon.tcp!.host}:${d.daemon.tcp!.port}`;
    assert.equal(d.daemon.tcp!.host, '127.0.0.1');
    const bare = await request(`${url}/v1/jails`);
    assert.equal(bare.statusCode, 401);
    assert.equal(((await bare.body.json()) as { code: string }).code, 'JY_ERR_UNAUTHORIZED');
    await assert.rejects(createRemoteService(url, { token: 'wrong' }).list(), isCode('JY_ERR_UNAUTHORIZED'));
    assert.ok(Array.isArray(await createRemoteService(url, { token }).list()));
    // the watch stream too
    const ac = new AbortController();
    for await (const e of watch(url, { token, bookmarks: true, signal: ac.signal })) {
      assert.equal(e.type, 'BOOKMARK');
      ac.abort();
    }
    await assert.rejects(async () => {
      for await (const _ of watch(url, { token: 'wrong' })) break;
    }, isCode('JY_ERR_UNAUTHORIZED'));
    // the unix socket (mode 0600) needs none
    assert.equal(statSync(d.daemon.socketPath).mode & 0o777, 0o600);
    assert.ok(Array.isArray(await createRemoteService(d.url).list()));
  });

  test('an unreachable daemon: JY_ERR_DAEMON_UNREACHABLE', async () => {
    await assert.rejects(
      createRemoteService(`unix://${state.dir}/nothing.sock`).list(),
      isCode('JY_ERR_DAEMON_UNREACHABLE'),
    );
  });

  test('parseListen: HOST:PORT, [v6]:PORT, :PORT (loopback); bad input names --listen', () => {
    assert.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListen('[::1]:80'), { host: '::1', port: 80 });
    assert.deepEqual(parseListen(':9'), { host: '127.0.0.1', port: 9 });
    assert.throws(
      () => parseListen('nope'),
      isCode('JY_ERR_USAGE', (e) => assert.equal(e.place.param, '--listen')),
    );
  });
});
