// openStore(dir, { readOnly: true }): the read-only connection through node:sqlite
// (src/store/reader.ts) reads what the read-write store reads, sees another process's commits
// still in the WAL, turns read-write at its first write, falls back to a read-write open when
// there is no store yet, and spares a read-only command the load of better-sqlite3.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openStore, type SqliteStore } from '../../src/store/sqlite.ts';
import { parseMetaWord } from '../../src/meta/ops.ts';

let dir: string;
let writer: SqliteStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'jy-reader-'));
  writer = openStore(dir);
  for (const [name, labels] of [
    ['a', ['meta.app=www', 'meta.version=v1']],
    ['b', ['meta.app=www', 'env.tier=front']],
    ['c', ['meta.app=db']],
    ['c.d', []],
  ] as const) {
    const ops = labels.map((w) => parseMetaWord(w)!);
    writer.createJail({
      name,
      params: { 'host.hostname': `${name}.example`, persist: true },
      meta: ops.filter((o) => o.param === 'meta').map((o) => o.op),
      env: ops.filter((o) => o.param === 'env').map((o) => o.op),
    });
  }
  writer.transition('b', 'stopped', 'starting');
  writer.transition('b', 'starting', 'running', { runtime: { jid: 7 } as never });
});
afterEach(() => {
  writer.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs `body` with `reader` = openStore(dir, { readOnly: true }) in a process of its own and
 * returns what it returns (JSON). Not in this process: this one holds better-sqlite3
 * connections (the writer), and beside one a read-only store uses better-sqlite3 too
 * (test/store/two-sqlites.test.ts says why), so node:sqlite is only met in a fresh process.
 */
function withReader(body: string): unknown {
  const src = pathToFileURL(join(import.meta.dirname, '../../src/store/sqlite.ts')).href;
  const code = `
    const { openStore } = await import(${JSON.stringify(src)});
    const reader = openStore(process.argv[1], { readOnly: true });
    try {
      const viaNodeSqlite = reader.reading === true;
      const out = await (async () => { ${body} })();
      console.log(JSON.stringify({ viaNodeSqlite, out }));
    } finally { reader.close(); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const { viaNodeSqlite, out } = JSON.parse(r.stdout) as { viaNodeSqlite: boolean; out: unknown };
  assert.ok(viaNodeSqlite, 'the read-only store read through node:sqlite');
  return out;
}

test('a read-only store reads what the read-write one reads', () => {
  const selectors = ['app=www', 'app in (www,db),version!=v1', '!version', 'tier=front'];
  const got = withReader(`
    let notFound;
    try { reader.requireJail('zz'); } catch (e) { notFound = e.code; }
    return {
      all: reader.listJails(),
      bySelector: ${JSON.stringify(selectors)}.map((selector) => reader.listJails({ selector })),
      ref: reader.requireJailRef('b'),
      nested: reader.getJail('c.d'),
      missing: reader.getJail('zz') ?? null,
      notFound,
      revision: reader.currentRevision(),
      events: reader.eventsSince(0),
    };`);
  assert.deepEqual(
    got,
    JSON.parse(
      JSON.stringify({
        all: writer.listJails(),
        bySelector: selectors.map((selector) => writer.listJails({ selector })),
        ref: writer.requireJailRef('b'),
        nested: writer.getJail('c.d'),
        missing: null,
        notFound: 'JY_ERR_JAIL_NOT_FOUND',
        revision: writer.currentRevision(),
        events: writer.eventsSince(0),
      }),
    ),
  );
});

test('it sees commits still in the WAL, and its first write reopens it read-write', () => {
  // the writer is open: its commits are in the WAL, not yet in the database file
  writer.modifyJail('a', { meta: [parseMetaWord('meta.version=v2')!.op] });
  assert.ok(existsSync(join(dir, 'jailyard.db-wal')));
  const got = withReader(`
    const meta = reader.requireJail('a').meta;
    const r = reader.modifyJail('c', { params: { 'host.hostname': 'c2' } });
    return { meta, revision: r.revision, writerAfter: reader.reading };`) as {
    meta: string;
    revision: number;
    writerAfter: boolean;
  };
  assert.equal(got.meta, writer.requireJail('a').meta);
  assert.match(got.meta, /version=v2/);
  assert.equal(got.writerAfter, false, 'the first write reopened it read-write');
  assert.equal(writer.requireJail('c').params['host.hostname'], 'c2');
  assert.equal(writer.currentRevision(), got.revision);
});

test('no store yet: a read-only open makes it as a read-write open does', () => {
  const fresh = join(dir, 'fresh');
  const s = openStore(fresh, { readOnly: true });
  try {
    assert.ok(existsSync(join(fresh, 'jailyard.db')));
    assert.deepEqual(s.listJails(), []);
    s.createJail({ name: 'x', params: {} });
    assert.equal(s.listJails().length, 1);
  } finally {
    s.close();
  }
});

test('reading loads neither better-sqlite3 nor worker_threads; a write loads better-sqlite3', () => {
  const src = pathToFileURL(join(import.meta.dirname, '../../src/store/sqlite.ts')).href;
  const code = `
    const { openStore } = await import(${JSON.stringify(src)});
    const { createRequire } = process.getBuiltinModule('node:module');
    const loaded = () => ({
      driver: Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/better-sqlite3/')),
      worker: process.moduleLoadList.includes('NativeModule worker_threads'),
    });
    const s = openStore(process.argv[1], { readOnly: true });
    const names = s.listJails().map((j) => j.name).join(',');
    const read = loaded();
    s.modifyJail('a', { params: { 'host.hostname': 'a2' } });
    const wrote = loaded();
    s.close();
    console.log(JSON.stringify({ names, read, wrote }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    names: 'a,b,c,c.d',
    read: { driver: false, worker: false },
    wrote: { driver: true, worker: false },
  });
  assert.equal(writer.requireJail('a').params['host.hostname'], 'a2');
});
