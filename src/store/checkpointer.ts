// Checkpoints the store's WAL from a worker thread, so that a write never has to.
//
// In WAL mode the writer whose commit takes the WAL past wal_autocheckpoint pages copies
// the WAL into the database and fsyncs both, inside that commit: on a slow disk a key write
// then takes tens of milliseconds instead of a fraction of one (and every watcher of it
// waits as long). A long-running process (the daemon) runs a PASSIVE checkpoint every
// `intervalMs` on its own connection in a worker thread instead; writers and readers go on
// meanwhile, and the WAL stays far below the writers' own threshold, which remains as the
// fallback for processes without a daemon.
// worker_threads only when a checkpointer starts: loading it took ~10-30 ms of every CLI
// command that opens the store (issue #14)
import type * as WorkerThreads from 'node:worker_threads';
import { createRequire } from 'node:module';

export interface Checkpointer {
  stop(): Promise<void>;
}

/** The worker: plain CommonJS (eval), so it runs the same from src/ and dist/. */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 1000');
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // busy or closing: the next round retries; writers still checkpoint past their threshold
  }
}, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

export function startCheckpointer(dbFile: string, intervalMs = 250): Checkpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const { Worker } = process.getBuiltinModule('node:worker_threads') as typeof WorkerThreads;
  const worker = new Worker(WORKER, { eval: true, workerData: { file: dbFile, driver, intervalMs } });
  worker.unref();
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.on('error', () => {
    // a checkpointer that died leaves the writers' own checkpoints: nothing is lost
  });
  return {
    async stop() {
      worker.postMessage('stop');
      const t = setTimeout(() => void worker.terminate(), 2000);
      await exited;
      clearTimeout(t);
    },
  };
}
