// `jailyard [--state DIR] ls [SWITCHES] [PARAM...]` with no daemon to ask, run by
// bin/jailyard.js before it loads the CLI (bundled alone as dist/bundle/ls-fast.mjs). The
// CLI's ls spent most of its time loading commander, the verb table, the store class and
// Node's stream for stdout; this reads the jails through node:sqlite (./fast-read.ts) and
// prints them with the verb's own options and output (./ls-view.ts). Whatever it does not
// take as it is (-j, -l, --help, an unknown option, no store or another schema yet, a jail
// that may have died and must be reaped first, any error) is left to the CLI, with nothing
// printed.

import { withDerived } from '../runtime/params.ts';
import { readJails, stdoutTerminal, writeLine, writeOut } from './fast-read.ts';
import { lsShown, lsText, switchesOnly } from './ls-view.ts';

/** Runs `ls args` on the state folder of `--state state` (undefined: not given) and returns
 * true; false, having printed nothing, when the CLI must run it. */
export function lsFast(state: string | undefined, args: readonly string[]): boolean {
  const parsed = switchesOnly(args);
  if (!parsed) return false;
  let text: string;
  try {
    const all = readJails(state);
    if (!all) return false;
    text = lsText(lsShown(withDerived(all, all), parsed.switches), parsed.params, parsed.switches, stdoutTerminal);
  } catch {
    // the CLI reports it, naming the place
    return false;
  }
  if (process.env.JAILYARD_TRACE_FAST) writeOut(2, 'jailyard: ls: fast path\n');
  if (text) writeLine(1, text);
  return true;
}
