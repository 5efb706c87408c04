// Issue 11 item 9: idle unauthenticated connections exhausted the daemon's descriptors (no
// cap, idle sockets lived 90-120 s). A real `jailyard serve` (its own process, so its
// descriptors can be counted) with small limits, flooded from loopback addresses only.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type NetConnectOpts, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/sqlite.ts';
import type { Store } from '../../src/store/types.ts';
import { binArgs } from '../helpers/cli.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';
import { rawRequest } from './api-helpers.ts';

const TOKEN = 'limits-token';
const LIMITS = {
  maxConnections: 40,
  perClient: 10,
  guest: 5,
  headersSec: 1.5,
  requestSec: 2.5,
  idleSec: 1,
  authSec: 1.5,
};

interface Idle {
  socket: Socket;
  openedAt: number;
  /** ms from the connect call to the close, once closed. */
  closedAfter?: number;
  /** ms from the connect call to the first bytes received. */
  dataAfter?: number;
  gotData: boolean;
  /** The start of the first bytes received (a status line, if any). */
  firstBytes?: string;
}

function openIdle(target: NetConnectOpts): Idle {
  const socket = connect(target);
  const c: Idle = { socket, openedAt: Date.now(), gotData: false };
  socket.on('error', () => {});
  socket.on('data', (d: Buffer) => {
    c.gotData = true;
    c.firstBytes ??= d.subarray(0, 16).toString('latin1');
    c.dataAfter ??= Date.now() - c.openedAt;
  });
  socket.on('close', () => (c.closedAfter = Date.now() - c.openedAt));
  return c;
}

/** How long an answer may take on a loaded machine (rawRequest returns as soon as it has one). */
const WAIT = 3000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const authed = (path = '/v1/version') => `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`;

describe('connection caps and timeouts (issue 11 item 9)', () => {
  let dir: string;
  let child: ChildProcess;
  let stderr = '';
  let tcp: { host: string; port: number };
  let unix: { path: string };
  let store: Store;
  let leaks: SystemSnapshot;
  const fds = () => readdirSync(`/proc/${child.pid}/fd`).length;

  before(async () => {
    leaks = snapshot();
    dir = mkdtempSync(join(tmpdir(), 'jy-apic-'));
    writeFileSync(join(dir, 'token'), TOKEN, { mode: 0o600 });
    child = spawn(
      process.execPath,
      binArgs(
        dir,
        'serve',
        '--listen',
        '127.0.0.1:0',
        '--token-file',
        join(dir, 'token'),
        '--bookmark-interval',
        '0.3',
        '--max-connections',
        String(LIMITS.maxConnections),
        '--max-client-connections',
        String(LIMITS.perClient),
        '--guest-max-connections',
        String(LIMITS.guest),
        '--headers-timeout',
        String(LIMITS.headersSec),
        '--request-timeout',
        String(LIMITS.requestSec),
        '--idle-timeout',
        String(LIMITS.idleSec),
        '--auth-timeout',
        String(LIMITS.authSec),
      ),
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr!.on('data', (b) => (stderr += b));
    await waitFor(
      () => /http:\/\/127\.0\.0\.1:(\d+)/.test(stderr) || child.exitCode !== null,
      20_000,
      'serve to start',
    );
    const port = /http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr)?.[1];
    assert.ok(port, `serve did not start: ${stderr}`);
    tcp = { host: '127.0.0.1', port: Number(port) };
    unix = { path: join(dir, 'jailyard.sock') };
    store = openStore(dir);
  });
  after(async () => {
    store?.close();
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    assertNoLeaks(leaks, dir);
    rmSync(dir, { recursive: true, force: true });
  });

  test('a wrong token gets 401 and its connection is closed', async () => {
    const c = openIdle(tcp);
    c.socket.write(`GET /v1/version HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n`);
    await waitFor(() => c.closedAfter !== undefined, 2000, 'the close');
    assert.ok(c.gotData);
  });

  test('a client over its per-address cap is refused at once; others are not', async () => {
    const mine = Array.from({ length: LIMITS.perClient + 5 }, () => openIdle({ ...tcp, localAddress: '127.0.0.2' }));
    await waitFor(() => mine.filter((c) => c.closedAfter !== undefined).length >= 5, 5000, 'the refusals');
    const refused = mine.filter((c) => c.closedAfter !== undefined);
    assert.equal(refused.length, 5, 'the connections over the cap were closed, the others not (yet)');
    assert.ok(refused.every((c) => !c.gotData && c.closedAfter! < 1000));
    // another address still gets in, and an authenticated one is served
    assert.equal((await rawRequest({ ...tcp, localAddress: '127.0.0.3' }, authed(), WAIT)).status, 200);
    for (const c of mine) c.socket.destroy();
  });

  test('300 idle unauthenticated connections: bounded descriptors, an authenticated client served, all closed after the auth timeout', async () => {
    await sleep(200);
    const base = fds();
    const flood: Idle[] = [];
    let maxFds = base;
    // 30 addresses x 10: each at its per-client cap, together far over the listener's cap
    for (let a = 1; a <= 30; a++)
      for (let i = 0; i < 10; i++) flood.push(openIdle({ ...tcp, localAddress: `127.0.1.${a}` }));
    const served: number[] = [];
    for (let i = 0; i < 10; i++) {
      maxFds = Math.max(maxFds, fds());
      served.push((await rawRequest(tcp, authed('/v1/jails'), WAIT)).status ?? 0);
      await sleep(20);
    }
    assert.deepEqual(served, Array(10).fill(200), `the authenticated client is served during the flood: ${served}`);
    await waitFor(() => flood.every((c) => c.closedAfter !== undefined), 5000, 'every idle connection to be closed');
    maxFds = Math.max(maxFds, fds());
    const slowest = Math.max(...flood.map((c) => c.closedAfter!));
    assert.ok(slowest < LIMITS.authSec * 1000 + 2500, `closed within the auth timeout (slowest ${slowest} ms)`);
    // closed by the auth timeout, or by node's headers timeout first (a 408): never served
    const answered = flood.filter((c) => c.gotData && !/^HTTP\/1\.1 408 /.test(c.firstBytes ?? ''));
    assert.deepEqual(
      answered.map((c) => c.firstBytes),
      [],
      'nothing was served to them',
    );
    // the listener's cap, plus a few of the authenticated client's
    assert.ok(maxFds <= base + LIMITS.maxConnections + 5, `descriptors ${base} -> at most ${maxFds}`);
    await sleep(200);
    assert.ok(fds() <= base + 2, `descriptors back to ${fds()} (from ${base})`);
  });

  test('an authenticated kept-alive connection is closed after the idle timeout', async () => {
    const c = openIdle(tcp);
    c.socket.write(authed());
    await waitFor(() => c.gotData, 2000, 'the answer');
    await waitFor(() => c.closedAfter !== undefined, 4000, 'the idle close');
    const idle = c.closedAfter! - c.dataAfter!;
    assert.ok(idle >= LIMITS.idleSec * 1000 - 100 && idle < LIMITS.idleSec * 1000 + 2500, `idle for ${idle} ms`);
  });

  test('a slow body is cut off by the request timeout (408)', async () => {
    const c = openIdle(tcp);
    let text = '';
    c.socket.on('data', (d) => (text += d));
    c.socket.write(
      `POST /v1/jails HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`,
    );
    const drip = setInterval(() => c.socket.writable && c.socket.write(' '), 200);
    try {
      await waitFor(() => c.closedAfter !== undefined, 6000, 'the request timeout');
    } finally {
      clearInterval(drip);
    }
    assert.ok(c.closedAfter! < LIMITS.requestSec * 1000 + 1500, `closed after ${c.closedAfter} ms`);
    assert.match(text, /^HTTP\/1\.1 408/);
  });

  test('unix socket: capped, silent connections closed after the headers timeout, then it serves again', async () => {
    const idle = Array.from({ length: LIMITS.maxConnections + 20 }, () => openIdle(unix));
    await waitFor(() => idle.filter((c) => c.closedAfter !== undefined).length >= 20, 5000, 'the refusals');
    assert.equal(idle.filter((c) => c.closedAfter !== undefined).length, 20, 'over the cap: refused');
    await waitFor(() => idle.every((c) => c.closedAfter !== undefined), 6000, 'the headers timeout');
    assert.ok(Math.max(...idle.map((c) => c.closedAfter!)) < LIMITS.headersSec * 1000 + 2500);
    assert.equal((await rawRequest(unix, 'GET /v1/version HTTP/1.1\r\nHost: x\r\n\r\n', WAIT)).status, 200);
  });

  test('watch streams outlive every timeout while they heart-beat, and count against the cap', async () => {
    const streams = Array.from({ length: LIMITS.maxConnections }, () => {
      const c = openIdle(unix);
      let text = '';
      c.socket.on('data', (d) => (text += d));
      c.socket.write('GET /v1/jails?watch=1 HTTP/1.1\r\nHost: x\r\n\r\n');
      return { c, text: () => text };
    });
    const tcpStream = openIdle(tcp);
    let tcpText = '';
    tcpStream.socket.on('data', (d) => (tcpText += d));
    tcpStream.socket.write(authed('/v1/jails?watch=1'));
    try {
      await sleep((LIMITS.requestSec + LIMITS.idleSec) * 1000 + 500);
      assert.ok(
        streams.every((s) => s.c.closedAfter === undefined),
        'unix streams open',
      );
      assert.equal(tcpStream.closedAfter, undefined, 'TCP stream open');
      for (const t of [...streams.map((s) => s.text()), tcpText])
        assert.ok((t.match(/event: BOOKMARK/g) ?? []).length >= 5, t);
      // the unix listener is full of streams: one more connection is refused
      const extra = await rawRequest(unix, 'GET /v1/version HTTP/1.1\r\nHost: x\r\n\r\n', 500);
      assert.equal(extra.status, undefined);
    } finally {
      for (const s of streams) s.c.socket.destroy();
      tcpStream.socket.destroy();
    }
    await sleep(200);
    assert.equal((await rawRequest(unix, 'GET /v1/version HTTP/1.1\r\nHost: x\r\n\r\n', WAIT)).status, 200);
  });

  test('guest socket: capped per socket, idle connections reaped, still serving its jail', async () => {
    store.createJail({
      name: 'lim',
      params: { name: 'lim', path: join(dir, 'lim-root') },
      env: [{ op: 'set', key: 'k', value: 'v' }],
    });
    store.transition('lim', 'stopped', 'starting');
    store.transition('lim', 'starting', 'running');
    const guest = { path: join(dir, 'jails', 'lim', 'guest', 'guest.sock') };
    try {
      await waitFor(
        () => {
          try {
            return readdirSync(join(dir, 'jails', 'lim', 'guest')).includes('guest.sock');
          } catch {
            return false;
          }
        },
        5000,
        'the guest socket',
      );
      await sleep(100);
      const base = fds();
      const idle = Array.from({ length: LIMITS.guest + 25 }, () => openIdle(guest));
      await waitFor(() => idle.filter((c) => c.closedAfter !== undefined).length >= 25, 5000, 'the refusals');
      assert.equal(idle.filter((c) => c.closedAfter !== undefined).length, 25, 'over the cap: refused');
      assert.ok(fds() <= base + LIMITS.guest + 2, `descriptors ${base} -> ${fds()}`);
      await waitFor(() => idle.every((c) => c.closedAfter !== undefined), 6000, 'the headers timeout');
      const r = await rawRequest(guest, 'GET /env/k HTTP/1.1\r\nHost: x\r\n\r\n', WAIT);
      assert.equal(r.status, 200);
    } finally {
      store.transition('lim', 'running', 'stopping');
      store.transition('lim', 'stopping', 'stopped');
      store.removeJail('lim');
    }
  });
});
