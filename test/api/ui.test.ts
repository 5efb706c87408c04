// /ui (src/api/ui.ts), /v1/skeletons, /v1/rollouts and a jail's plan through inject(): the dashboard's files are the only
// routes served without the bearer token, each with its content type and the strict CSP;
// anything else under /ui is a 404 in the API's error form, never a file outside the folder.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app.ts';
import { UI_CSP } from '../../src/api/ui.ts';
import { openStore } from '../../src/store/sqlite.ts';
import type { Store } from '../../src/store/types.ts';
import { cliFor } from '../helpers/cli.ts';
import { storeOnlyService, tempState } from './helpers.ts';

describe('/ui, /v1/skeletons and /v1/rollouts through inject()', () => {
  const state = tempState('jy-api-ui-');
  // the folder's parent holds a file no URL may reach
  const uiDir = join(state.dir, 'ui');
  let store: Store;
  let app: FastifyInstance;
  const bearer = { authorization: 'Bearer sesame' };

  before(async () => {
    mkdirSync(uiDir);
    writeFileSync(join(uiDir, 'index.html'), '<!doctype html><title>t</title>');
    writeFileSync(join(uiDir, 'app.js'), 'export {};');
    writeFileSync(join(uiDir, 'app.css'), 'body{}');
    writeFileSync(join(state.dir, 'secret.js'), 'NOT-FOR-THE-BROWSER');
    store = openStore(state.dir);
    // every injected request counts as TCP: the token is required
    app = buildApp({ store, service: storeOnlyService(store), uiDir, auth: { token: 'sesame', required: () => true } });
    await app.ready();
  });
  after(async () => {
    await app.close();
    store.close();
    state.cleanup();
  });

  test('the page, script and style sheet: no token needed, their content types, the CSP', async () => {
    for (const [url, type] of [
      ['/ui/', 'text/html; charset=utf-8'],
      ['/ui/index.html', 'text/html; charset=utf-8'],
      ['/ui/app.js', 'text/javascript; charset=utf-8'],
      ['/ui/app.css', 'text/css; charset=utf-8'],
    ] as const) {
      const res = await app.inject({ url });
      assert.equal(res.statusCode, 200, url);
      assert.equal(res.headers['content-type'], type, url);
      assert.equal(res.headers['content-security-policy'], UI_CSP, url);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', url);
    }
    assert.match(UI_CSP, /default-src 'none'/);
    assert.doesNotMatch(UI_CSP, /unsafe-inline|unsafe-eval/);
    const redirect = await app.inject({ url: '/ui' });
    assert.equal(redirect.statusCode, 302);
    assert.equal(redirect.headers.location, '/ui/');
  });

  test('every other answer (JSON, an error) runs nothing in a browser: CSP none, nosniff, no framing', async () => {
    for (const res of [
      await app.inject({ url: '/v1/jails', headers: bearer }),
      await app.inject({ url: '/v1/jails' }),
      await app.inject({ url: '/v1/nothing-here', headers: bearer }),
    ]) {
      assert.equal(res.headers['content-security-policy'], "default-src 'none'; frame-ancestors 'none'", res.body);
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      assert.equal(res.headers['x-frame-options'], 'DENY');
      assert.equal(res.headers['referrer-policy'], 'no-referrer');
    }
  });

  test('the API still needs the token; nothing outside the folder is served', async () => {
    assert.equal((await app.inject({ url: '/v1/jails' })).statusCode, 401);
    assert.equal((await app.inject({ url: '/v1/jails', headers: bearer })).statusCode, 200);
    // a POST to /ui is no public route: the token is asked first
    assert.equal((await app.inject({ method: 'POST', url: '/ui/app.js' })).statusCode, 401);
    for (const url of [
      '/ui/../secret.js',
      '/ui/..%2fsecret.js',
      '/ui/%2e%2e/secret.js',
      '/ui/sub/app.js',
      '/ui/APP.JS',
      '/ui/.hidden.js',
      '/ui/missing.js',
      '/ui/app.js.map',
    ]) {
      const res = await app.inject({ url });
      assert.ok(res.statusCode === 404 || res.statusCode === 401, `${url}: ${res.statusCode}`);
      assert.doesNotMatch(res.body, /NOT-FOR-THE-BROWSER/, url);
    }
    const missing = await app.inject({ url: '/ui/missing.js' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().code, 'JY_ERR_ROUTE_NOT_FOUND');
  });

  test('a daemon whose dashboard is not built says so', async () => {
    const bare = buildApp({ store, service: storeOnlyService(store), uiDir: join(uiDir, 'absent') });
    await bare.ready();
    try {
      const res = await bare.inject({ url: '/ui/' });
      assert.equal(res.statusCode, 404);
      assert.match(res.json().message, /dashboard is not built.*npm run build/);
    } finally {
      await bare.close();
    }
  });

  test('GET /v1/skeletons: each skeleton with its versions', async () => {
    assert.deepEqual((await app.inject({ url: '/v1/skeletons', headers: bearer })).json(), { items: [] });
    const tree = join(state.dir, 'tree');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc', 'hostname'), 'tiny\n');
    const jy = cliFor(() => state.dir);
    assert.equal((await jy('skel', 'create', 'tiny', '--from', tree)).code, 0);
    const res = await app.inject({ url: '/v1/skeletons', headers: bearer });
    assert.equal(res.statusCode, 200);
    const [s] = res.json().items;
    assert.equal(s.name, 'tiny');
    assert.equal(s.versions.length, 1);
    assert.equal(s.versions[0].version, 1);
    assert.equal(s.versions[0].source, `from ${tree}`);
    assert.ok(s.versions[0].entries >= 2);
  });

  test('GET /v1/rollouts: the saved rollouts with their steps; anything else in the folder is skipped', async () => {
    assert.deepEqual((await app.inject({ url: '/v1/rollouts', headers: bearer })).json(), { items: [] });
    const dir = join(state.dir, 'rollouts');
    mkdirSync(dir);
    const saved = {
      version: 1,
      selector: 'app=www',
      from: 'version=v1',
      to: 'version=v2',
      replicas: 2,
      maxSurge: 1,
      maxUnavailable: 0,
      port: 80,
      healthPath: '/',
      prefix: 'www',
      phase: 'running',
      created: ['www-v2-1'],
      removed: [],
      log: [{ at: '2026-12-02T23:00:00.000Z', text: 'rollout app=www,version=v1 → app=www,version=v2' }],
    };
    writeFileSync(join(dir, 'app_www.json'), JSON.stringify(saved));
    writeFileSync(join(dir, 'broken.json'), '{"selector":');
    writeFileSync(join(dir, 'other.json'), JSON.stringify({ selector: 'x', phase: 1 }));
    writeFileSync(join(dir, 'app_www.json.123.tmp'), JSON.stringify(saved));
    const res = await app.inject({ url: '/v1/rollouts', headers: bearer });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), {
      items: [
        {
          id: 'app_www',
          selector: 'app=www',
          from: 'version=v1',
          to: 'version=v2',
          replicas: 2,
          phase: 'running',
          created: ['www-v2-1'],
          removed: [],
          log: saved.log,
          active: false,
          abortRequested: false,
        },
      ],
    });
    assert.equal((await app.inject({ url: '/v1/rollouts' })).statusCode, 401);
  });

  test('GET /v1/jails/NAME/plan: the mount plan a start would execute, as apply --dry-run has it', async () => {
    // the skeleton made by the test above
    const made = await app.inject({
      method: 'POST',
      url: '/v1/jails',
      headers: bearer,
      payload: { name: 'planned', params: { skeleton: 'tiny', persist: true, 'mount.devfs': true } },
    });
    assert.equal(made.statusCode, 201, made.body);
    const res = await app.inject({ url: '/v1/jails/planned/plan', headers: bearer });
    assert.equal(res.statusCode, 200, res.body);
    const { plan } = res.json() as { plan: { root: string; mounts: { kind: string; origin: string }[] } };
    assert.ok(plan.root.startsWith(state.dir), plan.root);
    assert.ok(
      plan.mounts.some((m) => m.kind === 'devfs'),
      JSON.stringify(plan.mounts),
    );
    const missing = await app.inject({ url: '/v1/jails/nope/plan', headers: bearer });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().code, 'JY_ERR_JAIL_NOT_FOUND');
  });
});
