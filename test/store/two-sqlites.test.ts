// Two SQLite libraries in one process (node:sqlite for read-only stores, better-sqlite3 for the
// rest) must never have the same file open at once: fcntl locks belong to the process, so
// closing one library's descriptor drops the locks the other holds (src/store/sqlite.ts,
// nodeSqliteReaders). Checked through a lock another process can see: a write transaction held
// by better-sqlite3 in this process must still block another process after a read-only store
// of this process closes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const storeModule = pathToFileURL(join(import.meta.dirname, '../../src/store/sqlite.ts')).href;
const betterSqlite = pathToFileURL(join(import.meta.dirname, '../../node_modules/better-sqlite3/lib/index.js')).href;

/** Runs `code` (an ES module body; argv[1] = the state folder) in a process of its own. */
function inProcess(code: string, dir: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, ['--input-type=module', '-e', code, dir], { encoding: 'utf8' });
}

test('a read-only store closed beside a better-sqlite3 writer leaves the writer its locks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jy-2sq-'));
  try {
    const seed = inProcess(
      `const { openStore } = await import(${JSON.stringify(storeModule)});
       const s = openStore(process.argv[1]); s.createJail({ name: 'a', params: {} }); s.close();`,
      dir,
    );
    assert.equal(seed.status, 0, seed.stderr);
    // this process: a read-only store (node:sqlite while nothing else is open), then a
    // read-write store, then a raw better-sqlite3 connection that holds the write lock; the
    // read-only store closes; another process then tries to take the write lock at once
    const r = inProcess(
      `const { openStore } = await import(${JSON.stringify(storeModule)});
       const { default: Database } = await import(${JSON.stringify(betterSqlite)});
       const { spawnSync } = await import('node:child_process');
       const dir = process.argv[1];
       const reader = openStore(dir, { readOnly: true });
       const viaNode = reader.listJails().length === 1;
       const writer = openStore(dir);
       const held = new Database(dir + '/jailyard.db');
       held.pragma('journal_mode = WAL');
       held.exec('BEGIN IMMEDIATE');
       reader.listJails();
       reader.close();
       const other = spawnSync(process.execPath, ['--input-type=module', '-e', \`
         const { default: Database } = await import(${JSON.stringify(betterSqlite)});
         const db = new Database(process.argv[1] + '/jailyard.db', { timeout: 0 });
         try { db.exec('BEGIN IMMEDIATE'); console.log('took the lock'); db.exec('ROLLBACK'); }
         catch (e) { console.log(e.code); }\`, dir], { encoding: 'utf8' });
       held.exec('ROLLBACK'); held.close(); writer.close();
       console.log(JSON.stringify({ viaNode, other: other.stdout.trim(), err: other.stderr }));`,
      dir,
    );
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { viaNode: boolean; other: string; err: string };
    assert.ok(out.viaNode, 'the read-only store read the jail');
    assert.equal(out.other, 'SQLITE_BUSY', `another process took the write lock held here: ${out.other} ${out.err}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
