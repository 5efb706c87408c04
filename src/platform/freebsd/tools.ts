// Absolute paths of the FreeBSD programs the driver runs (base system locations), so no
// PATH lookup decides which binary acts as root.

export const TOOLS = {
  jail: '/usr/sbin/jail',
  jls: '/usr/sbin/jls',
  jexec: '/usr/sbin/jexec',
  ifconfig: '/sbin/ifconfig',
  mount: '/sbin/mount',
  umount: '/sbin/umount',
  mountNullfs: '/sbin/mount_nullfs',
  mountUnionfs: '/sbin/mount_unionfs',
  rctl: '/usr/bin/rctl',
  pkill: '/bin/pkill',
  pgrep: '/bin/pgrep',
  sh: '/bin/sh',
  env: '/usr/bin/env',
  su: '/usr/bin/su',
  sysctl: '/sbin/sysctl',
  uname: '/usr/bin/uname',
} as const;

/** PATH for host-side hooks (jail(8) runs them with root's usual path). */
export const HOST_PATH = '/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin';
