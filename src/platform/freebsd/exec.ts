// Commands for a jail: hooks on the host (sh -c, or su -m for exec.*_user) with JID, JNAME
// and JPATH set, and argv inside the jail with jexec -l.

import type { ExecOptions, ExecResult, JailContext } from '../driver.ts';
import type { RunOptions } from './runner.ts';
import type { FreeBSDHost } from './system.ts';
import { HOST_PATH, TOOLS } from './tools.ts';

function hostEnv(ctx: JailContext, extra?: Record<string, string>): Record<string, string> {
  return { PATH: HOST_PATH, JID: String(ctx.jid), JNAME: ctx.name, JPATH: ctx.path, ...extra };
}

function runOptions(o: ExecOptions | undefined, env: Record<string, string>): RunOptions {
  return {
    env,
    ...(o?.stdio ? { stdio: o.stdio } : {}),
    ...(o?.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
    ...(o?.consoleLog ? { consoleLog: o.consoleLog } : {}),
  };
}

export function runHost(host: FreeBSDHost, ctx: JailContext, command: string, o?: ExecOptions): Promise<ExecResult> {
  const argv = o?.user ? [TOOLS.su, '-m', o.user, '-c', command] : [TOOLS.sh, '-c', command];
  const env = hostEnv(ctx, { ...(o?.user ? { SHELL: TOOLS.sh } : {}), ...o?.env });
  return host.runner.run(argv, { ...runOptions(o, env), ...(o?.cwd ? { cwd: o.cwd } : {}) });
}

export function runInJail(host: FreeBSDHost, ctx: JailContext, argv: string[], o?: ExecOptions): Promise<ExecResult> {
  // jexec -l: a clean login environment inside; env(1) then adds the jail variables
  const vars = Object.entries({ JID: String(ctx.jid), JNAME: ctx.name, JPATH: ctx.path, ...o?.env }).map(
    ([k, v]) => `${k}=${v}`,
  );
  // a fixed script with the directory as an argument: nothing from input is parsed by sh
  const cwd = o?.cwd ? [TOOLS.sh, '-c', 'cd -- "$1" || exit 125; shift; exec "$@"', 'jailyard-cwd', o.cwd] : [];
  const full = [TOOLS.jexec, '-l', ...(o?.user ? ['-U', o.user] : []), ctx.name, TOOLS.env, ...vars, ...cwd, ...argv];
  return host.runner.run(full, runOptions(o, { PATH: HOST_PATH }));
}
