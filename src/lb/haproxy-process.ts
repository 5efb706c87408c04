// Runs a HAProxy for jailyard's load balancing (tests and the quick start): one HTTP
// frontend, one backend with health checks and no static servers (the controller adds them
// through the Runtime API), master-worker in the background, stopped by the master's pid.

import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { JailyardError } from '../errors.ts';
import { HaproxyRuntime } from './haproxy-runtime.ts';

const run = promisify(execFile);

export interface HaproxyConfigOptions {
  adminSocket: string;
  /** Frontend address; loopback by default. */
  bindAddress?: string;
  port: number;
  backend?: string;
  /** Health check request path (GET) expecting status 200. */
  checkPath?: string;
}

/** The health-check timing the controller uses for every server it adds: dynamic servers do
 * not inherit `default-server`, so it lives here once and is passed on each `add server`. */
export const CHECK_TIMING = { inter: '200ms', fall: 2, rise: 1 } as const;

/** The configuration text (pure). */
export function haproxyConfig(o: HaproxyConfigOptions): string {
  const backend = o.backend ?? 'www';
  if (!/^[A-Za-z0-9._-]+$/.test(backend))
    throw new JailyardError('JY_ERR_USAGE', `invalid backend name "${backend}"`, { param: 'backend' });
  const checkPath = o.checkPath ?? '/';
  if (!/^\/[\x21-\x7e]*$/.test(checkPath))
    throw new JailyardError('JY_ERR_USAGE', `invalid check path "${checkPath}"`, { param: 'checkPath' });
  return [
    'global',
    `  stats socket ${o.adminSocket} mode 600 level admin expose-fd listeners`,
    '  maxconn 4096',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  timeout queue 5s',
    '  timeout http-keep-alive 10s',
    // a request whose server vanished is sent again, to another server
    '  option redispatch',
    '  retries 3',
    '  retry-on conn-failure empty-response',
    'frontend jailyard',
    `  bind ${o.bindAddress ?? '127.0.0.1'}:${o.port}`,
    `  default_backend ${backend}`,
    `backend ${backend}`,
    // roundrobin is a dynamic algorithm: `add server` accepts it
    '  balance roundrobin',
    `  option httpchk GET ${checkPath}`,
    '  http-check expect status 200',
    `  default-server inter ${CHECK_TIMING.inter} fall ${CHECK_TIMING.fall} rise ${CHECK_TIMING.rise}`,
    '',
  ].join('\n');
}

export interface HaproxyProcess {
  /** The master's pid (master-worker mode). */
  pid: number;
  adminSocket: string;
  configFile: string;
  runtime: HaproxyRuntime;
  /** SIGTERM to the master, waits until master and workers are gone. */
  stop(): Promise<void>;
}

/** Started with `haproxy -W -D`: the master writes its pid, forks workers, and we return once
 * the admin socket answers. Files go to `dir` (haproxy.cfg, haproxy.pid, admin.sock). */
export async function startHaproxy(o: {
  dir: string;
  port: number;
  backend?: string;
  bindAddress?: string;
  checkPath?: string;
  binary?: string;
}): Promise<HaproxyProcess> {
  mkdirSync(o.dir, { recursive: true });
  const adminSocket = join(o.dir, 'admin.sock');
  const configFile = join(o.dir, 'haproxy.cfg');
  const pidFile = join(o.dir, 'haproxy.pid');
  writeFileSync(
    configFile,
    haproxyConfig({
      adminSocket,
      port: o.port,
      backend: o.backend,
      bindAddress: o.bindAddress,
      checkPath: o.checkPath,
    }),
  );
  try {
    await run(o.binary ?? 'haproxy', ['-W', '-D', '-f', configFile, '-p', pidFile]);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new JailyardError(
      'JY_ERR_HAPROXY',
      'haproxy did not start',
      { step: 'haproxy start', output: (err.stderr ?? err.message).trim() },
      { cause: e },
    );
  }
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const runtime = new HaproxyRuntime(adminSocket);
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      await runtime.command('show info');
      break;
    } catch (e) {
      if (Date.now() > deadline) {
        await stopPid(pid);
        throw e;
      }
      await sleep(50);
    }
  }
  return { pid, adminSocket, configFile, runtime, stop: () => stopPid(pid) };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Alive and not a zombie (a daemonized master is reparented; nobody may reap it). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Stops a HAProxy master and its workers: SIGTERM, then SIGKILL after 5 s. */
export async function stopPid(pid: number): Promise<void> {
  const all = [pid, ...childrenOf(pid)];
  const signal = (sig: NodeJS.Signals) => {
    for (const p of all) {
      try {
        if (alive(p)) process.kill(p, sig);
      } catch {
        // already gone
      }
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + 5000;
  while (all.some(alive)) {
    if (Date.now() > deadline) {
      signal('SIGKILL');
      await sleep(100);
      break;
    }
    await sleep(20);
  }
}
