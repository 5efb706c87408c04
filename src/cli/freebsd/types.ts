// The FreeBSD front's types: where a command writes (FrontIO) and whom it acts for
// (FrontScope, ReaderScope). A module of their own, so the commands (./jail.ts, ./jls.ts,
// ./jexec.ts, ./sysctl.ts) and the entry points (./index.ts) do not import each other.

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

/** What reading jails needs (jls): list and get, e.g. the store alone without the service. */
export interface ReaderScope extends Omit<FrontScope, 'service'> {
  service: Pick<JailService, 'list' | 'get'>;
}
