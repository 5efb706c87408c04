// The image holding a jail's size-limited writable part (limits.disk): a sparse file with an
// ext4 filesystem. No project quotas needed: the filesystem's size is the limit, and a jail
// filling it touches no other disk space.
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync, renameSync, rmSync } from 'node:fs';
import { JailyardError } from '../../errors.ts';

/**
 * Makes `image` as a sparse file of `bytes` holding an ext4 filesystem with the content of
 * `from` (mkfs -d copies owners, modes incl. setuid, links and xattrs). Built under a temp
 * name and renamed into place: a failure leaves no image.
 */
export async function makeDiskImage(
  image: string,
  bytes: number,
  from: string | undefined,
  jail: string,
): Promise<void> {
  const tmp = `${image}.tmp`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    ftruncateSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
  try {
    execFileSync(
      'mkfs.ext4',
      ['-q', '-F', '-m', '0', '-J', 'size=4', '-E', 'root_owner=0:0', ...(from ? ['-d', from] : []), tmp],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (e) {
    rmSync(tmp, { force: true });
    const output = (e as { stderr?: Buffer }).stderr?.toString().trim() ?? String(e);
    throw new JailyardError('JY_ERR_MOUNT', `cannot make the disk image of the jail's writable part`, {
      jail,
      param: 'limits.disk',
      step: 'exec.prepare',
      output,
    });
  }
  renameSync(tmp, image);
}
