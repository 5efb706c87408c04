// A tiny owned skeleton tree that starts: a static busybox as sh, cat, ls, sleep, rm and
// hostname, /etc with passwd, group and sub/a.conf (a folder a jail may remove and make
// again: overlayfs's opaque mark). `extra` adds files (relative path -> text).
import { chmodSync, copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function miniTree(dir: string, extra: Record<string, string> = {}): string {
  for (const d of ['bin', 'etc/sub', 'var/log', 'tmp', 'root']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync('/usr/bin/busybox', join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  for (const c of ['sh', 'cat', 'ls', 'sleep', 'rm', 'hostname']) symlinkSync('busybox', join(dir, 'bin', c));
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n');
  writeFileSync(join(dir, 'etc/sub/a.conf'), 'a\n');
  for (const [rel, text] of Object.entries(extra)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  chmodSync(join(dir, 'tmp'), 0o1777);
  return dir;
}
