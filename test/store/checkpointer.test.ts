// The daemon's background checkpointer: the WAL is copied into the database by a worker
// thread, so no write has to (a checkpoint's fsync inside a commit delayed it by tens of ms).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStore, STORE_FILE } from '../../src/store/sqlite.ts';

/** WAL frames written since the WAL last restarted (what a checkpoint would have to copy). */
function walFrames(file: string): number {
  const db = new Database(file);
  try {
    // PASSIVE reports { busy, log: frames in the WAL, checkpointed } (and copies them)
    const [row] = db.pragma('wal_checkpoint(PASSIVE)') as { log: number }[];
    return row!.log;
  } finally {
    db.close();
  }
}

test('with the checkpointer running, the WAL is copied in the background and restarts small', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jy-ckpt-'));
  const store = openStore(join(dir, 'state'));
  const file = join(dir, 'state', STORE_FILE);
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  store.createJail({ name: 'a', params: {} });
  const write = (n: number) => store.modifyJail('a', { meta: [{ op: 'set', key: 'k', value: String(n) }] });
  // the baseline: with the writer's own checkpoints off, 300 writes leave their frames
  (store as unknown as { db: Database.Database }).db.pragma('wal_autocheckpoint = 0');
  for (let n = 0; n < 300; n++) write(n);
  const before = walFrames(file);
  assert.ok(before >= 300, `frames without checkpoints: ${before}`);

  const ck = store.checkpointInBackground();
  try {
    for (let n = 0; n < 300; n++) write(n);
    // after a complete checkpoint the next write starts the WAL over: a new checkpoint
    // sequence number and salts in its header (bytes 12-23). Polled (the worker's thread
    // start, its module load and its interval take a while on a loaded machine), and not
    // with walFrames, which checkpoints itself
    const header = () => readFileSync(`${file}-wal`).subarray(12, 24).toString('hex');
    const first = header();
    for (const end = Date.now() + 10_000; Date.now() < end; ) {
      await new Promise((r) => setTimeout(r, 100));
      write(-1);
      if (header() !== first) break;
    }
    assert.notEqual(header(), first, 'the WAL never restarted');
    const after = walFrames(file);
    assert.ok(after < 50, `frames after the background checkpoint and one write: ${after}`);
  } finally {
    await ck.stop(); // before the store closes (the outer t.after)
  }
});
