// Small real trees for the skeleton tests (under the OS temp dir, unique per test run).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export function tempDir(label: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `jyskel-${label}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes `files` (relative path -> content; content starting with "->" makes a symlink). */
export function makeTree(root: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    const p = join(root, rel);
    if (rel.endsWith('/')) {
      mkdirSync(p, { recursive: true });
      continue;
    }
    mkdirSync(dirname(p), { recursive: true });
    if (content.startsWith('->')) symlinkSync(content.slice(2), p);
    else writeFileSync(p, content);
  }
}

/** A tiny merged-usr skeleton with the areas the seed rules treat differently. */
export function makeSkeleton(root: string, over: Record<string, string> = {}): void {
  makeTree(root, {
    bin: '->usr/bin',
    lib: '->usr/lib',
    'usr/bin/sh': '#!fake sh\n',
    'usr/lib/libc.so': 'ELF',
    'usr/local/bin/': '',
    'usr/local/share/doc/big.txt': 'x'.repeat(5000),
    'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n',
    'etc/hosts': '127.0.0.1 localhost\n',
    'etc/shadow': 'root:*:1::::::\n',
    'etc/ssh/ssh_host_ed25519_key': 'PRIVATE',
    'etc/ssh/sshd_config': 'Port 22\n',
    'etc/localtime': '->/usr/share/zoneinfo/UTC',
    'var/log/syslog': 'lots of logs\n',
    'var/lib/dpkg/status': 'Package: x\n',
    'var/run': '->/run',
    'var/tmp/host-build/deep/': '',
    'root/.bash_history': 'secret commands\n',
    'home/alice/notes': 'private\n',
    'tmp/': '',
    ...over,
  });
  chmodSync(join(root, 'etc/shadow'), 0o640);
  chmodSync(join(root, 'tmp'), 0o1777);
}
