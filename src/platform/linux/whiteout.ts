// overlayfs whiteouts: a file a jail deleted from a copy-on-write layer is a character device
// 0:0 in its upper dir. Node cannot make device nodes; mknod(1) makes this one (arguments as
// an array, never a shell string). Used when a jail's writable part is copied or unpacked
// (src/portable), so a deleted skeleton file stays deleted in the copy.
import { execFileSync } from 'node:child_process';
import type { Stats } from 'node:fs';

/** Whether `st` is an overlayfs whiteout (a character device 0:0). */
export function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/** Makes a whiteout at `path` (which must not exist; mknod(2) never follows a link there). */
export function makeWhiteout(path: string): void {
  execFileSync('mknod', ['-m', '000', '--', path, 'c', '0', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
}
