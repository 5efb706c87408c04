// FreeBSD's jail-tree sysctls, security.jail.children.max and security.jail.children.cur
// (sys/kern/kern_jail.c, read-only): for the caller's own jail, its children.max (0 when
// unset) and how many jail records lie below it at any depth, whatever their state (what
// children.max bounds: runtime/params.ts withDerived); on the host, prison0's: JAIL_MAX and
// every record. The host's `jailyard sysctl` (../commands/sysctl.ts) and a jail's own
// sysctl (native/jy-guest.c, through the tools channel: src/api/guest-tools.ts) answer them
// with this code, as FreeBSD's tests/sys/kern/sysctl_security_jail_children.sh reads them.

import { withDerived } from '../../runtime/params.ts';
import type { JailRecord } from '../../store/types.ts';
import type { FrontIO, ReaderScope } from './types.ts';
import { inScope } from './scope.ts';

/** The most jails FreeBSD allows (sys/jail.h JAIL_MAX): prison0's children.max. */
export const JAIL_MAX = 999999;

/** The names, with sysctl -d's descriptions (kern_jail.c). */
export const JAIL_TREE_OIDS: Readonly<Record<string, string>> = {
  'security.jail.children.max': 'Maximum number of child jails',
  'security.jail.children.cur': 'Current number of child jails',
};

export function isJailTreeOid(name: string): boolean {
  return Object.hasOwn(JAIL_TREE_OIDS, name);
}

/** The value of `oid` for the jail `root` (the host when undefined), from every jail of the
 * state folder (stopped ones count too: their records are what children.max bounds). */
export function jailTreeValue(oid: string, all: readonly JailRecord[], root?: string): number {
  const max = oid === 'security.jail.children.max';
  if (root === undefined) return max ? JAIL_MAX : all.length;
  const self = all.find((j) => j.name === root);
  if (!self) return 0;
  const [derived] = withDerived([self], all);
  return Number(derived!.params[max ? 'children.max' : 'children.cur']) || 0;
}

const USAGE = 'usage: sysctl [-deNnq] name ...\n';

/**
 * sysctl(8) for the jail-tree names only, for the caller of `scope` (a jail's own sysctl
 * hands these names to the host): -n (value only), -e (name=value), -q (no message for an
 * unknown name), -d (the description), -N (the name only); `name=value` is refused as
 * read-only. Exit 1 when any name failed.
 */
export async function sysctlMain(argv: string[], io: FrontIO, scope: ReaderScope): Promise<number> {
  const flags = new Set<string>();
  let i = 0;
  for (; i < argv.length && argv[i]!.startsWith('-') && argv[i] !== '-'; i++) {
    if (argv[i] === '--') {
      i++;
      break;
    }
    for (const c of argv[i]!.slice(1)) {
      if (!'deNnq'.includes(c)) {
        io.stderr(`sysctl: illegal option -- ${c}\n${USAGE}`);
        return 1;
      }
      flags.add(c);
    }
  }
  const names = argv.slice(i);
  if (!names.length) {
    io.stderr(USAGE);
    return 1;
  }
  // the caller's own jail and its descendants are all it may count
  const all = (await scope.service.list()).filter((j) => inScope(scope, j.name) || j.name === scope.root);
  let status = 0;
  for (const word of names) {
    const eq = word.indexOf('=');
    const name = eq < 0 ? word : word.slice(0, eq);
    if (!isJailTreeOid(name)) {
      if (!flags.has('q')) io.stderr(`sysctl: unknown oid '${name}'\n`);
      status = 1;
      continue;
    }
    if (eq >= 0) {
      io.stderr(`sysctl: oid '${name}' is read only\n`);
      status = 1;
      continue;
    }
    const value = flags.has('d') ? JAIL_TREE_OIDS[name]! : String(jailTreeValue(name, all, scope.root));
    if (flags.has('N')) io.stdout(`${name}\n`);
    else if (flags.has('n')) io.stdout(`${value}\n`);
    else io.stdout(`${name}${flags.has('e') ? '=' : ': '}${value}\n`);
  }
  return status;
}
