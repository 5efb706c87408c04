// exec.* hooks: on the host (/bin/sh -c, jail(8)'s JID/JNAME/JPATH), and inside the jail
// like jexec, through native/jy-enter: every namespace of its pid 1, its root, its cgroups,
// a session of its own, only fds 0-2 (never the caller's terminal: a pty of the jail's own or
// pipes), a clean environment, the jail's seccomp filter and its capability bounding set.
import { closeSync, constants, fstatSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { enterFiles, removeEnterFiles } from '../../layout.ts';
import { openInRoot } from './beneath.ts';
import { JailyardError } from '../../errors.ts';
import type { CreateFacts, ExecOptions, ExecResult, JailContext } from '../driver.ts';
import { JY_ENTER } from './native.ts';
import { consoleLimitOf } from './console.ts';
import { minimalEnv } from './host-env.ts';
import { run } from './proc.ts';
import { jailSecurity } from './security.ts';

/** In-jail commands' PATH: the tools jailyard binds into every jail (jail, jls, sysctl at
 * /run/jailyard/bin: native/jy-guest.c) come first, as jail(8)'s own would on FreeBSD. */
export const JAIL_PATH = '/run/jailyard/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** jail(8)'s variables; JPATH is the host path for host hooks, "/" inside the jail (which
 * must not learn where it lives on the host). */
function jailEnv(ctx: JailContext, inside: boolean): Record<string, string> {
  return { JID: String(ctx.jid), JNAME: ctx.name, JPATH: inside ? '/' : ctx.path };
}

/** The caller's TERM for a program on the caller's terminal (a plain name only), else dumb. */
function termOf(opts: ExecOptions): string {
  const term = process.env.TERM ?? '';
  return opts.stdio === 'inherit' && /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/.test(term) ? term : 'dumb';
}

/** Signals to this process go on to jy-enter (and from there to the program's process group)
 * while it runs on our terminal: jy-enter has a session of its own, so a terminal's SIGINT
 * or SIGWINCH reaches only us, and reaches the program once. */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGWINCH'];

function signalForwarder(): { attach: (pid: number) => void; detach: () => void } {
  const handlers = new Map<NodeJS.Signals, () => void>();
  return {
    attach(pid) {
      for (const sig of FORWARDED) {
        const h = () => {
          try {
            process.kill(pid, sig);
          } catch {
            // jy-enter already gone
          }
        };
        handlers.set(sig, h);
        process.on(sig, h);
      }
    },
    detach() {
      for (const [sig, h] of handlers) process.off(sig, h);
      handlers.clear();
    },
  };
}

export function runHost(ctx: JailContext, command: string, opts: ExecOptions = {}): Promise<ExecResult> {
  return run(['/bin/sh', '-c', command], {
    env: minimalEnv({ ...jailEnv(ctx, false), ...opts.env }),
    cwd: opts.cwd ?? '/',
    ...(opts.stdio ? { stdio: opts.stdio } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.consoleLog
      ? { consoleLog: opts.consoleLog, consoleLimit: consoleLimitOf(ctx.spec.params, ctx.name) }
      : {}),
    ...(opts.drain ? { drain: true } : {}),
  });
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  /** Supplementary groups: those of the jail's /etc/group that list the user. */
  groups: number[];
  home: string;
  shell: string;
}

/** A file of the jail's own (/etc/passwd, /etc/group) as text: read through pid 1's root with
 * its links resolved inside the jail (beneath.ts openInRoot), regular files of up to 1 MiB
 * only (never a FIFO that would block); "" when there is none. */
function jailFile(facts: CreateFacts, rel: string): string {
  try {
    const fd = openInRoot(`/proc/${facts.initPid}/root`, rel, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const st = fstatSync(fd);
      return st.isFile() && st.size <= 1 << 20 ? readFileSync(fd, 'utf8') : '';
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** The user as the jail knows it: the jail's own /etc/passwd and /etc/group, never the host's. */
function lookupUser(facts: CreateFacts, user: string, jail: string): PasswdEntry {
  for (const line of jailFile(facts, 'etc/passwd').split('\n')) {
    const [name = '', , uid = '', gid = '', , home = '/', shell = '/bin/sh'] = line.split(':');
    if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid)) continue;
    if (name === user || (/^\d+$/.test(user) && uid === user)) {
      // initgroups(3)'s list, as setpriv --init-groups made it: the primary group and the
      // groups that name the user as a member
      const member = jailFile(facts, 'etc/group')
        .split('\n')
        .map((l) => l.split(':'))
        .filter((f) => /^\d+$/.test(f[2] ?? '') && (f[3] ?? '').split(',').includes(name))
        .map((f) => Number(f[2]));
      const groups = [...new Set([Number(gid), ...member])].slice(0, 64);
      return { name, uid: Number(uid), gid: Number(gid), groups, home, shell };
    }
  }
  throw new JailyardError('JY_ERR_USAGE', `no user "${user}" in the jail's /etc/passwd`, {
    jail,
    param: 'exec.jail_user',
  });
}

/** jy-enter checks the target's pid namespace: a reused pid number is never entered. */
function expectPidNs(facts: CreateFacts): string[] {
  const m = /^pid:\[(\d+)\]$/.exec(facts.nsIds?.pid ?? '');
  return m ? ['--expect-pidns', m[1]!] : [];
}

export async function runInJail(
  ctx: JailContext,
  facts: CreateFacts,
  argv: string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  if (!argv.length) throw new JailyardError('JY_ERR_USAGE', 'no command to run in the jail', { jail: ctx.name });
  const who = opts.user ? lookupUser(facts, opts.user, ctx.name) : undefined;
  const env: Record<string, string> = {
    PATH: JAIL_PATH,
    HOME: who?.home ?? '/root',
    TERM: termOf(opts),
    USER: who?.name ?? 'root',
    LOGNAME: who?.name ?? 'root',
    SHELL: who?.shell ?? '/bin/sh',
    ...jailEnv(ctx, true),
    ...opts.env,
  };
  const security = jailSecurity(ctx.spec);
  const pty = opts.stdio === 'inherit' && opts.tty === true;
  const full = [
    // jy-enter (static, the host's): the jail's cgroups, every namespace of its pid 1, its
    // root; the process and every child it forks are charged to the jail from the start.
    // It installs the filter and drops the capabilities itself before it runs the first
    // program of the jail's own tree (the jailed root owns that tree: it may have replaced any
    // program there, or preloaded a library into them). The environment is the clean one
    // this spawn gets; no descriptor above 2 and no terminal of ours crosses.
    JY_ENTER,
    ...facts.cgroups.flatMap((d) => ['--cgroup', d]),
    '--target',
    String(facts.initPid),
    ...expectPidNs(facts),
    '--keep-caps',
    security.keepCaps,
    '--seccomp',
    security.seccomp,
    ...(pty ? ['--pty'] : []),
    // the directory and the user are jy-enter's to take, not programs of the jail's (its
    // env or setpriv could be the jailed root's, or missing in a minimal jail)
    ...(opts.cwd ? ['--cwd', opts.cwd] : []),
    ...(who ? ['--user', [who.uid, who.gid, who.groups.join(',')].join(':')] : []),
    '--',
    ...argv,
  ];
  const forwarder = opts.stdio === 'inherit' ? signalForwarder() : undefined;
  try {
    return await run(full, {
      env,
      ...(opts.stdio ? { stdio: opts.stdio } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.consoleLog
        ? { consoleLog: opts.consoleLog, consoleLimit: consoleLimitOf(ctx.spec.params, ctx.name) }
        : {}),
      ...(opts.drain ? { drain: true } : {}),
      ...(opts.input !== undefined && opts.stdio !== 'inherit' ? { input: opts.input } : {}),
      ...(forwarder ? { onSpawn: forwarder.attach } : {}),
    });
  } finally {
    forwarder?.detach();
  }
}

/** The jail's enter file: in its host-only state folder, never in its root. Written as
 * enter.next; the runtime renames it to enter once the jail is running and removes it when
 * the jail begins to stop (the CLI refuses an exec into a starting or stopping jail). */
export function enterFile(ctx: JailContext): string {
  return enterFiles(ctx.stateDir).next;
}

/**
 * Writes what `jy-enter --fast` needs for a plain `jailyard exec NAME PROGRAM...` without
 * starting Node (bin/jailyard.js): the arguments and the environment runInJail gives
 * jy-enter for the root user, and pid 1's start time, which jy-enter checks (a file left by
 * a crash names a pid that is gone or another process: the CLI runs instead). Written to a
 * temporary name and renamed, root's own, mode 0600. Nothing is written when a value would
 * not fit on one line: the CLI then does every exec.
 */
export function writeEnterFile(ctx: JailContext, facts: CreateFacts): void {
  const pidns = /^pid:\[(\d+)\]$/.exec(facts.nsIds?.pid ?? '')?.[1];
  if (!facts.startTime || !pidns) return;
  const security = jailSecurity(ctx.spec);
  const env = {
    PATH: JAIL_PATH,
    HOME: '/root',
    TERM: '',
    USER: 'root',
    LOGNAME: 'root',
    SHELL: '/bin/sh',
    ...jailEnv(ctx, true),
  };
  const lines = [
    'jy-enter-fast 1',
    `target ${facts.initPid}`,
    `start-time ${facts.startTime}`,
    `pidns ${pidns}`,
    ...facts.cgroups.map((d) => `cgroup ${d}`),
    `keep-caps ${security.keepCaps}`,
    `seccomp ${security.seccomp}`,
    // TERM in its place: jy-enter takes the caller's (termOf)
    ...Object.entries(env).map(([k, v]) => (k === 'TERM' ? 'env TERM' : `env ${k}=${v}`)),
  ];
  if (lines.some((l) => /[\n\0]/.test(l)) || facts.cgroups.length > 8) return;
  const file = enterFile(ctx);
  const tmp = `${file}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  try {
    writeFileSync(tmp, `${lines.join('\n')}\n`, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Removed before the jail stops: from then on every exec goes through the CLI. */
export function removeEnterFile(ctx: JailContext): void {
  removeEnterFiles(ctx.stateDir);
}
