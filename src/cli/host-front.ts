// The host's jail(8), jls(8) and `jailyard ls` as the daemon runs them for native/jy-ctl
// (src/api/host-tools.ts): the CLI's own code over the daemon's service, its output written
// as the CLI writes it (a newline ends every text), so the bytes and exit status are the
// CLI's. What would not be the same here is refused (undefined) before anything is done, and
// the client runs the CLI itself:
// - a command that runs in the foreground or reads the caller's stdin: jail's old form
//   (path hostname ip command), `command=`, -f (a file, `-` being stdin, named relative to
//   the caller's folder, and a jail.conf whose hooks may print), the jail.conf form
//   (`jail -c NAME`), -J (a file written relative to the caller's folder), -u/-U;
// - a create, remove or restart that runs hooks (exec.*): jail(8) prints their output as
//   it comes, an answer captured at the end would hold it back;
// - a relative `path` or `mount.fstab`: the daemon's folder is not the caller's.
// jls and ls only read, and every form of them is served.

import type { HostTools } from '../api/host-tools.ts';
import type { ToolIO } from '../api/guest-tools.ts';
import type { JailService } from '../runtime/types.ts';
import type { JailRecord } from '../store/types.ts';
import type { CliIO } from './context.ts';
import type { FrontIO } from './freebsd/types.ts';
import { derivedReader } from './jails.ts';

/** jail(8)'s options (src/cli/freebsd/jail.ts parseFlags). */
const JAIL_OPTSTRING = 'cde:f:hiJ:lmn:p:qrRs:u:U:v';

/** A parameter that runs something (a hook, the jail's command). */
const runsSomething = (param: string): boolean => param === 'command' || param.startsWith('exec.');

/** The parameter a command line word sets ("ip4.addr+=x" -> "ip4.addr", "nopersist" -> itself). */
function wordParam(word: string): string {
  const eq = word.indexOf('=');
  const name = eq < 0 ? word : word.slice(0, eq);
  return name.endsWith('+') ? name.slice(0, -1) : name;
}

const hasHooks = (j: JailRecord): boolean => Object.keys(j.params).some(runsSomething);

/** Whether jail(8) with `argv` runs in the daemon exactly as in the CLI. */
async function jailServable(argv: string[], service: JailService): Promise<boolean> {
  const { getopt, GetoptError } = await import('./freebsd/getopt.ts');
  let parsed: ReturnType<typeof getopt>;
  try {
    parsed = getopt('jail', argv, JAIL_OPTSTRING);
  } catch (e) {
    // the front prints the usage and does nothing
    if (e instanceof GetoptError) return true;
    throw e;
  }
  const letters = new Set(parsed.opts.map(([l]) => l));
  for (const l of ['f', 'J', 'u', 'U']) if (letters.has(l)) return false;
  if (letters.has('e')) return true; // prints /etc/jail.conf's jails, nothing else
  const c = letters.has('c');
  const m = letters.has('m');
  const r = letters.has('r') || letters.has('R');
  if (!c && !m && !r) return false; // the old form runs a command
  const words = parsed.rest;
  if (r && !c && !m) {
    // removing runs the jails' stop hooks
    return !(await service.list()).some((j) => j.state !== 'stopped' && hasHooks(j));
  }
  if (!(words.length > 1 || words[0]?.includes('='))) return false; // the jail.conf form
  for (const w of words) {
    const p = wordParam(w);
    if (p === 'command') return false;
    if ((c || r) && runsSomething(p)) return false;
    if ((p === 'path' || p === 'mount.fstab') && w.includes('=') && !w.slice(w.indexOf('=') + 1).startsWith('/'))
      return false;
  }
  if (r && (await service.list()).some((j) => j.state !== 'stopped' && hasHooks(j))) return false;
  return true;
}

/** The CLI's processIO writer: a newline ends every text. */
const line =
  (write: (t: string) => void) =>
  (t: string): void =>
    write(t.endsWith('\n') ? t : `${t}\n`);

/** The front's io as the CLI's verbs give it (src/cli/freebsd/verbs.ts frontIO). */
function frontIO(io: ToolIO): FrontIO {
  const strip = (t: string): string => (t.endsWith('\n') ? t.slice(0, -1) : t);
  const out = line(io.stdout);
  const err = line(io.stderr);
  return {
    stdout: (t) => {
      if (t !== '') out(strip(t));
    },
    stderr: (t) => {
      if (t !== '') err(strip(t));
    },
    // nothing served here reads stdin (see jailServable)
    stdin: 'inherit',
  };
}

/** The host tools over `service`, the daemon's, for the state folder `stateDir`. */
export function hostFront(service: JailService, stateDir: string): HostTools {
  return {
    async run(tool, argv, io) {
      if (tool === 'ls') {
        const { main } = await import('./main.ts');
        const cli: CliIO = { out: line(io.stdout), err: line(io.stderr) };
        return main(['--state', stateDir, 'ls', ...argv], cli, service);
      }
      const { runJail, runJls } = await import('./freebsd/index.ts');
      if (tool === 'jls') return runJls(argv, frontIO(io), { service: await derivedReader(service), stateDir });
      if (!(await jailServable(argv, service))) return undefined;
      return runJail(argv, frontIO(io), { service, stateDir });
    },
  };
}
