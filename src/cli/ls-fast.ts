// `jailyard [--state DIR] ls [SWITCHES] [PARAM...]` with no daemon to ask, run by
// bin/jailyard.js before it loads the CLI (bundled alone as dist/bundle/ls-fast.mjs). The
// CLI's ls spent most of its time loading commander, the verb table, the store class and
// Node's stream for stdout; this reads the jails through node:sqlite and prints them with
// the verb's own options and output (./ls-view.ts). Whatever it does not take as it is (-j,
// -l, --help, an unknown option, no store or another schema yet, a jail that may have died
// and must be reaped first, any error) is left to the CLI, with nothing printed.

import { writeSync } from 'node:fs';
import { mayHaveDied, withDerived } from '../runtime/params.ts';
import { openStoreReader } from '../store/reader.ts';
import { byName, rowToRecord, type JailRow } from '../store/rows.ts';
import { stateDirOf } from './context.ts';
import { lsShown, lsText, switchesOnly } from './ls-view.ts';

/** Runs `ls args` on the state folder of `--state state` (undefined: not given) and returns
 * true; false, having printed nothing, when the CLI must run it. */
export function lsFast(state: string | undefined, args: readonly string[]): boolean {
  const parsed = switchesOnly(args);
  if (!parsed) return false;
  let text: string;
  try {
    const db = openStoreReader(stateDirOf(state));
    if (!db) return false;
    let rows: JailRow[];
    try {
      rows = db.prepare('SELECT * FROM jails').all() as JailRow[];
    } finally {
      db.close();
    }
    // the order of every list of the store (its cache's)
    const all = rows.map(rowToRecord).sort(byName);
    // jails without persist whose processes all exited go away before anyone reads them
    // (runtime/lifecycle.ts reapDied): the CLI's ls loads the service to do that
    if (all.some(mayHaveDied)) return false;
    text = lsText(lsShown(withDerived(all, all), parsed.switches), parsed.params, parsed.switches);
  } catch {
    // the CLI reports it, naming the place
    return false;
  }
  if (process.env.JAILYARD_TRACE_FAST) writeOut(2, 'jailyard: ls: fast path\n');
  if (text) writeOut(1, text.endsWith('\n') ? text : `${text}\n`);
  return true;
}

/**
 * All of `text` to stdout (fd 1) or stderr (2), as the CLI's writer would (./context.ts): a
 * closed pipe (`ls | head`) takes nothing more and is no error; a pipe full for now
 * (non-blocking, EAGAIN) gets the rest through Node's stream, which keeps the process until
 * it is taken. Without the stream otherwise: making it loads Node's stream modules, a tenth
 * of this command's time.
 */
function writeOut(fd: 1 | 2, text: string): void {
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
