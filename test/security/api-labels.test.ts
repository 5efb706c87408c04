// Issue 11 item 12: `set J $'meta.note=x\ntier=admin'` wrote a second line that selectors
// and load-balancer pools then trusted as the label tier=admin. Per-key operations (CLI
// meta.k=v / env.k=v, API words and objects, create and set) now refuse a key or value
// that would write more than one line, naming the jail, the parameter and the key, and
// change nothing; whole-buffer writes keep FreeBSD's semantics. Only well-formed
// `key=value` lines (a valid label key) are labels.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor } from '../helpers/cli.ts';
import { startTestDaemon, type TestDaemon } from '../api/helpers.ts';
import { labelsOf } from '../../src/meta/labels.ts';
import { openStore } from '../../src/store/sqlite.ts';

describe('CLI: per-key meta/env writes cannot inject a label', () => {
  let dir: string;
  const jy = cliFor(() => dir);
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'jy-apic-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const record = () => {
    const store = openStore(dir);
    try {
      return store.requireJail('lab');
    } finally {
      store.close();
    }
  };

  test('set meta.note=$"x\\ntier=admin" is refused, naming jail, parameter and key; nothing changes', async () => {
    let r = await jy('create', 'lab', `path=${join(dir, 'root')}`, 'meta.note=ok', 'meta.tier=user');
    assert.equal(r.code, 0, r.stderr);
    const was = record();
    for (const word of [
      'meta.note=x\ntier=admin',
      'env.note=x\ntier=admin',
      'meta.note=x\r\ntier=admin',
      'meta.note=x\0y',
    ]) {
      r = await jy('set', 'lab', word);
      assert.notEqual(r.code, 0, `${JSON.stringify(word)} accepted`);
      assert.match(r.stderr, /JY_ERR_META_KEY|line break/);
      assert.match(r.stderr, /lab/);
      assert.match(r.stderr, /note/);
      assert.match(r.stderr, word.startsWith('env') ? /env/ : /meta/);
    }
    // several words: the good ones before the bad one are not applied either
    r = await jy('set', 'lab', 'meta.a=1', 'meta.note=x\ntier=admin');
    assert.notEqual(r.code, 0);
    const now = record();
    assert.equal(now.revision, was.revision);
    assert.equal(now.meta, was.meta);
    r = await jy('ls', '-a', '-l', 'tier=admin', 'name');
    assert.equal(r.stdout.trim(), '');
  });

  test('create refuses it too, and makes no jail', async () => {
    const r = await jy('create', 'lab2', `path=${join(dir, 'root2')}`, 'meta.note=x\ntier=admin');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /lab2/);
    assert.equal((await jy('ls', '-a', 'name')).stdout.includes('lab2'), false);
  });

  test('the whole-buffer form keeps FreeBSD semantics: the writer owns every line', async () => {
    const r = await jy('set', 'lab', 'meta=note=x\ntier=admin');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(record().meta, 'note=x\ntier=admin');
    assert.equal((await jy('ls', '-a', '-l', 'tier=admin', 'name')).stdout.trim(), 'lab');
  });
});

describe('API: per-key meta/env writes cannot inject a label', () => {
  let dir: string;
  let d: TestDaemon;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jy-apic-'));
    d = await startTestDaemon(dir);
    await d.service.create({
      spec: { name: 'web', params: { name: 'web', path: '/x' } },
      meta: [{ op: 'set', key: 'tier', value: 'user' }],
    });
  });
  after(async () => {
    await d.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const bad: Array<[string, unknown]> = [
    ['a word with a newline in the value', { meta: ['meta.note=x\ntier=admin'] }],
    ['a word without the prefix', { meta: ['note=x\ntier=admin'] }],
    ['an env word', { env: ['env.note=x\ntier=admin'] }],
    ['a set object, newline in the value', { meta: [{ op: 'set', key: 'note', value: 'x\ntier=admin' }] }],
    ['a set object, newline in the key', { meta: [{ op: 'set', key: 'x\ntier', value: 'admin' }] }],
    ['a set object, = in the key', { meta: [{ op: 'set', key: 'tier=admin', value: '' }] }],
    ['a set object, NUL in the value', { meta: [{ op: 'set', key: 'note', value: 'x\u0000tier=admin' }] }],
    ['a remove object, newline in the key', { meta: [{ op: 'remove', key: 'x\ntier' }] }],
    ['a carriage return', { env: [{ op: 'set', key: 'note', value: 'x\rtier=admin' }] }],
  ];
  for (const [what, body] of bad) {
    test(`PATCH refuses ${what} (400 JY_ERR_META_KEY naming jail, param, key), nothing changes`, async () => {
      const before = d.store.requireJail('web');
      const res = await d.daemon.app.inject({ method: 'PATCH', url: '/v1/jails/web', payload: body as object });
      assert.equal(res.statusCode, 400, res.body);
      const e = res.json() as { code: string; jail?: string; param?: string; key?: string };
      assert.equal(e.code, 'JY_ERR_META_KEY');
      assert.equal(e.jail, 'web');
      assert.ok(e.param === 'meta' || e.param === 'env');
      assert.equal(typeof e.key, 'string');
      const after = d.store.requireJail('web');
      assert.equal(after.revision, before.revision);
      assert.equal(after.meta, before.meta);
      assert.equal(after.env, before.env);
    });
  }

  test('POST /v1/jails refuses it and creates nothing', async () => {
    const res = await d.daemon.app.inject({
      method: 'POST',
      url: '/v1/jails',
      payload: { name: 'evil', params: { path: '/x' }, meta: ['meta.note=x\ntier=admin'] },
    });
    assert.equal(res.statusCode, 400);
    assert.equal((res.json() as { jail?: string }).jail, 'evil');
    assert.equal(d.store.getJail('evil'), undefined);
  });

  test('no selector sees tier=admin; a plain key write still works', async () => {
    const list = await d.daemon.app.inject({ method: 'GET', url: '/v1/jails?labelSelector=tier%3Dadmin' });
    assert.deepEqual((list.json() as { items: unknown[] }).items, []);
    const ok = await d.daemon.app.inject({
      method: 'PATCH',
      url: '/v1/jails/web',
      payload: { meta: ['meta.note=two words = fine'] },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal((ok.json() as { labels: Record<string, string> }).labels.note, 'two words = fine');
  });
});

describe('what a label is: only well-formed key=value lines', () => {
  test('lines whose key is not a valid label key are buffer text, not labels', () => {
    const meta = [
      'tier=web',
      'bad key=1',
      '=x',
      'tier =admin',
      ' tier=admin',
      'a/b/c=1',
      'Example.com/x=1',
      'x_=1',
      'plain text',
      'example.com/app=ok',
      'k=v=w',
    ].join('\n');
    assert.deepEqual(labelsOf(meta, ''), { tier: 'web', 'example.com/app': 'ok', k: 'v=w' });
  });

  test('the first line of a key wins inside a buffer, meta over env', () => {
    assert.deepEqual(labelsOf('tier=a\ntier=b', 'tier=c\nrole=r'), { tier: 'a', role: 'r' });
  });
});
