// The ONE registry of jail parameters (like intparams[] in FreeBSD's usr.sbin/jail/config.c,
// plus the kernel parameters of jail(8) and jailyard's own). Everything that needs to know
// a parameter's type or flags (evaluator, printer, CLI `param=value`, API) asks here.

import { JailyardError } from '../errors.ts';
import { parseMetaWord, type MetaOp, type MetaParam } from '../meta/ops.ts';
import type { ParamValue } from './spec.ts';
import { typeValue, ValueProblem } from './typing.ts';
import { checkExposeValue } from './expose.ts';
import { parseDuration } from './duration.ts';
import { parseProbeUrl } from './probe-url.ts';

/** check: a duration (duration.ts), at least `minMs`. */
const duration =
  (minMs: number) =>
  (v: string): string | undefined => {
    const ms = parseDuration(v);
    if (typeof ms !== 'number') return ms.problem;
    return ms < minMs ? `duration "${v}" is shorter than ${minMs}ms` : undefined;
  };
const probeUrl = (v: string): string | undefined => {
  const u = parseProbeUrl(v);
  return 'problem' in u ? u.problem : undefined;
};

/**
 * - string: one value (a list keeps its last element, as jail(8) does for scalars)
 * - int: a decimal integer -> number
 * - bool: `p;`, `nop;`, `p = true|false|N` -> boolean
 * - list: every value, in order -> string[] (exec.* hooks, depend, mount, ...)
 * - addrlist: a list of IP addresses (`[iface|]addr[/mask]`) -> string[]
 * - jailsys: "new" | "inherit" | "disable" (`vnet;` means new) -> string
 * - size: a byte size like 512M -> string
 */
export type ParamType = 'string' | 'int' | 'bool' | 'list' | 'addrlist' | 'jailsys' | 'size';

export interface ParamFlags {
  /** Used by jail(8)/jailyard to set the jail up, never passed to the kernel. */
  internal?: boolean;
  /** Undone in reverse order on stop (addresses, mounts). */
  reverseOnStop?: boolean;
  /** Cannot be redefined once set (`name`, `jid`). */
  immutable?: boolean;
  /** Reported by the kernel, never set. */
  readOnly?: boolean;
  /** jailyard's own parameter (documented in docs/jail-conf.md). */
  jailyard?: boolean;
}

export interface ParamDef {
  name: string;
  type: ParamType;
  flags: ParamFlags;
  description: string;
  /** Allowed values (jailsys, enumerations). */
  values?: readonly string[];
  /** Inclusive integer bounds. */
  min?: number;
  max?: number;
  /** A string parameter's own check of its value (a list's: of each value): why it is
   * refused, or undefined. */
  check?: (value: string) => string | undefined;
}

const JAILSYS = ['new', 'inherit', 'disable'] as const;
const I: ParamFlags = { internal: true };
const K: ParamFlags = {};
const RO: ParamFlags = { readOnly: true };
const JY: ParamFlags = { internal: true, jailyard: true };

function def(
  name: string,
  type: ParamType,
  flags: ParamFlags,
  description: string,
  extra: Partial<ParamDef> = {},
): ParamDef {
  return { name, type, flags, description, ...extra };
}

const allowFlags: [string, string][] = [
  ['allow.set_hostname', 'the jail may change its hostname'],
  ['allow.sysvipc', 'System V IPC (deprecated: sysvmsg, sysvsem, sysvshm)'],
  ['allow.raw_sockets', 'the jail root may create raw sockets'],
  ['allow.chflags', 'the jail root may change system file flags'],
  ['allow.mount', 'the jail root may mount jail-friendly file systems'],
  ['allow.mount.devfs', 'the jail root may mount devfs'],
  ['allow.mount.fdescfs', 'the jail root may mount fdescfs'],
  ['allow.mount.fusefs', 'the jail root may mount fuse file systems'],
  ['allow.mount.nullfs', 'the jail root may mount nullfs'],
  ['allow.mount.procfs', 'the jail root may mount procfs'],
  ['allow.mount.linprocfs', 'the jail root may mount linprocfs'],
  ['allow.mount.linsysfs', 'the jail root may mount linsysfs'],
  ['allow.mount.lindebugfs', 'the jail root may mount lindebugfs'],
  ['allow.mount.tmpfs', 'the jail root may mount tmpfs'],
  ['allow.mount.zfs', 'the jail root may mount ZFS'],
  ['allow.quotas', 'the jail root may administer quotas'],
  ['allow.socket_af', 'sockets of other protocol families'],
  ['allow.mlock', 'mlock(2) and munlock(2)'],
  ['allow.reserved_ports', 'the jail root may bind ports below 1024'],
  ['allow.unprivileged_proc_debug', 'unprivileged processes may debug'],
  ['allow.suser', 'the jail root keeps superuser privileges'],
  ['allow.nfsd', 'the jail may run nfsd'],
  ['allow.extattr', 'system extended attributes'],
  ['allow.adjtime', 'adjtime(2) and ntp_adjtime(2)'],
  ['allow.settime', 'the jail may set the clock'],
  ['allow.routing', 'the jail may change routing tables'],
  ['allow.vmm', 'access to vmm(4)'],
  ['allow.read_msgbuf', 'the jail may read the kernel message buffer'],
  ['allow.setaudit', 'the jail may set audit state'],
  ['allow.jails', 'the jail may create child jails (needs children.max)'],
  ['allow.dying', 'operate on a dying jail (jail(8) -d)'],
  ['allow.unprivileged_parent_tampering', "unprivileged host processes may act on the jail's processes (FreeBSD 14.3)"],
];

const execHooks: [string, string][] = [
  ['exec.prepare', 'host commands run first, before addresses and mounts'],
  ['exec.prestart', 'host commands run before the jail is created'],
  ['exec.created', 'host commands run right after the jail is created'],
  ['exec.start', 'commands run inside the jail when it starts (e.g. "/bin/sh /etc/rc")'],
  ['command', 'a synonym for exec.start'],
  ['exec.poststart', 'host commands run after exec.start'],
  ['exec.prestop', 'host commands run before the jail is stopped'],
  ['exec.stop', 'commands run inside the jail before it is removed'],
  ['exec.poststop', 'host commands run after the jail is removed'],
  ['exec.release', 'host commands run last, after addresses and mounts are undone'],
];

const DEFS: ParamDef[] = [
  // kernel parameters (jail(8) "Jail Parameters")
  def('jid', 'int', { immutable: true }, 'the jail identifier (set implicitly by a numeric jail name)', { min: 0 }),
  def('name', 'string', { immutable: true }, 'the jail name (implicit from the block name)'),
  def('path', 'string', K, 'the directory that is the root of the jail'),
  def('ip4.addr', 'addrlist', { reverseOnStop: true }, 'IPv4 addresses of the jail ([iface|]addr[/mask])'),
  def('ip4.saddrsel', 'bool', K, 'IPv4 source address selection'),
  def('ip4', 'jailsys', K, 'IPv4 availability: new (restricted to ip4.addr), inherit, disable', { values: JAILSYS }),
  def('ip6.addr', 'addrlist', { reverseOnStop: true }, 'IPv6 addresses of the jail ([iface|]addr[/prefix])'),
  def('ip6.saddrsel', 'bool', K, 'IPv6 source address selection'),
  def('ip6', 'jailsys', K, 'IPv6 availability: new, inherit, disable', { values: JAILSYS }),
  def('vnet', 'jailsys', K, 'a virtual network stack of its own (new) or the host one (inherit)', {
    values: ['new', 'inherit'],
  }),
  // a name that starts with '-' is an option to every tool that takes a hostname (a jail set
  // host.hostname=-F/etc/machine-id and read the host file through hostname(1))
  def('host.hostname', 'string', K, 'the hostname of the jail', {
    check: (v) => (v.startsWith('-') ? 'a hostname cannot start with "-"' : undefined),
  }),
  def('host.domainname', 'string', K, 'the NIS domain name of the jail'),
  def('host.hostuuid', 'string', K, 'the host UUID of the jail'),
  def('host.hostid', 'int', K, 'the host ID of the jail', { min: 0 }),
  def('host', 'jailsys', K, 'hostname origin: new or inherit', { values: ['new', 'inherit'] }),
  // the kernel takes any int (a level above 3 acts as 3; a jail's level never goes below
  // its parent's)
  def('securelevel', 'int', K, 'the jail kern.securelevel (-1 to 3)', { min: -2147483648, max: 2147483647 }),
  def('devfs_ruleset', 'int', K, 'the devfs ruleset enforced in the jail', { min: 0 }),
  def('children.max', 'int', K, 'how many child jails this jail may create', { min: 0 }),
  def('children.cur', 'int', RO, 'the number of descendant jails (read-only)'),
  def('enforce_statfs', 'int', K, 'which mount points the jail sees (0, 1, 2)', { min: 0, max: 2 }),
  def('persist', 'bool', K, 'the jail may exist without processes'),
  def('cpuset.id', 'int', RO, 'the cpuset of the jail (read-only)'),
  def('dying', 'bool', RO, 'the jail is shutting down (read-only)'),
  def('parent', 'int', RO, 'the jid of the parent jail (read-only)'),
  def('osrelease', 'string', K, 'the kern.osrelease / uname -r of the jail'),
  def('osreldate', 'int', K, 'the kern.osreldate / uname -K of the jail', { min: 0 }),
  ...allowFlags.map(([n, d]) => def(n, 'bool', n === 'allow.dying' ? I : K, d)),
  def('linux', 'jailsys', K, 'Linux emulation environment: new or inherit', { values: ['new', 'inherit'] }),
  def('linux.osname', 'string', K, 'the Linux OS name of the jail'),
  def('linux.osrelease', 'string', K, 'the Linux OS release of the jail'),
  def('linux.oss_version', 'int', K, 'the Linux OSS version of the jail'),
  def('sysvmsg', 'jailsys', K, 'System V message queues: new, inherit, disable', { values: JAILSYS }),
  def('sysvsem', 'jailsys', K, 'System V semaphores: new, inherit, disable', { values: JAILSYS }),
  def('sysvshm', 'jailsys', K, 'System V shared memory: new, inherit, disable', { values: JAILSYS }),
  def('zfs.mount_snapshot', 'int', K, 'the jail may mount ZFS snapshots (0, 1)', { min: 0, max: 1 }),
  def('mac.do', 'jailsys', K, 'mac_do(4) in the jail: new (its own rules), inherit, disable (FreeBSD 15)', {
    values: JAILSYS,
  }),
  def('mac.do.rules', 'string', K, 'the mac_do(4) rules of the jail (FreeBSD 15)'),
  def('mac.do.exec_paths', 'string', K, 'the programs mac_do(4) lets change credentials in the jail (FreeBSD 15)'),
  def('meta', 'string', K, 'key=value lines visible to the host only (FreeBSD 15)'),
  def('env', 'string', K, 'key=value lines visible to the host and, read-only, to the jail (FreeBSD 15)'),
  // jail(8) pseudo-parameters (config.c intparams[])
  ...execHooks.map(([n, d]) => def(n, 'list', I, d)),
  def('exec.clean', 'bool', I, 'run commands in a clean environment'),
  def('exec.jail_user', 'string', I, 'the user commands run as inside the jail'),
  def('exec.system_jail_user', 'bool', I, 'look exec.jail_user up in the host passwd file'),
  def('exec.system_user', 'string', I, 'the user host commands run as'),
  def('exec.timeout', 'int', I, 'seconds a command may run', { min: 0 }),
  def('exec.consolelog', 'string', I, 'file that receives command output'),
  def('exec.fib', 'int', I, 'the routing table (FIB) for commands in the jail', { min: 0 }),
  def('stop.timeout', 'int', I, 'seconds to wait after SIGTERM before removing the jail (default 10)', { min: 0 }),
  def('interface', 'string', I, 'network interface the addresses are added to'),
  def('vnet.interface', 'list', I, 'interfaces moved into a vnet jail'),
  def('ip_hostname', 'bool', I, 'resolve host.hostname and add its addresses'),
  def('mount', 'list', { internal: true, reverseOnStop: true }, 'fstab(5)-style lines mounted before the jail starts'),
  def('mount.fstab', 'list', { internal: true, reverseOnStop: true }, 'fstab(5) files mounted before the jail starts'),
  def('mount.devfs', 'bool', I, 'mount devfs on the jail /dev'),
  def('mount.fdescfs', 'bool', I, 'mount fdescfs on the jail /dev/fd'),
  def('mount.procfs', 'bool', I, 'mount procfs on the jail /proc'),
  def('depend', 'list', I, 'jails started before this one and stopped after it'),
  def(
    'zfs.dataset',
    'list',
    I,
    'ZFS datasets attached to the jail after it is created (FreeBSD 15; needs allow.mount.zfs)',
  ),
  // jailyard's own parameters (docs/jail-conf.md)
  def('skeleton', 'string', JY, 'the skeleton the jail is built from: NAME or NAME@VERSION'),
  def('skeleton.strategy', 'string', JY, 'how the skeleton is used: nullfs, basejail, overlay, full', {
    values: ['nullfs', 'basejail', 'overlay', 'full'],
  }),
  def(
    'skeleton.root',
    'string',
    JY,
    'a host directory used as the skeleton tree (legacy rc.conf jail_<name>_skel_root)',
  ),
  def('skeleton.romounts', 'list', JY, 'skeleton directories mounted read-only (relative paths)'),
  def('skeleton.rwmounts', 'list', JY, 'skeleton directories mounted read-write (relative paths)'),
  def(
    'skeleton.cow',
    'list',
    JY,
    "writable directories kept copy-on-write over the skeleton's (nullfs, basejail) instead of copied at create",
  ),
  def('limits.memory', 'size', JY, 'memory limit, e.g. 256M (K, M, G, T suffixes)'),
  def('limits.procs', 'int', JY, 'maximum number of processes', { min: 1 }),
  def('limits.cpu', 'int', JY, 'CPU limit in percent of one core (e.g. 150)', { min: 1 }),
  def(
    'limits.ptys',
    'int',
    JY,
    "Linux: ptys the jail's own devpts holds at once (devpts max; default: the defaults' limits.ptys, 256)",
    { min: 1, max: 1 << 20 },
  ),
  def('limits.cgroup_parent', 'string', JY, 'the parent cgroup (Linux) of the jail cgroup'),
  def(
    'limits.consolelog',
    'size',
    JY,
    "the console log's size before it is renamed to <log>.1 (at least 64K; default: the defaults' console.logMaxBytes, 4M)",
  ),
  def(
    'limits.disk',
    'size',
    JY,
    "Linux: size limit of a skeleton jail's writable part, fixed at create (e.g. 1G; default: the defaults' skeleton.disk, none)",
  ),
  def(
    'userns',
    'bool',
    JY,
    "Linux: the jail's root is an unprivileged host uid range of its own (a user namespace; default: the defaults' userns.enabled)",
  ),
  def(
    'expose',
    'list',
    JY,
    "published ports: [tcp:|udp:]HOST[:JAIL] host ports (or ranges LOW-HIGH) forwarded to the jail's first ip4.addr (docs/cli.md#ports)",
    { check: checkExposeValue },
  ),
  // cluster parameters (docs/cluster.md): where a jail may run, what happens when its node is lost
  def('node', 'string', JY, 'cluster: the node the jail runs on; on one host only the empty value is accepted'),
  def('node.selector', 'string', JY, 'cluster: a label selector over node labels for the nodes the jail may run on'),
  def(
    'restart.policy',
    'string',
    JY,
    "what the daemon does when the jail's processes die or it turns unhealthy: no, on-failure, always (docs/health.md); cluster: re-place the jail on another node when its node is lost",
    { values: ['no', 'always', 'on-failure'] },
  ),
  def('restart.delay', 'string', JY, 'the first restart back-off (doubled per restart in a row; default 1s)', {
    check: duration(100),
  }),
  def('restart.delay_max', 'string', JY, 'the longest restart back-off (default 60s)', { check: duration(100) }),
  // health checks (docs/health.md), run by the daemon while the jail runs
  def('health.cmd', 'string', JY, 'a command run inside the jail (/bin/sh -c, like exec.start); exit 0 = healthy'),
  def(
    'health.http',
    'string',
    JY,
    "an HTTP GET from the host: /path (the jail's first address, port 80) or http://ADDRESS[:PORT]/path; 200-399 = healthy",
    { check: probeUrl },
  ),
  def('health.interval', 'string', JY, 'time between checks (default 30s)', { check: duration(100) }),
  def('health.timeout', 'string', JY, 'a check taking longer fails (default 30s)', { check: duration(100) }),
  def('health.retries', 'int', JY, 'failures in a row that make the jail unhealthy (default 3)', {
    min: 1,
    max: 1000,
  }),
  def('health.start_period', 'string', JY, 'failures in this time after start do not count (default 0s)', {
    check: duration(0),
  }),
];

/**
 * The parameters config.c's intparams[] names: jail(8) refuses a variable named like one
 * of them (`$path = "/j";`, `$interface = em0;`) even when the parameter itself is not set.
 */
const INTPARAM_NAMES: ReadonlySet<string> = new Set([
  'allow.dying',
  'command',
  'depend',
  'exec.clean',
  'exec.consolelog',
  'exec.fib',
  'exec.jail_user',
  'exec.poststart',
  'exec.poststop',
  'exec.prepare',
  'exec.prestart',
  'exec.prestop',
  'exec.release',
  'exec.created',
  'exec.start',
  'exec.stop',
  'exec.system_jail_user',
  'exec.system_user',
  'exec.timeout',
  'interface',
  'ip_hostname',
  'mount',
  'mount.devfs',
  'mount.fdescfs',
  'mount.procfs',
  'mount.fstab',
  'stop.timeout',
  'vnet.interface',
  'ip4.addr',
  'ip6.addr',
  'allow.chflags',
  'allow.mount',
  'allow.raw_sockets',
  'allow.set_hostname',
  'allow.socket_af',
  'allow.sysvipc',
  'devfs_ruleset',
  'host.hostname',
  'jid',
  'name',
  'path',
  'persist',
  'securelevel',
  'vnet',
]);

/** config.c equalopts(): names compared with a "no" before their last component ignored. */
function withoutNo(name: string): string {
  const dot = name.lastIndexOf('.');
  const last = name.slice(dot + 1);
  return last.startsWith('no') ? name.slice(0, dot + 1) + last.slice(2) : name;
}

/** Whether `$name = ...;` is refused by jail(8) for naming one of its intparams. */
export function isIntparamName(name: string): boolean {
  return INTPARAM_NAMES.has(name) || INTPARAM_NAMES.has(withoutNo(name));
}

/** Every known parameter, by name. */
export const PARAMS: ReadonlyMap<string, ParamDef> = new Map(DEFS.map((d) => [d.name, d]));

/** The definition of a parameter, or undefined. */
export function findParam(name: string): ParamDef | undefined {
  return PARAMS.get(name);
}

/**
 * The boolean (or jailsys) parameter a `no`-prefixed name negates: `nopersist` -> persist,
 * `allow.nomount` -> allow.mount, `mount.nodevfs` -> mount.devfs (config.c bool_param).
 */
export function negatedParam(name: string): ParamDef | undefined {
  const dot = name.lastIndexOf('.');
  const head = name.slice(0, dot + 1);
  const last = name.slice(dot + 1);
  if (!last.startsWith('no')) return undefined;
  const d = PARAMS.get(head + last.slice(2));
  return d && (d.type === 'bool' || d.type === 'jailsys') ? d : undefined;
}

/** Normalizes a written name: its definition and whether it was written negated. */
export function resolveParamName(name: string): { def: ParamDef; negated: boolean } | undefined {
  const d = PARAMS.get(name);
  if (d) return { def: d, negated: false };
  const n = negatedParam(name);
  return n ? { def: n, negated: true } : undefined;
}

/** Known names nearest to `name` by edit distance (for "did you mean"). */
export function suggestParams(name: string, max = 3): string[] {
  const scored: [number, string][] = [];
  for (const known of PARAMS.keys()) {
    const d = editDistance(name, known);
    if (d <= Math.max(2, Math.floor(known.length / 4))) scored.push([d, known]);
  }
  scored.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
  return scored.slice(0, max).map(([, n]) => n);
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 8) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
    }
    prev = cur;
  }
  return prev[b.length] as number;
}

/** One command-line word, typed: a parameter value, or a meta/env key operation. */
export type ParamAssignment =
  | { kind: 'param'; name: string; value: ParamValue }
  | { kind: 'meta'; param: MetaParam; op: MetaOp };

/**
 * Types one `param=value` word the way jail(8)'s command line reads it:
 * `persist`, `nopersist`, `host.hostname=x`, `ip4.addr=198.51.100.5/24,198.51.100.6/24`
 * (address lists split at commas; other lists take the word as one element),
 * `meta.k=v`, `meta.k`, `meta=...`, `env.k=v`.
 */
/** jail(8)'s command line (jail.c): a word `command` or `command=...` takes the rest of the
 * line as the command; every word before it is a parameter. */
export function isCommandWord(word: string): boolean {
  return word.startsWith('command') && (word.length === 7 || word[7] === '=');
}

export function parseParamAssignment(word: string, jail?: string): ParamAssignment {
  const metaWord = parseMetaWord(word);
  if (metaWord) return { kind: 'meta', ...metaWord };
  const eq = word.indexOf('=');
  const name = eq < 0 ? word : word.slice(0, eq);
  const raw = eq < 0 ? undefined : word.slice(eq + 1);
  const place = { ...(jail !== undefined ? { jail } : {}), param: name };
  const found = resolveParamName(name);
  if (!found) {
    const hints = suggestParams(name);
    const hint = hints.length ? `; did you mean ${hints.map((h) => `"${h}"`).join(' or ')}?` : '';
    throw new JailyardError('JY_ERR_PARAM_UNKNOWN', `unknown parameter "${name}"${hint}`, place);
  }
  if (found.def.flags.readOnly)
    throw new JailyardError('JY_ERR_PARAM_VALUE', `parameter "${found.def.name}" is read-only`, place);
  // an address list's commas are split by the typing, as in jail.conf
  const values = raw === undefined ? [] : [raw];
  const value = typeValue(found.def, found.negated, values);
  if (value instanceof ValueProblem) {
    throw new JailyardError('JY_ERR_PARAM_VALUE', `${found.def.name}: ${value.message}`, {
      ...place,
      param: found.def.name,
    });
  }
  return { kind: 'param', name: found.def.name, value };
}
