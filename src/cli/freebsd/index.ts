// The jail(8) / jls(8) / jexec(8) front: FreeBSD's argument forms, output, error texts and
// exit codes over jailyard's JailService. Each command is a function of argv, an io and a
// scope, so the same code serves the package bins (bin/jail, bin/jls, bin/jexec), the
// `jailyard jail|jls|jexec` verbs and the in-jail tools (a jail's guest socket: scope.root).

import type { JailService } from '../../runtime/types.ts';

/** Where a front command writes. Texts are written as given (no newline added). */
export interface FrontIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** jexec: the command's stdin (default: the process's own). */
  stdin?: NodeJS.ReadableStream | 'inherit';
  /** jexec: the caller has a terminal (a pty for the command). */
  terminal?: boolean;
  /** jls: whether stdout is a terminal, where values are shown escaped (src/cli/jls.ts
   * JlsOptions.terminal); absent: not one. */
  stdoutTerminal?: () => boolean;
}

/** Whom a front command acts for. */
export interface FrontScope {
  service: JailService;
  /** The caller's own jail (host name, e.g. "parent"); names the caller gives and sees are
   * relative to it, and it sees only its descendants. Undefined on the host. */
  root?: string;
  /** The host state folder (jexec runs commands through the local driver). */
  stateDir?: string;
}

export async function runJail(argv: string[], io: FrontIO, scope: FrontScope): Promise<number> {
  const { jailMain } = await import('./jail.ts');
  return jailMain(argv, io, scope);
}

/** What reading jails needs (jls): list and get, e.g. the store alone without the service. */
export interface ReaderScope extends Omit<FrontScope, 'service'> {
  service: Pick<JailService, 'list' | 'get'>;
}

export async function runJls(argv: string[], io: FrontIO, scope: ReaderScope): Promise<number> {
  const { jlsMain } = await import('./jls.ts');
  return jlsMain(argv, io, scope);
}

/** sysctl(8) for security.jail.children.max and .cur (./sysctl.ts). */
export async function runSysctl(argv: string[], io: FrontIO, scope: ReaderScope): Promise<number> {
  const { sysctlMain } = await import('./sysctl.ts');
  return sysctlMain(argv, io, scope);
}

export async function runJexec(argv: string[], io: FrontIO, scope: FrontScope): Promise<number> {
  const { jexecMain } = await import('./jexec.ts');
  return jexecMain(argv, io, scope);
}
