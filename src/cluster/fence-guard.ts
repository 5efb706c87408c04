// A cluster node's fence guard (docs/cluster.md, fencing). A daemon killed with -9 (or a
// crash, the OOM killer) cannot stop its jails itself; its lease then expires after the TTL
// and another node starts the same jails: they would run on two nodes. So `serve --etcd`
// starts this small process, one per node, holding a pipe from the daemon as its stdin. The
// daemon writes "bye" once its orderly stop has stopped its jails; a pipe that ends without
// it means the daemon is gone, and the guard SIGKILLs every process of every jail of the
// node's state folder at once (the driver's killAll), well within the lease's TTL, then
// exits. The restarted daemon reconciles the dead jails as after any crash.
//
// The guard runs in a session of its own (a kill of the daemon's process group does not end
// it first) and loads the driver before it reports ready, so the fence is a read of a few
// cgroup files and the kills, not a Node module load.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JailyardError } from '../errors.ts';

const SELF = fileURLToPath(import.meta.url);
const READY = 'ready\n';
const BYE = 'bye\n';

export interface FenceGuard {
  readonly pid: number;
  /** The orderly end: the guard exits without killing anything; resolves once it is gone. */
  bye(): Promise<void>;
}

/**
 * Starts the guard of the state folder `stateDir` and waits until it is armed (its driver
 * loaded). `node` only names the node in its log lines, which go to this process's stderr.
 */
export async function startFenceGuard(stateDir: string, node: string, timeoutMs = 15_000): Promise<FenceGuard> {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', SELF, stateDir, node], {
    stdio: ['pipe', 'pipe', 'inherit'],
    detached: true,
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    await new Promise<void>((ok, fail) => {
      let out = '';
      const timer = setTimeout(() => fail(new Error(`not ready within ${timeoutMs} ms`)), timeoutMs);
      child.once('error', (e) => fail(e));
      child.once('exit', (code, signal) => fail(new Error(`exited (${code ?? signal}) before it was ready`)));
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString('utf8');
        if (out.startsWith(READY)) {
          clearTimeout(timer);
          ok();
        }
      });
    });
  } catch (e) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    throw new JailyardError('JY_ERR_PLATFORM', `the fence guard did not start: ${(e as Error).message}`, {
      step: 'serve',
    });
  }
  child.stdout!.destroy();
  // neither the guard nor its pipe keeps the daemon's event loop alive
  child.unref();
  const stdin = child.stdin as unknown as { ref?: () => void; unref?: () => void };
  stdin.unref?.();
  let said = false;
  return {
    pid: child.pid!,
    async bye() {
      // held until the guard is gone: the daemon's last steps run after this
      child.ref();
      stdin.ref?.();
      if (!said && child.stdin!.writable) child.stdin!.end(BYE);
      said = true;
      await exited;
    },
  };
}

/** The guard program: `node fence-guard.ts STATE_DIR NODE`. */
async function guard(stateDir: string, node: string): Promise<void> {
  const log = (level: string, msg: string, fields: Record<string, unknown> = {}): void => {
    process.stderr.write(
      `${JSON.stringify({ level, time: Date.now(), node, msg: `fence guard: ${msg}`, pid: process.pid, ...fields })}\n`,
    );
  };
  const { loadDriver } = await import('../platform/index.ts');
  const driver = await loadDriver({ stateDir });
  const killAll = driver.killAll;
  if (!killAll) {
    log('error', `the ${driver.platform} driver cannot fence (no killAll)`);
    process.exit(1);
  }
  // a terminal's ^C or a hang-up reaches the daemon, never its guard: only the pipe counts
  for (const s of ['SIGINT', 'SIGHUP', 'SIGPIPE'] as const) process.on(s, () => {});
  let said = '';
  let done = false;
  const end = async (): Promise<void> => {
    if (done) return;
    done = true;
    if (said === BYE) process.exit(0);
    const t0 = performance.now();
    let killed = 0;
    try {
      killed = await killAll.call(driver);
    } catch (e) {
      log('error', `fencing failed: ${(e as Error).message}`);
      process.exit(1);
    }
    log('error', "the daemon died without its 'bye': killed every process of this node's jails", {
      stateDir,
      killed,
      ms: Math.round(performance.now() - t0),
    });
    process.exit(0);
  };
  process.stdin.on('data', (d: Buffer) => {
    said += d.toString('utf8');
  });
  process.stdin.once('end', () => void end());
  process.stdin.once('close', () => void end());
  process.stdin.once('error', () => void end());
  process.stdout.write(READY);
}

if (process.argv[1] && resolve(process.argv[1]) === SELF) {
  const [stateDir, node = ''] = process.argv.slice(2);
  if (!stateDir) {
    process.stderr.write('usage: fence-guard STATE_DIR NODE\n');
    process.exit(2);
  }
  guard(resolve(stateDir), node).catch((e: Error) => {
    process.stderr.write(
      `${JSON.stringify({ level: 'error', time: Date.now(), node, msg: `fence guard: ${e.message}` })}\n`,
    );
    process.exit(1);
  });
}
