// What the bin's fast readers share (./ls-fast.ts, ./jls-fast.ts: a plain `ls` or `jls` with
// no daemon, run by bin/jailyard.js before it loads the CLI): the jails as the CLI's readers
// list them, read through node:sqlite, and a writer for their output. Each fast reader leaves
// to the CLI, with nothing printed, whatever it does not take as it is.

import { writeSync } from 'node:fs';
import type { JailRecord } from '../store/types.ts';
import { mayHaveDied } from '../runtime/params.ts';
import { openStoreReader } from '../store/reader.ts';
import { byName, rowToRecord, type JailRow } from '../store/rows.ts';
import { stateDirOf } from './context.ts';

/** Every jail of the state folder of `--state state` (undefined: not given), in the order of
 * every list of the store (its cache's); undefined when the CLI must read them: no store or
 * another schema yet, or a jail that may have died and must be reaped first. Throws what the
 * store throws (the caller leaves that to the CLI, which reports it naming the place). */
export function readJails(state: string | undefined): JailRecord[] | undefined {
  const db = openStoreReader(stateDirOf(state));
  if (!db) return undefined;
  let rows: JailRow[];
  try {
    rows = db.prepare('SELECT * FROM jails').all() as JailRow[];
  } finally {
    db.close();
  }
  const all = rows.map(rowToRecord).sort(byName);
  // jails without persist whose processes all exited go away before anyone reads them
  // (runtime/lifecycle.ts reapDied): the CLI loads the service to do that
  return all.some(mayHaveDied) ? undefined : all;
}

/** One text of the CLI's output to fd 1 or 2, framed as the CLI's writer frames it
 * (./context.ts): a newline added unless it ends in one. */
export function writeLine(fd: 1 | 2, text: string): void {
  writeOut(fd, text.endsWith('\n') ? text : `${text}\n`);
}

/**
 * All of `text` to stdout (fd 1) or stderr (2), as the CLI's writer would (./context.ts): a
 * closed pipe (`ls | head`) takes nothing more and is no error; a pipe full for now
 * (non-blocking, EAGAIN) gets the rest through Node's stream, which keeps the process until
 * it is taken. Without the stream otherwise: making it loads Node's stream modules, a tenth
 * of such a command's time.
 */
export function writeOut(fd: 1 | 2, text: string): void {
  let rest = Buffer.from(text);
  while (rest.length > 0) {
    try {
      rest = rest.subarray(writeSync(fd, rest));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
        const stream = fd === 1 ? process.stdout : process.stderr;
        stream.on('error', () => {});
        stream.write(rest);
      }
      return;
    }
  }
}

/** Whether fd 1 is a terminal, as the CLI's process.stdout.isTTY tells it, without making
 * that stream (Node's tty module loads net and the streams: asked only when it matters). */
export function stdoutTerminal(): boolean {
  return process.getBuiltinModule('node:tty').isatty(1);
}
