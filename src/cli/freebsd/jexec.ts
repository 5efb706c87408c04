// jexec(8): jexec [-l] [-d dir] [-u user | -U user] jail [command ...]. The jail by jid or
// name (relative to the caller); the exit status is the command's. Runs through the same
// driver call as `jailyard exec` (all the jail's namespaces, its cgroup, its seccomp filter,
// a clean environment; only fds 0-2 cross).

import { constants } from 'node:os';
import { JailyardError } from '../../errors.ts';
import { guestDir } from '../../layout.ts';
import { contextFromRecords } from '../../runtime/jailplan.ts';
import { loadRunInJail } from '../../platform/index.ts';
import { getopt, GetoptError } from './getopt.ts';
import type { FrontIO, FrontScope } from './types.ts';
import { findJail } from './scope.ts';
import type { JailRecord } from '../../store/types.ts';

const USAGE = 'usage: jexec [-l] [-d working-directory] [[-u username] | [-U username]] jail [command ...]\n';

export async function jexecMain(argv: string[], io: FrontIO, scope: FrontScope): Promise<number> {
  let parsed: ReturnType<typeof getopt>;
  try {
    parsed = getopt('jexec', argv, 'd:lnu:U:');
  } catch (e) {
    if (!(e instanceof GetoptError)) throw e;
    io.stderr(`${e.message}\n${USAGE}`);
    return 1;
  }
  let login = false;
  let dir: string | undefined;
  let user: string | undefined;
  let users = 0;
  for (const [letter, arg] of parsed.opts) {
    if (letter === 'l') login = true;
    else if (letter === 'd') dir = arg;
    else if (letter === 'u' || letter === 'U') {
      user = arg;
      users++;
    }
  }
  const [word, ...command] = parsed.rest;
  if (word === undefined || users > 1) {
    io.stderr(USAGE);
    return 1;
  }
  const j = await findJail(scope, word);
  if (!j) {
    io.stderr(`jexec: jail "${word}" not found\n`);
    return 1;
  }
  if (j.state !== 'running' || !j.runtime?.create || !scope.stateDir) {
    io.stderr(`jexec: jail "${word}" is ${j.state}, not running\n`);
    return 1;
  }
  const facts = j.runtime.create;
  const records = new Map((await scope.service.list()).map((r) => [r.name, r]));
  const ctx = contextFromRecords(scope.stateDir, j, (n) => records.get(n));
  const runInJail = await loadRunInJail({ stateDir: scope.stateDir });
  // without a command: the shell (a login shell with -l), as jexec runs the user's shell
  const argvInJail = command.length ? command : login ? ['/bin/sh', '-l'] : ['/bin/sh'];
  const inherit = io.stdin === undefined || io.stdin === 'inherit';
  // the jail's own jail(8) and jls(8) (/run/jailyard/bin) reach the host through a socket
  // of this command's (src/api/guest-tools.ts), answered by this front scoped to the jail
  const channel = scope.root === undefined ? await toolsChannel(scope, j.name, records) : undefined;
  let r: Awaited<ReturnType<typeof runInJail>>;
  try {
    r = await runInJail(ctx, facts, argvInJail, {
      stdio: inherit ? 'inherit' : 'pipe',
      tty: inherit && io.terminal === true,
      ...(user ? { user } : {}),
      ...(dir ? { cwd: dir } : {}),
      ...(channel ? { env: channel.env } : {}),
    });
  } catch (e) {
    // jexec.c's words: errx(1, "%s: no such user"); anything else as jexec(8) errs
    if (e instanceof JailyardError && e.place.param === 'exec.jail_user' && user !== undefined)
      io.stderr(`jexec: ${user}: no such user\n`);
    else io.stderr(`jexec: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    await channel?.close();
  }
  if (!inherit) {
    if (r.stdout) io.stdout(r.stdout);
    if (r.stderr) io.stderr(r.stderr);
  }
  return r.signal ? 128 + (constants.signals[r.signal] ?? 9) : r.code;
}

/** The tools socket for one command in `jail` (host name), with a peer check where the
 * helper exists: only the jail's own processes are answered. */
async function toolsChannel(
  scope: FrontScope,
  jail: string,
  records: Map<string, JailRecord>,
): Promise<{ env: Record<string, string>; close(): Promise<void> }> {
  const stateDir = scope.stateDir as string;
  const [{ openToolsChannel }, { PeerCheck }, { runJail, runJls, runSysctl }] = await Promise.all([
    import('../../api/guest-tools.ts'),
    import('../../api/peer.ts'),
    import('./index.ts'),
  ]);
  const peers = PeerCheck.start();
  const rootOf = (name: string): string | undefined => {
    const r = records.get(name);
    if (!r) return undefined;
    try {
      return contextFromRecords(stateDir, r, (n) => records.get(n)).path;
    } catch {
      return undefined;
    }
  };
  try {
    const channel = await openToolsChannel({
      front: { jail: runJail, jls: runJls, sysctl: runSysctl },
      service: scope.service,
      scope: { rootOf, stateDir },
      jail,
      guestDir: guestDir(stateDir, jail),
      ...(peers ? { peers } : {}),
    });
    return {
      env: channel.env,
      close: async () => {
        await channel.close();
        peers?.close();
      },
    };
  } catch (e) {
    peers?.close();
    throw e;
  }
}
