// One etcd member on loopback for the tests of the cluster state and service (engineer C's
// ports: client 23794, peer 23804), its data in the test's own temporary folder, stopped
// by its pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ETCD_CLIENT = 'http://127.0.0.1:23794';
const DEFAULT_CLIENT = ETCD_CLIENT;
const DEFAULT_PEER = 'http://127.0.0.1:23804';

export interface SingleEtcd {
  endpoint: string;
  dir: string;
  proc: ChildProcess;
  /** Compacts etcd's history up to `revision` (etcdctl). */
  compact(revision: number): Promise<void>;
  /** Writes a raw value (etcdctl), bypassing every check of jailyard's. */
  put(key: string, value: string): Promise<void>;
  stop(): Promise<void>;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ETCDCTL_API: '3' } });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: ${out}`))));
  });
}

/** Ports of its own (a test file that runs beside the others) and extra etcd flags (a small
 * --quota-backend-bytes, say). */
export interface EtcdOptions {
  client?: number;
  peer?: number;
  args?: string[];
}

export async function startEtcd(o: EtcdOptions = {}): Promise<SingleEtcd> {
  const ETCD_CLIENT = o.client ? `http://127.0.0.1:${o.client}` : DEFAULT_CLIENT;
  const PEER = o.peer ? `http://127.0.0.1:${o.peer}` : DEFAULT_PEER;
  const dir = mkdtempSync(join(tmpdir(), 'jy-etcd-c-'));
  const proc = spawn(
    'etcd',
    [
      '--name',
      'c1',
      '--data-dir',
      join(dir, 'data'),
      '--listen-client-urls',
      ETCD_CLIENT,
      '--advertise-client-urls',
      ETCD_CLIENT,
      '--listen-peer-urls',
      PEER,
      '--initial-advertise-peer-urls',
      PEER,
      '--initial-cluster',
      `c1=${PEER}`,
      '--log-level',
      'error',
      ...(o.args ?? []),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  proc.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  const until = Date.now() + 15_000;
  for (;;) {
    try {
      await run('etcdctl', ['--endpoints', ETCD_CLIENT, 'endpoint', 'health']);
      break;
    } catch (e) {
      if (Date.now() > until || proc.exitCode !== null) {
        await stop();
        throw new Error(`etcd did not start: ${(e as Error).message}\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    endpoint: ETCD_CLIENT,
    dir,
    proc,
    compact: async (revision) => void (await run('etcdctl', ['--endpoints', ETCD_CLIENT, 'compact', String(revision)])),
    put: async (key, value) => void (await run('etcdctl', ['--endpoints', ETCD_CLIENT, 'put', key, value])),
    stop,
  };
}
