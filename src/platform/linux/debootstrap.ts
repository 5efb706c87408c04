// Runs debootstrap (apt's /usr/sbin/debootstrap) for `skel create --debootstrap`, reporting
// its progress through the skeleton module's tracker of its output lines.
import { spawn } from 'node:child_process';
import { JailyardError } from '../../errors.ts';
import { DebootstrapTracker, type DebootstrapOptions } from '../../skeleton/debootstrap.ts';

/** Runs debootstrap into `target`; rejects with JY_ERR_SKELETON_CREATE and its output's tail. */
export function runDebootstrap(opts: DebootstrapOptions): Promise<void> {
  const args = [`--variant=${opts.variant ?? 'minbase'}`, opts.suite, opts.target];
  if (opts.mirror) args.push(opts.mirror);
  const tracker = new DebootstrapTracker();
  const tail: string[] = [];
  return new Promise((resolve, reject) => {
    const child = spawn(opts.program ?? '/usr/sbin/debootstrap', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    let partial = '';
    const onData = (chunk: Buffer): void => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        tail.push(line);
        if (tail.length > 20) tail.shift();
        const p = tracker.feed(line);
        if (p && opts.onProgress) opts.onProgress(p);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (e) =>
      reject(
        new JailyardError(
          'JY_ERR_SKELETON_CREATE',
          `cannot run debootstrap: ${e.message}`,
          { step: 'debootstrap' },
          { cause: e },
        ),
      ),
    );
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new JailyardError(
            'JY_ERR_SKELETON_CREATE',
            `debootstrap ${args.join(' ')} failed (${signal ?? `exit ${code}`})`,
            {
              step: 'debootstrap',
              output: [...tail, partial].join('\n').trim(),
            },
          ),
        );
    });
  });
}
