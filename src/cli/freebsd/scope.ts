// Names as a caller of the front sees them: relative to the jail it runs in (scope.root),
// and only the jails that exist in jail(8)'s sense (not stopped: jail(8) has no defined but
// stopped jail).

import type { JailRecord } from '../../store/types.ts';
import type { ReaderScope as FrontScope } from './types.ts';

/** The host's name of a jail the caller names `name`. */
export function hostName(scope: FrontScope, name: string): string {
  return scope.root ? `${scope.root}.${name}` : name;
}

/** The name the caller sees for the host's jail `host`. */
export function shownName(scope: FrontScope, host: string): string {
  return scope.root && host.startsWith(`${scope.root}.`) ? host.slice(scope.root.length + 1) : host;
}

/** Whether `host` is below the caller's jail (every jail on the host). */
export function inScope(scope: FrontScope, host: string): boolean {
  return !scope.root || host.startsWith(`${scope.root}.`);
}

/** The jails the caller can see, in jid order (as jls walks them). */
export async function visibleJails(scope: FrontScope): Promise<JailRecord[]> {
  return (await scope.service.list())
    .filter((j) => j.state !== 'stopped' && inScope(scope, j.name))
    .sort((a, b) => a.jid - b.jid);
}

export const isJid = (word: string): boolean => /^[1-9][0-9]*$/.test(word);

/** The jail a word names: a jid (all digits), else a name relative to the caller. */
export async function findJail(scope: FrontScope, word: string): Promise<JailRecord | undefined> {
  const jails = await visibleJails(scope);
  if (isJid(word)) {
    const byJid = jails.find((j) => j.jid === Number(word));
    if (byJid) return byJid;
  }
  const host = hostName(scope, word);
  return jails.find((j) => j.name === host);
}
