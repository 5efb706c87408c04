// A client for HAProxy's Runtime API (management.txt section 9.3) over its admin unix socket
// (`stats socket PATH mode 600 level admin`). One command per connection: outside `prompt`
// mode HAProxy answers and closes, so the end of the stream is the end of the answer.
//
// HAProxy 2.6 dynamic servers, as checked against the running 2.6.12:
// - `add server` needs a backend with a dynamic algorithm (roundrobin, leastconn, first,
//   ...): `default-server` is NOT applied, so check options are passed on every add.
// - a new server starts in maintenance (admin state FMAINT) with checks disabled;
//   `enable health` starts the checks (they run while in maint), `enable server` lets it take
//   traffic. A server whose check has not passed yet goes DOWN, never UP, when enabled.
// - `del server` is refused unless the server is in maint and has no active or idle
//   connection and an empty queue.

import { createConnection } from 'node:net';
import { JailyardError } from '../errors.ts';

/** One row of `show servers state <backend>` (fields named after its header line). */
export interface ServerState {
  backend: string;
  name: string;
  addr: string;
  port: number;
  /** srv_op_state: 0 stopped (DOWN), 1 starting, 2 running (UP), 3 stopping. */
  opState: number;
  /** srv_admin_state bit field: 0x01 forced maint, 0x08 forced drain, ... */
  adminState: number;
  /** srv_check_result: 3 = last check passed (CHK_RES_PASSED). */
  checkResult: number;
  checkHealth: number;
  raw: Record<string, string>;
}

/** One CSV row of `show stat`, keyed by the header (pxname, svname, scur, qcur, status...). */
export type StatRow = Record<string, string>;

export type AdminStateName = 'ready' | 'drain' | 'maint';

export const ADMIN_FMAINT = 0x01;
export const ADMIN_FDRAIN = 0x08;
export const OP_RUNNING = 2;
export const CHECK_PASSED = 3;

export interface AddServerOptions {
  /** Health-check interval (HAProxy time, e.g. "200ms"); the check itself is the backend's
   * `option httpchk` / `http-check expect`. Omit `check` to add without health checks. */
  check?: boolean;
  inter?: string;
  fall?: number;
  rise?: number;
  weight?: number;
}

/** Names HAProxy accepts for servers/backends; also keeps `;` and newlines (the CLI's
 * command separators) out of every command we send. */
const NAME_RE = /^[A-Za-z0-9._:-]+$/;
const ADDR_RE = /^[0-9A-Fa-f.:]+$/;
const TIME_RE = /^\d+(us|ms|s|m|h|d)?$/;

function checkWord(kind: string, value: string, re: RegExp): void {
  if (!re.test(value)) {
    throw new JailyardError('JY_ERR_USAGE', `invalid HAProxy ${kind} "${value}"`, { param: kind });
  }
}

export class HaproxyRuntime {
  readonly socketPath: string;
  readonly timeoutMs: number;

  constructor(socketPath: string, opts: { timeoutMs?: number } = {}) {
    this.socketPath = socketPath;
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  /** Sends one command line, returns HAProxy's whole answer. */
  command(line: string): Promise<string> {
    if (/[\n\r;]/.test(line)) {
      throw new JailyardError('JY_ERR_USAGE', `one HAProxy command at a time, without ";" or newlines: "${line}"`, {
        step: 'haproxy',
      });
    }
    return new Promise((resolve, reject) => {
      const sock = createConnection(this.socketPath);
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => {
        sock.destroy();
        reject(
          new JailyardError('JY_ERR_HAPROXY', `no answer within ${this.timeoutMs} ms to "${line}"`, {
            step: `haproxy ${this.socketPath}`,
          }),
        );
      }, this.timeoutMs);
      sock.on('connect', () => sock.end(`${line}\n`));
      sock.on('data', (c: Buffer) => chunks.push(c));
      sock.on('error', (e) => {
        clearTimeout(timer);
        reject(
          new JailyardError(
            'JY_ERR_HAPROXY',
            `cannot talk to the HAProxy admin socket: ${e.message}`,
            { step: `haproxy ${this.socketPath}` },
            { cause: e },
          ),
        );
      });
      sock.on('close', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks).toString('utf8'));
      });
    });
  }

  /** Runs a command whose success answer is `expected` (or empty when undefined); anything
   * else is HAProxy's error text. */
  async #expect(line: string, expected: RegExp | undefined, server: string): Promise<string> {
    const answer = await this.command(line);
    const text = answer.trim();
    const ok = expected ? expected.test(text) : text === '';
    if (!ok) {
      throw new JailyardError('JY_ERR_HAPROXY', `"${line}" failed: ${text || '(no answer)'}`, {
        step: `haproxy server ${server}`,
      });
    }
    return text;
  }

  async showServersState(backend: string): Promise<ServerState[]> {
    checkWord('backend', backend, NAME_RE);
    const answer = await this.command(`show servers state ${backend}`);
    const lines = answer.split('\n');
    const headerLine = lines.find((l) => l.startsWith('# '));
    if (!headerLine) {
      throw new JailyardError('JY_ERR_HAPROXY', `show servers state ${backend}: ${answer.trim() || '(no answer)'}`, {
        step: 'haproxy',
      });
    }
    const header = headerLine.slice(2).trim().split(' ');
    const rows: ServerState[] = [];
    for (const line of lines) {
      if (line === '' || line.startsWith('#') || !line.includes(' ')) continue;
      const cells = line.trim().split(' ');
      const raw: Record<string, string> = {};
      for (const [i, h] of header.entries()) raw[h] = cells[i] ?? '';
      rows.push({
        backend: raw.be_name ?? '',
        name: raw.srv_name ?? '',
        addr: raw.srv_addr ?? '',
        port: Number(raw.srv_port),
        opState: Number(raw.srv_op_state),
        adminState: Number(raw.srv_admin_state),
        checkResult: Number(raw.srv_check_result),
        checkHealth: Number(raw.srv_check_health),
        raw,
      });
    }
    return rows;
  }

  /** `show stat` as rows; with `backend`, only that backend's servers (no FRONTEND/BACKEND
   * summary lines). */
  async showStat(backend?: string): Promise<StatRow[]> {
    const answer = await this.command('show stat');
    const lines = answer.split('\n').filter((l) => l !== '');
    const head = lines.shift();
    if (!head?.startsWith('# '))
      throw new JailyardError('JY_ERR_HAPROXY', `show stat: ${answer.trim() || '(no answer)'}`, { step: 'haproxy' });
    const header = head.slice(2).split(',');
    const rows = lines.map((line) => {
      const cells = line.split(',');
      const row: StatRow = {};
      for (const [i, h] of header.entries()) row[h] = cells[i] ?? '';
      return row;
    });
    if (backend === undefined) return rows;
    return rows.filter((r) => r.pxname === backend && r.svname !== 'BACKEND' && r.svname !== 'FRONTEND');
  }

  /** Current plus queued streams on one server (what must reach 0 before `del server`). */
  async sessionsOf(backend: string, server: string): Promise<number> {
    const row = (await this.showStat(backend)).find((r) => r.svname === server);
    if (!row) return 0;
    return Number(row.scur || 0) + Number(row.qcur || 0);
  }

  async addServer(
    backend: string,
    server: string,
    addr: string,
    port: number,
    opts: AddServerOptions = {},
  ): Promise<void> {
    checkWord('backend', backend, NAME_RE);
    checkWord('server', server, NAME_RE);
    checkWord('address', addr, ADDR_RE);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new JailyardError('JY_ERR_USAGE', `invalid port ${port} for server ${server}`, { param: 'port' });
    }
    const words = ['add server', `${backend}/${server}`, addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`];
    if (opts.check) {
      words.push('check');
      if (opts.inter) {
        checkWord('inter', opts.inter, TIME_RE);
        words.push('inter', opts.inter);
      }
      if (opts.fall !== undefined) words.push('fall', String(Math.trunc(opts.fall)));
      if (opts.rise !== undefined) words.push('rise', String(Math.trunc(opts.rise)));
    }
    if (opts.weight !== undefined) words.push('weight', String(Math.trunc(opts.weight)));
    await this.#expect(words.join(' '), /New server registered/, `${backend}/${server}`);
  }

  async enableHealth(backend: string, server: string): Promise<void> {
    await this.#simple(`enable health`, backend, server);
  }

  async enableServer(backend: string, server: string): Promise<void> {
    await this.#simple(`enable server`, backend, server);
  }

  async setServerState(backend: string, server: string, state: AdminStateName): Promise<void> {
    await this.#simple(`set server`, backend, server, `state ${state}`);
  }

  /** Kills the streams still attached to a server (used only after a drain timeout). */
  async shutdownSessions(backend: string, server: string): Promise<void> {
    await this.#simple(`shutdown sessions server`, backend, server);
  }

  async deleteServer(backend: string, server: string): Promise<void> {
    checkWord('backend', backend, NAME_RE);
    checkWord('server', server, NAME_RE);
    await this.#expect(`del server ${backend}/${server}`, /Server deleted/, `${backend}/${server}`);
  }

  async #simple(verb: string, backend: string, server: string, tail = ''): Promise<void> {
    checkWord('backend', backend, NAME_RE);
    checkWord('server', server, NAME_RE);
    await this.#expect(`${verb} ${backend}/${server}${tail ? ` ${tail}` : ''}`, undefined, `${backend}/${server}`);
  }
}

/** True when HAProxy sends traffic to the server: operational UP and no maint/drain bit. */
export function isServing(s: ServerState): boolean {
  return s.opState === OP_RUNNING && (s.adminState & 0x7f) === 0;
}

/** srv_admin_state bits: maintenance (forced, inherited, configured, resolver, hostname) and
 * drain (forced, inherited). */
const ADMIN_MAINT_BITS = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
const ADMIN_DRAIN_BITS = 0x08 | 0x10;

export type ServerStatus = 'up' | 'down' | 'drain' | 'maint' | 'starting' | 'stopping';

/** What HAProxy does with a server, as `show stat` words it: MAINT and DRAIN (admin) before
 * the operational state (UP, DOWN, and the transitions between them). */
export function serverStatus(s: Pick<ServerState, 'opState' | 'adminState'>): ServerStatus {
  if (s.adminState & ADMIN_MAINT_BITS) return 'maint';
  if (s.adminState & ADMIN_DRAIN_BITS) return 'drain';
  return s.opState === OP_RUNNING ? 'up' : s.opState === 1 ? 'starting' : s.opState === 3 ? 'stopping' : 'down';
}
