// The capabilities a jail keeps: Docker's default set minus mknod and net_raw. Enough for
// daemons to bind low ports, drop to users and own their files; not enough to mount, remount
// read-only binds rw, load modules, ptrace, change time or links, or forge packets (raw and
// packet sockets: ARP poisoning and spoofed sources on the bridge). jail(8)'s allow.*
// parameters add some back (src/platform/linux/security.ts).

/** Capability numbers (linux/capability.h) kept in the jail's bounding set. */
const KEEP = {
  chown: 0,
  dac_override: 1,
  fowner: 3,
  fsetid: 4,
  kill: 5,
  setgid: 6,
  setuid: 7,
  setpcap: 8,
  net_bind_service: 10,
  sys_chroot: 18,
  audit_write: 29,
  setfcap: 31,
} as const;

/** Capabilities only an allow.* parameter gives a jail (security.ts). */
export const OPTIONAL_CAPS = {
  net_raw: 13,
  ipc_lock: 14,
  sys_time: 25,
  syslog: 34,
} as const;

/** The KEEP argument of jy-stage and jy-enter (--keep-caps) for a jail with no allow.*. */
export const JAIL_KEEP_CAPS = Object.values(KEEP).join(',');
export const JAIL_KEPT_CAP_NAMES = Object.keys(KEEP);
