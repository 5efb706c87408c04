// What confines a jail's processes beyond its namespaces, computed from its parameters: the
// capabilities it keeps and the allowances of its seccomp filter (jail(8)'s allow.*), and
// which parts of its /proc are read-only or masked (the defaults file). jy-stage (pid 1) and
// jy-enter (every exec) get the same capabilities and allowances. Pure: parameters and
// defaults in, arguments out (native/jy-seccomp.h is the filter itself).
//
// jail(8)'s allow.* on Linux (docs/linux.md "allow.* on Linux"):
//   allow.raw_sockets   CAP_NET_RAW kept; raw IP and packet sockets not denied by the filter
//   allow.socket_af     socket families besides unix, inet, inet6 and netlink (FreeBSD: besides
//                       local, inet, inet6, route) not denied
//   allow.settime, allow.adjtime   CAP_SYS_TIME kept, clock_settime/settimeofday/clock_adjtime
//                       allowed: the HOST's clock, as on FreeBSD (Linux has no per-jail clock)
//   allow.read_msgbuf   CAP_SYSLOG kept, syslog(2) allowed: the host's kernel log (dmesg)
//   allow.mlock         CAP_IPC_LOCK kept (locking memory beyond RLIMIT_MEMLOCK)
//   allow.sysvipc       nothing to do: every jail has an ipc namespace of its own
//   allow.mount, allow.mount.*   no effect: mounting needs CAP_SYS_ADMIN, which in the host's
//                       user namespace is the host's (remount the skeleton rw, mount the host's
//                       disks); the mount calls stay denied
//   allow.chflags       no effect: Linux's counterpart, the immutable attribute
//                       (CAP_LINUX_IMMUTABLE), would let the jail make files jailyard cannot
//                       remove
//   allow.set_hostname  no effect: sethostname needs CAP_SYS_ADMIN (set host.hostname instead)
import { paramBool, type JailSpec } from '../../conf/spec.ts';
import type { Defaults, Platform } from '../../defaults.ts';
import { JailyardError } from '../../errors.ts';
import { JAIL_KEEP_CAPS, OPTIONAL_CAPS } from './caps.ts';

export interface JailSecurity {
  /** Capability numbers kept in the bounding set, comma-separated (jy-stage KEEP, jy-enter --keep-caps). */
  keepCaps: string;
  /** Seccomp allowances, comma-separated ("" = the default filter): jy-stage/jy-enter --seccomp. */
  seccomp: string;
}

/** allow.* parameter -> the capabilities it keeps and the filter allowances it turns on. */
const ALLOWANCES: Record<string, { caps: (keyof typeof OPTIONAL_CAPS)[]; seccomp: string[] }> = {
  'allow.raw_sockets': { caps: ['net_raw'], seccomp: ['raw_sockets'] },
  'allow.socket_af': { caps: [], seccomp: ['socket_af'] },
  'allow.settime': { caps: ['sys_time'], seccomp: ['settime'] },
  'allow.adjtime': { caps: ['sys_time'], seccomp: ['settime'] },
  'allow.read_msgbuf': { caps: ['syslog'], seccomp: ['read_msgbuf'] },
  'allow.mlock': { caps: ['ipc_lock'], seccomp: [] },
};

export function jailSecurity(spec: JailSpec): JailSecurity {
  const caps = new Set(JAIL_KEEP_CAPS.split(',').map(Number));
  const seccomp = new Set<string>();
  for (const [param, gives] of Object.entries(ALLOWANCES)) {
    if (!paramBool(spec.params, param)) continue;
    for (const c of gives.caps) caps.add(OPTIONAL_CAPS[c]);
    for (const s of gives.seccomp) seccomp.add(s);
  }
  return { keepCaps: [...caps].sort((a, b) => a - b).join(','), seccomp: [...seccomp].sort().join(',') };
}

export interface ProcRules {
  readonly: string[];
  masked: string[];
}

/** A /proc path of the defaults file: absolute below /proc, no empty, "." or ".." part. */
function procPath(p: unknown, list: string): string {
  const parts = typeof p === 'string' ? p.split('/') : [];
  if (
    parts[0] !== '' ||
    parts[1] !== 'proc' ||
    parts.length < 3 ||
    parts.slice(2).some((x) => x === '' || x === '.' || x === '..')
  ) {
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      `isolation.proc ${list}: not a path below /proc: ${JSON.stringify(p)}`,
      { param: `isolation.proc.${list}`, step: 'create' },
    );
  }
  return p as string;
}

/** The /proc paths a jail gets read-only and masked (defaults file: isolation.proc.<platform>). */
export function procRules(defaults: Pick<Defaults, 'isolation'>, platform: Platform = 'linux'): ProcRules {
  const rules = defaults.isolation?.proc?.[platform];
  return {
    readonly: (rules?.readonly ?? []).map((p) => procPath(p, 'readonly')),
    masked: (rules?.masked ?? []).map((p) => procPath(p, 'masked')),
  };
}

/** jy-stage's arguments for the rules. */
export function procArgs(rules: ProcRules): string[] {
  return [...rules.readonly.flatMap((p) => ['--proc-ro', p]), ...rules.masked.flatMap((p) => ['--proc-mask', p])];
}

/** The kernel-state file system types made read-only in a jail (defaults: isolation.kernelfs). */
export function kernelFsTypes(defaults: Pick<Defaults, 'isolation'>, platform: Platform = 'linux'): string[] {
  return (defaults.isolation?.kernelfs?.[platform] ?? []).map((t) => {
    if (typeof t !== 'string' || !/^[a-z0-9_.]+$/.test(t)) {
      throw new JailyardError(
        'JY_ERR_PARAM_VALUE',
        `isolation.kernelfs: not a file system type: ${JSON.stringify(t)}`,
        { param: 'isolation.kernelfs', step: 'create' },
      );
    }
    return t;
  });
}

/** jy-stage's arguments for the kernel-state file system types. */
export function kernelFsArgs(types: string[]): string[] {
  return types.flatMap((t) => ['--ro-fstype', t]);
}
