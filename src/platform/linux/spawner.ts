// Starting programs through jy-spawner (native/jy-spawner.c): one small helper process per
// jailyard process forks for us, so node's main thread never forks itself (node's spawn
// copies the whole node process and blocks until the child has exec'd, ~2.5-5 ms here,
// twice per jail start). Output and exit statuses come back over the helper's stdout.
//
// Used by proc.ts (run) and create.ts (jy-stage). When the helper is missing, callers use
// node's spawn; JAILYARD_SPAWNER=0 turns the helper off.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { JY_SPAWNER } from './native.ts';

export type Output = 'pipe' | 'ignore' | { file: string };

/** The wire values of native/jy-spawner.h, by the same names without the SPAWNER_ prefix
 * (test/platform/linux/spawner-wire.test.ts checks that the two agree). */
export const SPAWNER_WIRE = {
  MAX_FRAME: 1 << 20,
  REQ_SPAWN: 'S',
  REQ_CLOSE_OUTPUT: 'C',
  REPLY_PID: 'P',
  REPLY_FAILED: 'F',
  REPLY_STDOUT: 'O',
  REPLY_STDERR: 'E',
  REPLY_EXIT: 'X',
  FLAG_SETSID: 1,
  OUT_NULL: 0,
  OUT_PIPE: 1,
  OUT_APPEND: 2,
} as const;
const W = SPAWNER_WIRE;

export interface SpawnRequest {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /** In a session of its own (setsid), like node's `detached`. */
  detached?: boolean;
  stdout: Output;
  stderr: Output;
}

/**
 * A program started by the helper. Attach listeners right after `spawn` returns (before any
 * I/O callback runs): 'stdout' (Buffer), 'stderr' (Buffer), 'exit' (code: number | null,
 * signal: NodeJS.Signals | null) after all its output; 'error' (Error) when the helper died
 * and its exit can no longer be known. `started` resolves with the pid once the program
 * runs, and rejects with an errno-style error when it cannot.
 */
export class SpawnedProcess extends EventEmitter {
  pid = 0;
  readonly started: Promise<number>;
  readonly settle: { resolve: (pid: number) => void; reject: (e: Error) => void };
  private readonly closeOutputOf: () => void;

  constructor(closeOutput: () => void) {
    super();
    let settle!: SpawnedProcess['settle'];
    this.started = new Promise<number>((resolve, reject) => {
      settle = { resolve, reject };
    });
    this.settle = settle;
    // callers that only listen for events must not get an unhandled rejection
    this.started.catch(() => {});
    this.closeOutputOf = closeOutput;
  }

  /** Stop relaying its output (e.g. a long-lived process after its first line). Remove the
   * listeners first: a process nobody listens to no longer keeps node running. */
  closeOutput(): void {
    this.closeOutputOf();
  }
}

const SIGNALS = Object.fromEntries(Object.entries(constants.signals).map(([name, n]) => [n, name])) as Record<
  number,
  NodeJS.Signals
>;
const ERRNO_NAMES = Object.fromEntries(Object.entries(constants.errno).map(([name, n]) => [n, name])) as Record<
  number,
  string
>;

function outputMode(o: Output): number {
  return o === 'ignore' ? W.OUT_NULL : o === 'pipe' ? W.OUT_PIPE : W.OUT_APPEND;
}

function frame(body: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(body.length, 0);
  return Buffer.concat([len, body]);
}

function encodeSpawn(id: number, req: SpawnRequest): Buffer {
  const strings = (list: string[]) => list.map((s) => Buffer.from(`${s}\0`));
  const path = (o: Output) => (typeof o === 'object' ? o.file : '');
  const env = Object.entries(req.env).map(([k, v]) => `${k}=${v}`);
  const head = Buffer.alloc(8);
  head.write(W.REQ_SPAWN, 0, 'latin1');
  head.writeUInt32LE(id, 1);
  head[5] = req.detached ? W.FLAG_SETSID : 0;
  head[6] = outputMode(req.stdout);
  head[7] = outputMode(req.stderr);
  const counts = Buffer.alloc(8);
  counts.writeUInt32LE(req.argv.length, 0);
  counts.writeUInt32LE(env.length, 4);
  return frame(
    Buffer.concat([
      head,
      ...strings([path(req.stdout), path(req.stderr), req.cwd]),
      counts,
      ...strings(req.argv),
      ...strings(env),
    ]),
  );
}

export class Spawner {
  private readonly program: string;
  private proc: ChildProcess | null = null;
  private nextId = 1;
  /** Requested (pid 0 until it runs) and running programs, by request id. */
  private readonly live = new Map<number, SpawnedProcess>();
  private buffered: Buffer = Buffer.alloc(0);

  constructor(program: string) {
    this.program = program;
  }

  /** Starts `req.argv` (see SpawnedProcess for what comes back). */
  spawn(req: SpawnRequest): SpawnedProcess {
    if (req.argv.length === 0) throw new TypeError('spawn: empty argv');
    const proc = this.start();
    const id = this.nextId++;
    const child = new SpawnedProcess(() => this.closeOutput(id));
    this.live.set(id, child);
    this.hold();
    proc.stdin!.write(encodeSpawn(id, req));
    return child;
  }

  private closeOutput(id: number): void {
    if (!this.proc || !this.live.has(id)) return;
    const body = Buffer.alloc(5);
    body.write(W.REQ_CLOSE_OUTPUT, 0, 'latin1');
    body.writeUInt32LE(id, 1);
    this.proc.stdin!.write(frame(body));
    this.release();
  }

  private start(): ChildProcess {
    if (this.proc) return this.proc;
    // the one fork of node this costs, once per process
    const proc = spawn(this.program, [], { stdio: ['pipe', 'pipe', 'inherit'], cwd: '/', env: {} });
    proc.stdout!.on('data', (d: Buffer) => this.onData(d));
    proc.stdin!.on('error', () => {});
    proc.on('exit', () => this.lost(proc, new Error('jy-spawner exited')));
    proc.on('error', (e) => this.lost(proc, e));
    this.proc = proc;
    return proc;
  }

  /** Keeps node running while something waits on the helper; lets it exit otherwise. */
  private hold(): void {
    const p = this.proc;
    if (!p) return;
    p.ref();
    (p.stdout as unknown as { ref?: () => void }).ref?.();
  }

  private release(): void {
    const p = this.proc;
    if (!p || [...this.live.values()].some((c) => c.pid === 0 || c.listenerCount('exit') > 0)) return;
    p.unref();
    (p.stdout as unknown as { unref?: () => void }).unref?.();
    (p.stdin as unknown as { unref?: () => void }).unref?.();
  }

  private lost(proc: ChildProcess, e: Error): void {
    if (this.proc !== proc) return;
    this.proc = null;
    this.buffered = Buffer.alloc(0);
    for (const c of this.live.values()) {
      c.settle.reject(e);
      if (c.listenerCount('error')) c.emit('error', e);
    }
    this.live.clear();
  }

  private onData(d: Buffer): void {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, d]) : d;
    while (this.buffered.length >= 4) {
      const len = this.buffered.readUInt32LE(0);
      if (this.buffered.length < 4 + len) break;
      const body = this.buffered.subarray(4, 4 + len);
      this.buffered = this.buffered.subarray(4 + len);
      this.onFrame(String.fromCharCode(body[0]!), body.readUInt32LE(1), body.subarray(5));
    }
    this.release();
  }

  private onFrame(type: string, id: number, data: Buffer): void {
    const child = this.live.get(id);
    if (!child) return;
    if (type === W.REPLY_PID) {
      child.pid = data.readInt32LE(0);
      child.settle.resolve(child.pid);
    } else if (type === W.REPLY_FAILED) {
      this.live.delete(id);
      const errno = data.readInt32LE(0);
      const code = ERRNO_NAMES[errno] ?? `errno ${errno}`;
      child.settle.reject(Object.assign(new Error(`spawn ${code}`), { code, errno: -errno }));
    } else if (type === W.REPLY_STDOUT || type === W.REPLY_STDERR) {
      child.emit(type === W.REPLY_STDOUT ? 'stdout' : 'stderr', Buffer.from(data));
    } else if (type === W.REPLY_EXIT) {
      this.live.delete(id);
      const status = data.readInt32LE(0);
      const signal = status & 0x7f;
      child.emit('exit', signal ? null : (status >> 8) & 0xff, signal ? (SIGNALS[signal] ?? null) : null);
    }
  }
}

let shared: Spawner | null | undefined;

/** This process's spawner, or null (helper not built, or JAILYARD_SPAWNER=0). */
export function spawner(): Spawner | null {
  if (shared === undefined)
    shared = process.env.JAILYARD_SPAWNER !== '0' && existsSync(JY_SPAWNER) ? new Spawner(JY_SPAWNER) : null;
  return shared;
}
