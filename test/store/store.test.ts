// The SQLite store on real files: CRUD, CAS, transitions, jids, meta/env through the store
// (jailmeta.sh cases at store level), settings, hierarchy limits, the event log.
import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type SqliteStore } from '../../src/store/sqlite.ts';
import { validateJailName } from '../../src/store/names.ts';
import { JailyardError, type ErrorCode } from '../../src/errors.ts';
import { parseMetaWord, readMetaKey, type MetaOp } from '../../src/meta/ops.ts';

function expectCode(fn: () => unknown, code: ErrorCode, check?: (e: JailyardError) => void): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof JailyardError, String(e));
    assert.equal(e.code, code, e.message);
    check?.(e);
    return true;
  });
}

/** `jail -m` words -> a JailChange's meta/env lists. */
function words(...ws: string[]): { meta: MetaOp[]; env: MetaOp[] } {
  const out = { meta: [] as MetaOp[], env: [] as MetaOp[] };
  for (const w of ws) {
    const p = parseMetaWord(w)!;
    out[p.param].push(p.op);
  }
  return out;
}

let dir: string;
let store: SqliteStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'jy-store-'));
  store = openStore(join(dir, 'state'));
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('store basics', () => {
  test('the folder is made with mode 0700 and holds jailyard.db in WAL mode', () => {
    assert.equal(statSync(join(dir, 'state')).mode & 0o777, 0o700);
    assert.ok(statSync(join(dir, 'state', 'jailyard.db')).isFile());
    store.createJail({ name: 'a', params: {} });
    assert.ok(statSync(join(dir, 'state', 'jailyard.db-wal')).isFile());
  });

  test('create, get, require, list ordered by name; exists / not found errors', () => {
    const a = store.createJail({ name: 'b', params: { 'host.hostname': 'b.example', persist: true } });
    store.createJail({ name: 'a', params: {} });
    assert.equal(a.state, 'stopped');
    assert.equal(a.jid, 0);
    assert.equal(a.meta, '');
    assert.equal(a.env, '');
    assert.deepEqual(store.getJail('b')?.params, { 'host.hostname': 'b.example', persist: true });
    assert.equal(store.getJail('zz'), undefined);
    assert.deepEqual(
      store.listJails().map((j) => j.name),
      ['a', 'b'],
    );
    expectCode(
      () => store.createJail({ name: 'a', params: {} }),
      'JY_ERR_JAIL_EXISTS',
      (e) => assert.equal(e.place.jail, 'a'),
    );
    expectCode(
      () => store.requireJail('zz'),
      'JY_ERR_JAIL_NOT_FOUND',
      (e) => assert.equal(e.place.jail, 'zz'),
    );
    expectCode(() => store.modifyJail('zz', {}), 'JY_ERR_JAIL_NOT_FOUND');
    expectCode(
      () => store.createJail({ name: 'c', params: { meta: 'x' } }),
      'JY_ERR_PARAM_VALUE',
      (e) => assert.equal(e.place.param, 'meta'),
    );
  });

  test('data survives reopening (another process sees the same file)', () => {
    store.createJail({ name: 'a', params: { x: 1 }, ...words('meta.k=v') });
    store.close();
    store = openStore(join(dir, 'state'));
    assert.equal(store.requireJail('a').meta, 'k=v');
    assert.deepEqual(store.requireJail('a').params, { x: 1 });
  });

  test('modify: params set and unset, revisions grow on every change', () => {
    const a = store.createJail({ name: 'a', params: { x: 1, y: 'z' } });
    const b = store.modifyJail('a', { params: { w: ['1', '2'] }, unset: ['y'] });
    assert.deepEqual(b.params, { x: 1, w: ['1', '2'] });
    assert.ok(b.revision > a.revision);
    store.recordRuntime('a', { steps: ['mount'] });
    const c = store.requireJail('a');
    assert.ok(c.revision > b.revision);
    assert.deepEqual(c.runtime, { steps: ['mount'] });
  });

  test('jail names: FreeBSD rules plus folder safety', () => {
    for (const ok of ['a', 'www', 'web-1', 'p.c', 'a.b.c', 'j_1', '1a', 'a.1b', 'café', 'ядро']) validateJailName(ok);
    for (const bad of [
      '',
      '1',
      '42',
      'a.7',
      '.a',
      'a.',
      'a..b',
      '..',
      'a/b',
      '/',
      'a b',
      'a\tb',
      'a\nb',
      // shown as another name: a right-to-left override, a zero-width space, a C1 control
      'x\u202e2u',
      'u2\u200b',
      'a\u0085b',
      '\ufeffa',
      '*',
      'x'.repeat(256),
    ]) {
      expectCode(
        () => validateJailName(bad),
        'JY_ERR_JAIL_NAME',
        (e) => assert.equal(e.place.jail, bad),
      );
    }
    expectCode(() => store.createJail({ name: 'a/../b', params: {} }), 'JY_ERR_JAIL_NAME');
  });
});

describe('compare-and-swap', () => {
  test('ifRevision: ok when equal, 412 with expected vs actual otherwise', () => {
    const a = store.createJail({ name: 'a', params: {} });
    const b = store.modifyJail('a', words('meta.k=1'), { ifRevision: a.revision });
    expectCode(
      () => store.modifyJail('a', words('meta.k=2'), { ifRevision: a.revision }),
      'JY_ERR_REVISION_CONFLICT',
      (e) => {
        assert.equal(e.httpStatus, 412);
        assert.equal(e.place.jail, 'a');
        assert.match(e.message, new RegExp(`expected revision ${a.revision}, jail is at revision ${b.revision}`));
      },
    );
    assert.equal(store.requireJail('a').meta, 'k=1');
    expectCode(() => store.removeJail('a', { ifRevision: a.revision }), 'JY_ERR_REVISION_CONFLICT');
    store.removeJail('a', { ifRevision: b.revision });
    assert.equal(store.getJail('a'), undefined);
  });

  test('a recreated jail never reuses an old revision', () => {
    const a = store.createJail({ name: 'a', params: {} });
    store.modifyJail('a', words('meta.k=1'));
    store.removeJail('a');
    const again = store.createJail({ name: 'a', params: {} });
    assert.ok(again.revision > a.revision + 1);
    expectCode(() => store.modifyJail('a', {}, { ifRevision: a.revision }), 'JY_ERR_REVISION_CONFLICT');
  });
});

describe('state machine', () => {
  test('allowed transitions, jid allocated on starting and cleared on stopped', () => {
    store.createJail({ name: 'a', params: {} });
    const s = store.transition('a', 'stopped', 'starting');
    assert.equal(s.jid, 1);
    const r = store.transition('a', 'starting', 'running', { runtime: { steps: ['create'] } });
    assert.equal(r.jid, 1);
    assert.deepEqual(r.runtime, { steps: ['create'] });
    store.transition('a', 'running', 'stopping');
    const st = store.transition('a', 'stopping', 'stopped', { runtime: null, lastError: 'boom' });
    assert.equal(st.jid, 0);
    assert.equal(st.runtime, null);
    assert.equal(st.lastError, 'boom');
  });

  test('forbidden transitions say "invalid transition from X to Y"', () => {
    store.createJail({ name: 'a', params: {} });
    expectCode(
      () => store.transition('a', 'stopped', 'running'),
      'JY_ERR_INVALID_TRANSITION',
      (e) => {
        assert.match(e.message, /^invalid transition from stopped to running$/);
        assert.equal(e.place.jail, 'a');
        assert.equal(e.httpStatus, 409);
      },
    );
    expectCode(
      () => store.transition('a', 'running', 'stopping'),
      'JY_ERR_INVALID_TRANSITION',
      (e) => assert.match(e.message, /invalid transition from stopped to stopping/),
    );
    store.transition('a', 'stopped', 'starting');
    expectCode(() => store.transition('a', 'starting', 'stopping'), 'JY_ERR_INVALID_TRANSITION');
    expectCode(
      () => store.removeJail('a'),
      'JY_ERR_INVALID_TRANSITION',
      (e) => assert.match(e.message, /while it is starting/),
    );
    // a failed start unwinds to stopped
    assert.equal(store.transition('a', 'starting', 'stopped').state, 'stopped');
  });

  test('jids: lowest free positive integer among jails not stopped', () => {
    for (const n of ['a', 'b', 'c', 'd']) store.createJail({ name: n, params: {} });
    assert.equal(store.transition('a', 'stopped', 'starting').jid, 1);
    assert.equal(store.transition('b', 'stopped', 'starting').jid, 2);
    assert.equal(store.transition('c', 'stopped', 'starting').jid, 3);
    store.transition('b', 'starting', 'stopped');
    assert.equal(store.transition('d', 'stopped', 'starting').jid, 2);
    store.transition('a', 'starting', 'stopped');
    assert.equal(store.transition('a', 'stopped', 'starting').jid, 1);
  });
});

describe('meta and env through the store (jailmeta.sh at store level)', () => {
  test('jail_create / jail_modify / jail_reset', () => {
    store.createJail({ name: 'j', params: { persist: true }, ...words('meta=a b c', 'env=C B A') });
    assert.equal(store.requireJail('j').meta, 'a b c');
    assert.equal(store.requireJail('j').env, 'C B A');
    store.modifyJail('j', words('meta=t1=A t2=B', 'env=CAB2'));
    assert.equal(store.requireJail('j').meta, 't1=A t2=B');
    store.modifyJail('j', words('meta=', 'env='));
    assert.deepEqual([store.requireJail('j').meta, store.requireJail('j').env], ['', '']);
  });

  test('not_inheritable: a child starts with empty meta and env', () => {
    store.createJail({ name: 'parent', params: { 'children.max': 1 }, ...words('meta=abc', 'env=cba') });
    const child = store.createJail({ name: 'parent.child', params: {} });
    assert.equal(child.meta, '');
    assert.equal(child.env, '');
    assert.equal(store.requireJail('parent').meta, 'abc');
  });

  test('keyvalue through modifyJail, ops in order', () => {
    store.createJail({ name: 'j', params: {}, ...words('meta', 'env') });
    store.modifyJail('j', words('meta.a=1'));
    store.modifyJail('j', words('meta.c=3', 'meta.b=2'));
    assert.equal(store.requireJail('j').meta, 'b=2\nc=3\na=1');
    store.modifyJail('j', words('meta.a=1', 'meta=ttt', 'meta.b=2', 'env.x=1'));
    assert.equal(store.requireJail('j').meta, 'b=2\nttt');
    assert.equal(readMetaKey(store.requireJail('j').env, 'x'), '1');
    expectCode(
      () => store.modifyJail('j', { meta: [{ op: 'set', key: '', value: '1' }] }),
      'JY_ERR_META_KEY',
      (e) => {
        assert.equal(e.place.jail, 'j');
        assert.equal(e.place.param, 'meta');
      },
    );
  });

  test('maxbufsize: limits, raising, lowering keeps values readable but refuses new large writes', () => {
    assert.equal(store.getSettings().meta_maxbufsize, 4096);
    store.createJail({ name: 'j', params: {}, meta: [{ op: 'replace', value: ' '.repeat(4095) }] });
    store.modifyJail('j', { env: [{ op: 'replace', value: ' '.repeat(4095) }] });
    for (const p of ['meta', 'env'] as const) {
      expectCode(
        () => store.modifyJail('j', { [p]: [{ op: 'replace', value: ' '.repeat(4096) }] }),
        'JY_ERR_META_TOO_LARGE',
        (e) => {
          assert.match(e.message, /too large/);
          assert.equal(e.place.param, p);
          assert.equal(e.httpStatus, 413);
        },
      );
    }
    store.setSetting('meta_maxbufsize', 4097);
    store.modifyJail('j', {
      meta: [{ op: 'replace', value: ' '.repeat(4096) }],
      env: [{ op: 'replace', value: ' '.repeat(4096) }],
    });
    store.setSetting('meta_maxbufsize', 4096);
    expectCode(
      () => store.modifyJail('j', { meta: [{ op: 'replace', value: ' '.repeat(4096) }] }),
      'JY_ERR_META_TOO_LARGE',
    );
    assert.equal(store.requireJail('j').meta.length, 4096);
    assert.equal(store.requireJail('j').env.length, 4096);
    // a change that does not touch meta still works on a jail above the new limit
    store.modifyJail('j', { params: { x: 1 } });
  });

  test('a refused write changes nothing and writes no event', () => {
    store.createJail({ name: 'j', params: {} });
    const rev = store.currentRevision();
    expectCode(
      () => store.modifyJail('j', { params: { x: 1 }, meta: [{ op: 'replace', value: 'x'.repeat(5000) }] }),
      'JY_ERR_META_TOO_LARGE',
    );
    assert.equal(store.currentRevision(), rev);
    assert.deepEqual(store.requireJail('j').params, {});
    assert.equal(store.eventsSince(rev).length, 0);
  });

  test("meta_hierarchical: descendants share their ancestors' budget", () => {
    store.setSetting('meta_maxbufsize', 100);
    store.createJail({ name: 'p', params: {}, meta: [{ op: 'replace', value: 'x'.repeat(99) }] });
    store.createJail({ name: 'p.a', params: {}, meta: [{ op: 'replace', value: 'a'.repeat(59) }] });
    // off: each buffer alone is limited
    store.createJail({ name: 'p.b', params: {}, meta: [{ op: 'replace', value: 'b'.repeat(59) }] });
    store.setSetting('meta_hierarchical', 1);
    // p.a (60) + p.b (60) = 120 > 100 already: growing is refused, shrinking is allowed
    expectCode(
      () => store.modifyJail('p.b', { env: [{ op: 'replace', value: 'e' }] }),
      'JY_ERR_META_TOO_LARGE',
      (e) => {
        assert.match(e.message, /descendants of "p"/);
        assert.equal(e.place.jail, 'p.b');
      },
    );
    store.modifyJail('p.b', { meta: [{ op: 'replace', value: 'b'.repeat(9) }] }); // 60 + 10 = 70
    store.modifyJail('p.b', { env: [{ op: 'replace', value: 'e'.repeat(29) }] }); // 60 + 10 + 30 = 100
    expectCode(
      () => store.createJail({ name: 'p.a.x', params: {}, meta: [{ op: 'replace', value: 'z' }] }),
      'JY_ERR_META_TOO_LARGE',
    );
    // the parent's own buffers do not count against its descendants' budget
    store.modifyJail('p', { env: [{ op: 'replace', value: 'y'.repeat(99) }] });
    // siblings' subtrees are separate: a jail named "pa" is not a descendant of "p"
    store.createJail({ name: 'pa', params: {}, meta: [{ op: 'replace', value: 'q'.repeat(99) }] });
    store.setSetting('meta_hierarchical', 0);
    store.createJail({ name: 'p.a.x', params: {}, meta: [{ op: 'replace', value: 'z' }] });
  });
});

describe('settings', () => {
  test('defaults, set, validation errors name the setting', () => {
    assert.deepEqual(store.getSettings(), { meta_maxbufsize: 4096, meta_hierarchical: 0, event_history: 100000 });
    store.setSetting('meta_hierarchical', 1);
    assert.equal(store.getSettings().meta_hierarchical, 1);
    expectCode(
      () => store.setSetting('meta_hierarchical', 2),
      'JY_ERR_PARAM_VALUE',
      (e) => assert.equal(e.place.param, 'meta_hierarchical'),
    );
    expectCode(() => store.setSetting('meta_maxbufsize', -1), 'JY_ERR_PARAM_VALUE');
    expectCode(() => store.setSetting('event_history', 0), 'JY_ERR_PARAM_VALUE');
    expectCode(() => store.setSetting('nope' as 'event_history', 1), 'JY_ERR_PARAM_UNKNOWN');
  });
});

describe('event log', () => {
  test('one event per change with the next global revision, runtime bookkeeping included', () => {
    const r0 = store.currentRevision();
    store.createJail({ name: 'a', params: {} });
    store.modifyJail('a', words('meta.app=www'));
    store.transition('a', 'stopped', 'starting');
    store.recordRuntime('a', { steps: ['mount'] });
    store.transition('a', 'starting', 'stopped');
    store.removeJail('a');
    const ev = store.eventsSince(r0);
    assert.deepEqual(
      ev.map((e) => e.type),
      ['ADDED', 'MODIFIED', 'MODIFIED', 'MODIFIED', 'MODIFIED', 'DELETED'],
    );
    assert.deepEqual(
      ev.map((e) => e.revision),
      ev.map((_, i) => r0 + 1 + i),
      'every revision is one event, none skipped',
    );
    assert.equal(ev[1]!.jail.meta, 'app=www');
    assert.equal(ev[2]!.jail.state, 'starting');
    assert.deepEqual(ev[3]!.jail.runtime, { steps: ['mount'] });
    assert.equal(ev[5]!.jail.name, 'a');
    assert.equal(ev[5]!.revision, store.currentRevision());
    for (const e of ev.slice(0, 5))
      assert.equal(e.revision, e.jail.revision, 'an event carries the jail at its revision');
  });

  test('resuming from any revision with a limit never misses or repeats', () => {
    const r0 = store.currentRevision();
    for (let i = 0; i < 30; i++) store.createJail({ name: `j${i}`, params: {} });
    for (let i = 0; i < 30; i++) store.modifyJail(`j${i}`, words(`meta.i=${i}`));
    const seen: number[] = [];
    let since = r0;
    for (;;) {
      const batch = store.eventsSince(since, 7);
      if (batch.length === 0) break;
      seen.push(...batch.map((e) => e.revision));
      since = batch[batch.length - 1]!.revision;
    }
    assert.equal(seen.length, 60);
    assert.equal(new Set(seen).size, 60);
    assert.deepEqual(
      seen,
      [...seen].sort((a, b) => a - b),
    );
    assert.deepEqual(store.eventsSince(since), []);
  });

  test('compaction keeps at least event_history newest events; older resumes get 410', () => {
    store.setSetting('event_history', 10);
    const r0 = store.currentRevision();
    for (let i = 0; i < 25; i++) store.createJail({ name: `j${i}`, params: {} });
    const head = store.currentRevision();
    const kept = store.eventsSince(head - 10);
    assert.equal(kept.length, 10);
    expectCode(
      () => store.eventsSince(r0),
      'JY_ERR_REVISION_GONE',
      (e) => {
        assert.equal(e.httpStatus, 410);
        assert.match(e.message, /compacted through revision \d+/);
      },
    );
    expectCode(() => store.eventsSince(head - 12), 'JY_ERR_REVISION_GONE');
    // lowering the history compacts at once
    store.setSetting('event_history', 3);
    assert.equal(store.eventsSince(head - 3).length, 3);
    expectCode(() => store.eventsSince(head - 4), 'JY_ERR_REVISION_GONE');
  });

  test('a long history compacts in batches (event_history/16, at most 1024), never below event_history', () => {
    store.setSetting('event_history', 160); // batches of 10
    const r0 = store.currentRevision();
    const kept: number[] = [];
    for (let i = 0; i < 200; i++) {
      store.createJail({ name: `j${i}`, params: {} });
      const head = store.currentRevision();
      // the oldest revision a watcher can resume from: the compaction mark the 410 names
      let low = r0;
      try {
        store.eventsSince(r0, 1);
      } catch (e) {
        low = Number(/compacted through revision (\d+)/.exec((e as Error).message)![1]);
      }
      kept.push(head - low);
    }
    assert.ok(Math.min(...kept.slice(160)) >= 160, 'at least event_history revisions stay resumable');
    assert.ok(Math.max(...kept) <= 170, `at most event_history + one batch: ${Math.max(...kept)}`);
    assert.ok(new Set(kept.slice(170)).size > 1, 'compaction happens in batches, not on every write');
  });
});

describe('listJails with selectors', () => {
  for (const cache of [true, false]) {
    test(`meta wins over env; !=, notin match absent keys (cache=${cache})`, () => {
      const s = cache ? store : openStore(join(dir, 'state'), { cache: false });
      try {
        store.createJail({ name: 'w1', params: {}, ...words('meta.app=www', 'meta.version=v1') });
        store.createJail({ name: 'w2', params: {}, ...words('env.app=www', 'meta.version=v2', 'meta.canary=true') });
        store.createJail({ name: 'db', params: {}, ...words('meta.app=db', 'env.app=www') });
        store.createJail({ name: 'bare', params: {} });
        const names = (sel: string) => s.listJails({ selector: sel }).map((j) => j.name);
        assert.deepEqual(names('app=www'), ['w1', 'w2']);
        assert.deepEqual(names('app=www,version in (v1,v2),!canary'), ['w1']);
        assert.deepEqual(names('app!=www'), ['bare', 'db']);
        assert.deepEqual(names('version notin (v2)'), ['bare', 'db', 'w1']);
        assert.deepEqual(names('canary'), ['w2']);
        assert.deepEqual(names(''), ['bare', 'db', 'w1', 'w2']);
        // later changes are seen (the cache follows the revision)
        store.modifyJail('w1', words('meta.app')); // remove
        store.removeJail('w2');
        store.createJail({ name: 'w3', params: {}, ...words('meta.app=www') });
        assert.deepEqual(names('app=www'), ['w3']);
        expectCode(() => s.listJails({ selector: 'app=,,' }), 'JY_ERR_SELECTOR');
      } finally {
        if (s !== store) s.close();
      }
    });
  }

  test('the cache sees writes made through another connection (another process)', () => {
    store.createJail({ name: 'a', params: {}, ...words('meta.app=x') });
    store.createJail({ name: 'gone', params: {}, ...words('meta.app=y') });
    // warm the cache (a query without selector always uses it)
    assert.deepEqual(
      store.listJails().map((j) => j.name),
      ['a', 'gone'],
    );
    assert.deepEqual(
      store.listJails({ selector: 'app=x' }).map((j) => j.name),
      ['a'],
    );
    const other = openStore(join(dir, 'state'));
    try {
      other.modifyJail('a', words('meta.app=y'));
      other.createJail({ name: 'b', params: {}, ...words('meta.app=y') });
      other.recordRuntime('b', { steps: ['x'] });
      other.removeJail('gone');
    } finally {
      other.close();
    }
    // incremental refresh: changed rows pulled, the deletion taken from the event log
    assert.deepEqual(
      store.listJails({ selector: 'app=y' }).map((j) => j.name),
      ['a', 'b'],
    );
    assert.deepEqual(store.listJails({ selector: 'app=y' })[1]!.runtime, { steps: ['x'] });
    // deletions compacted away: the cache reloads everything
    const again = openStore(join(dir, 'state'));
    try {
      again.setSetting('event_history', 1);
      again.createJail({ name: 'c', params: {}, ...words('meta.app=y') });
      again.removeJail('a');
      again.createJail({ name: 'd', params: {} });
    } finally {
      again.close();
    }
    assert.deepEqual(
      store.listJails({ selector: 'app=y' }).map((j) => j.name),
      ['b', 'c'],
    );
    assert.deepEqual(
      store.listJails().map((j) => j.name),
      ['b', 'c', 'd'],
    );
  });

  test('records from listJails are read-only snapshots', () => {
    store.createJail({ name: 'a', params: {} });
    const [a] = store.listJails();
    assert.throws(() => {
      (a as { state: string }).state = 'running';
    }, TypeError);
  });
});
