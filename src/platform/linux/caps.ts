// The capabilities a jail keeps (setpriv bounding-set syntax). Docker's default set minus
// mknod: enough for daemons to bind low ports, drop to users and own their files; not
// enough to mount, remount read-only binds rw, load modules, ptrace, change time or links.
export const JAIL_BOUNDING_SET = [
  '-all',
  '+chown',
  '+dac_override',
  '+fowner',
  '+fsetid',
  '+kill',
  '+setgid',
  '+setuid',
  '+setpcap',
  '+setfcap',
  '+net_bind_service',
  '+net_raw',
  '+sys_chroot',
  '+audit_write',
].join(',');
