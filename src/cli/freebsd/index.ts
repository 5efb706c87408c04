// The jail(8) / jls(8) / jexec(8) front: FreeBSD's argument forms, output, error texts and
// exit codes over jailyard's JailService. Each command is a function of argv, an io and a
// scope, so the same code serves the package bins (bin/jail, bin/jls, bin/jexec), the
// `jailyard jail|jls|jexec` verbs and the in-jail tools (a jail's guest socket: scope.root).

import type { FrontIO, FrontScope, ReaderScope } from './types.ts';

export type { FrontIO, FrontScope, ReaderScope };

export async function runJail(argv: string[], io: FrontIO, scope: FrontScope): Promise<number> {
  const { jailMain } = await import('./jail.ts');
  return jailMain(argv, io, scope);
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
