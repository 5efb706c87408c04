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
import { JailyardError } from '../../src/errors.ts';

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

test('a read-only store reads what the read-write one reads', () => {
  const reader = openStore(dir, { readOnly: true });
  try {
    assert.deepEqual(reader.listJails(), writer.listJails());
    for (const selector of ['app=www', 'app in (www,db),version!=v1', '!version', 'tier=front'])
      assert.deepEqual(reader.listJails({ selector }), writer.listJails({ selector }), selector);
    assert.deepEqual(reader.requireJailRef('b'), writer.requireJailRef('b'));
    assert.deepEqual(reader.getJail('c.d'), writer.getJail('c.d'));
    assert.equal(reader.getJail('zz'), undefined);
    assert.throws(
      () => reader.requireJail('zz'),
      (e) => e instanceof JailyardError && e.code === 'JY_ERR_JAIL_NOT_FOUND',
    );
    assert.equal(reader.currentRevision(), writer.currentRevision());
    assert.deepEqual(reader.eventsSince(0), writer.eventsSince(0));
  } finally {
    reader.close();
  }
});

test('it sees commits still in the WAL, and its first write reopens it read-write', () => {
  const reader = openStore(dir, { readOnly: true });
  try {
    // the writer is open: its commits are in the WAL, not yet in the database file
    assert.ok(existsSync(join(dir, 'jailyard.db-wal')));
    writer.modifyJail('a', { meta: [parseMetaWord('meta.version=v2')!.op] });
    assert.equal(reader.requireJail('a').meta, writer.requireJail('a').meta);
    assert.match(reader.requireJail('a').meta, /version=v2/);
    const r = reader.modifyJail('c', { params: { 'host.hostname': 'c2' } });
    assert.equal(writer.requireJail('c').params['host.hostname'], 'c2');
    assert.equal(writer.currentRevision(), r.revision);
    assert.deepEqual(reader.listJails(), writer.listJails());
  } finally {
    reader.close();
  }
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
