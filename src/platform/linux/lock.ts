// A host-wide lock between jailyard processes (the CLI, the daemon, tests): an exclusively
// created file under /run/jailyard holding the owner's pid; a lock whose owner is dead is
// taken over. Held only around short sequences that must not interleave, like attaching a
// veth to the shared bridge vs. deleting the bridge when its last jail leaves.
import { mkdirSync, openSync, closeSync, writeSync, readFileSync, unlinkSync } from 'node:fs';
import { JailyardError } from '../../errors.ts';
import { HOST_RUN_DIR } from '../../layout.ts';

const LOCK_DIR = HOST_RUN_DIR;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function withHostLock<T>(name: string, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  mkdirSync(LOCK_DIR, { recursive: true, mode: 0o755 });
  const path = `${LOCK_DIR}/${name}.lock`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let fd: number | undefined;
    try {
      fd = openSync(path, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (fd !== undefined) {
      writeSync(fd, String(process.pid));
      closeSync(fd);
      try {
        return await fn();
      } finally {
        try {
          unlinkSync(path);
        } catch {
          // already gone
        }
      }
    }
    let owner = NaN;
    try {
      owner = Number(readFileSync(path, 'utf8'));
    } catch {
      continue; // released meanwhile
    }
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && !alive(owner)) {
      try {
        unlinkSync(path);
      } catch {
        // someone else took it over first
      }
      continue;
    }
    if (Date.now() > deadline) {
      throw new JailyardError('JY_ERR_PLATFORM', `timed out waiting for the host lock ${path} (held by pid ${owner})`, {
        step: 'addresses',
      });
    }
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 15));
  }
}
