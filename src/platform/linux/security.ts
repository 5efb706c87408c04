// What confines a jail's processes beyond its namespaces, computed from its parameters: the
// capabilities it keeps and the allowances of its seccomp filter (jail(8)'s allow.*).
// jy-stage (pid 1) and jy-enter (every exec) get the same two arguments.
import type { JailSpec } from '../../conf/spec.ts';
import { JAIL_KEEP_CAPS } from './caps.ts';

export interface JailSecurity {
  /** Capability numbers kept in the bounding set, comma-separated (jy-stage KEEP, jy-enter --keep-caps). */
  keepCaps: string;
  /** Seccomp allowances, comma-separated ("" = the default filter): jy-stage/jy-enter --seccomp. */
  seccomp: string;
}

/** STUB: to be derived from allow.* (raw_sockets, mount, sysvipc, ...). */
export function jailSecurity(_spec: JailSpec): JailSecurity {
  return { keepCaps: JAIL_KEEP_CAPS, seccomp: '' };
}
