// The marks overlayfs keeps in an upper (copy-on-write) layer, which a copy of the layer
// (export, import, clone, snapshots: src/portable) must keep so that what the jail deleted
// stays deleted:
// - a whiteout: a file the jail deleted is a character device 0:0 in the upper dir. Node
//   cannot make device nodes; mknod(1) makes this one (arguments as an array);
// - the opaque mark: a directory the jail removed and made again carries the xattr
//   trusted.overlay.opaque = "y", so the lower layer's entries in it stay hidden. Node has no
//   xattr API; native/jy-xattr.c reads and writes it without following links.
import { execFileSync } from 'node:child_process';
import { existsSync, type Stats } from 'node:fs';
import { JailyardError } from '../../errors.ts';
import { JY_XATTR } from './native.ts';

/** Whether `st` is an overlayfs whiteout (a character device 0:0). */
export function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/** Makes a whiteout at `path` (which must not exist; mknod(2) never follows a link there). */
export function makeWhiteout(path: string): void {
  execFileSync('mknod', ['-m', '000', '--', path, 'c', '0', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function helper(): string {
  if (!existsSync(JY_XATTR))
    throw new JailyardError(
      'JY_ERR_PLATFORM',
      `missing ${JY_XATTR}: run npm install (or bash scripts/build-native.sh; needs gcc and libc6-dev)`,
    );
  return JY_XATTR;
}

/** The directories below `root` (relative paths) that carry overlayfs's opaque mark. */
export function opaqueDirs(root: string): string[] {
  const out = execFileSync(helper(), ['list', root], { maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  return out.toString('utf8').split('\0').filter(Boolean).sort();
}

/** Marks the directories `rels` below `dir` opaque (a link on the way is refused). */
export function markOpaque(dir: string, rels: readonly string[]): void {
  if (rels.length === 0) return;
  execFileSync(helper(), ['mark', dir], { input: `${rels.join('\0')}\0`, stdio: ['pipe', 'ignore', 'pipe'] });
}
