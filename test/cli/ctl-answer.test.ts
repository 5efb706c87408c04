// native/jy-ctl reads the daemon's answer: what it does with answers that lie about their
// lengths (a chunk size that wraps size_t, lengths past the body) and with a socket whose
// listener is not root. A fake daemon on STATE/jailyard.sock (root's own, 0600, as serve
// makes it) answers each request with the bytes a case gives; no jail is involved.
import { execFile, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

const CTL = fileURLToPath(new URL('../../native/build/jy-ctl', import.meta.url));
let state = '';
let server: Server;
let answer = '';
const sockets = new Set<Socket>();

before(async () => {
  state = mkdtempSync(join(tmpdir(), 'jy-ctlans-'));
  server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    let got = '';
    s.on('data', (d) => {
      got += d.toString('latin1');
      const head = got.indexOf('\r\n\r\n');
      const len = /content-length: (\d+)/i.exec(got);
      if (head >= 0 && len && got.length >= head + 4 + Number(len[1])) s.end(answer, 'latin1');
    });
  });
  const sock = join(state, 'jailyard.sock');
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  chmodSync(sock, 0o600);
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(state, { recursive: true, force: true });
});

/** jy-ctl with `jls` against the fake daemon; the fallback (the CLI) is echo of a marker. */
function ctl(): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  return new Promise((resolve) => {
    execFile(CTL, ['/bin/echo', 'FALLBACK', '--state', state, 'jls', '-N'], { env }, (e, stdout, stderr) => {
      const err = e as (Error & { code?: number; signal?: string }) | null;
      resolve({
        code: err ? (typeof err.code === 'number' ? err.code : null) : 0,
        signal: err?.signal ?? null,
        stdout,
        stderr,
      });
    });
  });
}

const chunked = (body: string): string =>
  `HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n${body}`;

test('a well-formed chunked answer is printed as the daemon gave it', async () => {
  const text = '0 4 2\nabc\nE\n';
  answer = chunked(`${text.length.toString(16)}\r\n${text}\r\n0\r\n\r\n`);
  const r = await ctl();
  assert.deepEqual(r, { code: 0, signal: null, stdout: 'abc\n', stderr: 'E\n' });
});

test('a chunk size that wraps (size + 2 = 0) is a lost daemon, not a copy past the buffer', async () => {
  for (const size of ['fffffffffffffffe', 'ffffffffffffffff', '-1', '10000']) {
    answer = chunked(`${size}\r\n0 0 0\n\r\n0\r\n\r\n`);
    const r = await ctl();
    assert.equal(r.signal, null, `size ${size}: jy-ctl died of ${r.signal}`);
    assert.equal(r.code, 1, `size ${size}: ${JSON.stringify(r)}`);
    assert.match(r.stderr, /cannot reach the daemon at unix:\/\/.*other side closed/);
    assert.equal(r.stdout, '');
  }
});

test('lengths in the answer past its body are an error, never bytes read beyond it', async () => {
  for (const first of ['0 999 0', '0 0 999', '0 18446744073709551615 1', '-1 0 0', '256 0 0']) {
    const text = `${first}\nabc`;
    answer = `HTTP/1.1 200 OK\r\ncontent-length: ${text.length}\r\nconnection: close\r\n\r\n${text}`;
    const r = await ctl();
    assert.equal(r.signal, null);
    assert.equal(r.code, 1, `${first}: ${JSON.stringify(r)}`);
    assert.equal(r.stdout, '');
  }
});

test('a root-owned 0600 socket whose listener is not root is not the daemon: the CLI runs', async () => {
  // a listener of uid 65534; the socket file is then made root's own and 0600, as serve's
  const other = mkdtempSync(join(tmpdir(), 'jy-ctlans-peer-'));
  chmodSync(other, 0o777);
  const sock = join(other, 'jailyard.sock');
  const code = `const s=require('net').createServer((c)=>{c.on('data',()=>c.end('HTTP/1.1 200 OK\\r\\ncontent-length: 10\\r\\nconnection: close\\r\\n\\r\\n0 3 0\\nhi\\n'))});s.listen(${JSON.stringify(sock)},()=>console.log('up'));process.stdin.on('end',()=>process.exit(0));process.stdin.resume();`;
  const child = spawn(process.execPath, ['-e', code], { uid: 65534, gid: 65534, stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (c) => reject(new Error(`listener exited ${c}`)));
    });
    chownSync(sock, 0, 0);
    chmodSync(sock, 0o600);
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    const r = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
      execFile(CTL, ['/bin/echo', 'FALLBACK', '--state', other, 'jls'], { env }, (_e, stdout, stderr) =>
        resolve({ stdout, stderr }),
      );
    });
    assert.equal(r.stdout, `FALLBACK --state ${other} jls\n`, JSON.stringify(r));
  } finally {
    child.stdin.end();
    if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
    rmSync(other, { recursive: true, force: true });
  }
});
