// `jailyard [--state DIR] jls ARGS...` (bin/jls's form) with no daemon to ask, run by
// bin/jailyard.js before it loads the CLI (bundled alone as dist/bundle/jls-fast.mjs): the
// front's own jls(8) (./freebsd/jls.ts) over the jails read through node:sqlite
// (./fast-read.ts), where the CLI's `jls` verb loaded commander, the verb table and the store
// class first. The same output, streams and exit status as the verb (./freebsd/verbs.ts);
// what it cannot read as it is (no store or another schema yet, a jail that may have died
// and must be reaped first, any error) is left to the CLI, with nothing printed.

import { withDerived } from '../runtime/params.ts';
import type { JailRecord } from '../store/types.ts';
import { readJails, stdoutTerminal, writeLine, writeOut } from './fast-read.ts';
import { frontIO } from './freebsd/front-io.ts';
import { jlsMain } from './freebsd/jls.ts';

/** Runs `jls args` on the state folder of `--state state` (undefined: not given), sets the
 * exit code and returns true; false, having printed nothing, when the CLI must run it. */
export async function jlsFast(state: string | undefined, args: readonly string[]): Promise<boolean> {
  // what the front wrote, in order: kept until the end, so a failure half-way leaves the CLI
  // an untouched terminal
  const written: [1 | 2, string][] = [];
  let code: number;
  try {
    const all = readJails(state);
    if (!all) return false;
    // the verb's reader (cli/jails.ts derivedReader over the store): children.cur and parent
    // counted among all jails
    const listed: JailRecord[] = withDerived(all, all);
    const service = {
      list: async (filter?: unknown) => {
        // the front lists them all; anything else is the CLI's
        if (filter !== undefined) throw new Error('jls-fast: a filtered list');
        return listed;
      },
      get: async (): Promise<JailRecord> => {
        throw new Error('jls-fast: get');
      },
    };
    // the verb's io over a CLI io that keeps each text, to be framed as the CLI's writer does
    const io = frontIO(
      { out: (t) => void written.push([1, t]), err: (t) => void written.push([2, t]) },
      'jls',
      stdoutTerminal,
    );
    code = await jlsMain([...args], io, { service });
  } catch {
    // the CLI reports it, naming the place
    return false;
  }
  if (process.env.JAILYARD_TRACE_FAST) writeOut(2, 'jailyard: jls: fast path\n');
  for (const [fd, t] of written) writeLine(fd, t);
  process.exitCode = code;
  return true;
}
