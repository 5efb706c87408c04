import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app.ts';
import { openStore } from '../../src/store/sqlite.ts';
import type { Store } from '../../src/store/types.ts';
import { storeOnlyService, tempState } from './helpers.ts';

describe('jail routes through inject()', () => {
  const state = tempState();
  let store: Store;
  let app: FastifyInstance;

  before(async () => {
    store = openStore(state.dir);
    app = buildApp({ store, service: storeOnlyService(store), bodyLimit: 64 * 1024 });
    await app.ready();
  });
  after(async () => {
    await app.close();
    store.close();
    state.cleanup();
  });

  const create = (name: string, extra: Record<string, unknown> = {}) =>
    app.inject({
      method: 'POST',
      url: '/v1/jails',
      payload: { name, params: { path: `/srv/${name}`, persist: true }, ...extra },
    });

  test('POST creates: 201, the jail view, ETag = revision; meta as words, env as a buffer', async () => {
    const res = await create('web1', { meta: ['meta.app=www', 'version=v1'], env: 'role=front' });
    assert.equal(res.statusCode, 201);
    const body = res.json();
    assert.equal(body.name, 'web1');
    assert.equal(body.state, 'stopped');
    assert.equal(body.meta, 'version=v1\napp=www');
    assert.deepEqual(body.labels, { role: 'front', app: 'www', version: 'v1' });
    assert.equal(body.params.path, '/srv/web1');
    assert.equal(body.ready, false);
    assert.equal(res.headers.etag, `"${body.revision}"`);
  });

  test('POST an existing name: 409 JY_ERR_JAIL_EXISTS naming the jail', async () => {
    const res = await create('web1');
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().code, 'JY_ERR_JAIL_EXISTS');
  });

  test('GET list: { revision, items }, label selector, field selection', async () => {
    await create('web2', { meta: ['app=www', 'version=v2'] });
    await create('db1', { meta: ['app=db'] });
    const all = await app.inject({ url: '/v1/jails' });
    assert.equal(all.statusCode, 200);
    assert.equal(all.json().revision, store.currentRevision());
    assert.deepEqual(
      all.json().items.map((j: { name: string }) => j.name),
      ['db1', 'web1', 'web2'],
    );
    const sel = await app.inject({
      url: `/v1/jails?labelSelector=${encodeURIComponent('app=www,version in (v2)')}&fields=name,labels`,
    });
    assert.deepEqual(sel.json().items, [{ name: 'web2', labels: { version: 'v2', app: 'www' } }]);
  });

  test('GET list with a bad selector: 400 JY_ERR_SELECTOR; unknown field: 400 JY_ERR_USAGE param fields', async () => {
    const bad = await app.inject({ url: `/v1/jails?labelSelector=${encodeURIComponent('app in (')}` });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().code, 'JY_ERR_SELECTOR');
    const field = await app.inject({ url: '/v1/jails?fields=name,bogus' });
    assert.equal(field.statusCode, 400);
    assert.equal(field.json().code, 'JY_ERR_USAGE');
    assert.equal(field.json().param, 'fields');
  });

  test('GET one: ETag; unknown jail: 404 JY_ERR_JAIL_NOT_FOUND with jail', async () => {
    const res = await app.inject({ url: '/v1/jails/web1' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers.etag, `"${res.json().revision}"`);
    const missing = await app.inject({ url: '/v1/jails/nope' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().code, 'JY_ERR_JAIL_NOT_FOUND');
    assert.equal(missing.json().jail, 'nope');
  });

  test('PATCH: meta words and op objects, params; If-Match compare-and-swap → 412', async () => {
    const cur = (await app.inject({ url: '/v1/jails/web1' })).json();
    const ok = await app.inject({
      method: 'PATCH',
      url: '/v1/jails/web1',
      headers: { 'if-match': `"${cur.revision}"` },
      payload: { params: { 'host.hostname': 'web1.example' }, meta: ['meta.version=v3', { op: 'remove', key: 'app' }] },
    });
    assert.equal(ok.statusCode, 200);
    assert.equal(ok.json().meta, 'version=v3');
    assert.equal(ok.json().params['host.hostname'], 'web1.example');
    assert.equal(ok.headers.etag, `"${ok.json().revision}"`);
    // the same (now stale) revision again
    const stale = await app.inject({
      method: 'PATCH',
      url: '/v1/jails/web1',
      headers: { 'if-match': String(cur.revision) },
      payload: { meta: ['x=1'] },
    });
    assert.equal(stale.statusCode, 412);
    assert.equal(stale.json().code, 'JY_ERR_REVISION_CONFLICT');
    assert.equal((await app.inject({ url: '/v1/jails/web1' })).json().meta, 'version=v3');
  });

  test('PATCH validation: wrong types name the field (400 JY_ERR_USAGE), bad If-Match, bad meta key', async () => {
    const res = await app.inject({ method: 'PATCH', url: '/v1/jails/web1', payload: { unset: { path: true } } });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().code, 'JY_ERR_USAGE');
    assert.equal(res.json().param, 'unset');
    const extra = await app.inject({ method: 'PATCH', url: '/v1/jails/web1', payload: { bogus: 1 } });
    assert.equal(extra.statusCode, 400);
    assert.equal(extra.json().param, 'bogus');
    const im = await app.inject({
      method: 'PATCH',
      url: '/v1/jails/web1',
      headers: { 'if-match': 'abc' },
      payload: {},
    });
    assert.equal(im.statusCode, 400);
    assert.equal(im.json().param, 'If-Match');
    const key = await app.inject({ method: 'PATCH', url: '/v1/jails/web1', payload: { meta: ['meta.=x'] } });
    assert.equal(key.statusCode, 400);
    assert.equal(key.json().code, 'JY_ERR_META_KEY');
    const word = await app.inject({ method: 'PATCH', url: '/v1/jails/web1', payload: { meta: ['env.x=1'] } });
    assert.equal(word.statusCode, 400);
    assert.equal(word.json().code, 'JY_ERR_USAGE');
    assert.equal(word.json().param, 'meta');
  });

  test('POST start/stop return the BatchResult; an invalid transition answers 409 with it', async () => {
    const s = await app.inject({ method: 'POST', url: '/v1/jails/web2/start' });
    assert.equal(s.statusCode, 200);
    assert.deepEqual(s.json(), { ok: true, outcomes: [{ name: 'web2', status: 'ok' }] });
    assert.equal((await app.inject({ url: '/v1/jails/web2' })).json().state, 'running');
    const again = await app.inject({ method: 'POST', url: '/v1/jails/web2/start' });
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().ok, false);
    assert.equal(again.json().outcomes[0].code, 'JY_ERR_INVALID_TRANSITION');
    const b = await app.inject({ method: 'POST', url: '/v1/batch/stop', payload: { names: ['web2'] } });
    assert.equal(b.statusCode, 200);
  });

  test('DELETE with a stale If-Match: 412, the jail stays; then removed', async () => {
    const cur = (await app.inject({ url: '/v1/jails/db1' })).json();
    const stale = await app.inject({
      method: 'DELETE',
      url: '/v1/jails/db1',
      headers: { 'if-match': String(cur.revision - 1) },
    });
    assert.equal(stale.statusCode, 412);
    assert.equal(stale.json().code, 'JY_ERR_REVISION_CONFLICT');
    const ok = await app.inject({
      method: 'DELETE',
      url: '/v1/jails/db1',
      headers: { 'if-match': String(cur.revision) },
    });
    assert.equal(ok.statusCode, 200);
    assert.equal((await app.inject({ url: '/v1/jails/db1' })).statusCode, 404);
  });

  test('oversize body: 413 JY_ERR_BODY_TOO_LARGE; unknown route: 404 JSON; bad JSON: 400', async () => {
    const big = await app.inject({
      method: 'POST',
      url: '/v1/jails',
      payload: { name: 'big', meta: 'x'.repeat(100 * 1024) },
    });
    assert.equal(big.statusCode, 413);
    assert.equal(big.json().code, 'JY_ERR_BODY_TOO_LARGE');
    const nf = await app.inject({ url: '/v2/nothing' });
    assert.equal(nf.statusCode, 404);
    assert.equal(nf.json().code, 'JY_ERR_ROUTE_NOT_FOUND');
    const badJson = await app.inject({
      method: 'POST',
      url: '/v1/jails',
      headers: { 'content-type': 'application/json' },
      payload: '{"name":',
    });
    assert.equal(badJson.statusCode, 400);
    assert.equal(badJson.json().code, 'JY_ERR_USAGE');
  });

  test('meta over meta_maxbufsize: 413 JY_ERR_META_TOO_LARGE from the store', async () => {
    const res = await app.inject({ method: 'PATCH', url: '/v1/jails/web1', payload: { meta: 'x'.repeat(5000) } });
    assert.equal(res.statusCode, 413);
    assert.equal(res.json().code, 'JY_ERR_META_TOO_LARGE');
  });

  test('/openapi.json describes the routes; /metrics has the jailyard series', async () => {
    const doc = (await app.inject({ url: '/openapi.json' })).json();
    assert.match(doc.openapi, /^3\./);
    assert.ok(doc.paths['/v1/jails']?.get);
    assert.ok(doc.paths['/v1/jails/{name}']?.patch);
    const m = await app.inject({ url: '/metrics' });
    assert.equal(m.statusCode, 200);
    assert.match(m.body, /jailyard_jails\{state="stopped"\} \d+/);
    assert.match(m.body, /jailyard_revision \d+/);
    assert.match(m.body, /jailyard_http_request_duration_seconds_bucket\{.*route="\/v1\/jails\/:name".*\}/);
    assert.match(m.body, /jailyard_watch_subscribers \d+/);
  });
});
