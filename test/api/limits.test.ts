import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, connect, Socket, type AddressInfo } from 'node:net';
import { apiLimits, capConnections, LIMIT_NAMES, serverOptions, TokenBucket } from '../../src/api/limits.ts';
import { JailyardError } from '../../src/errors.ts';
import { cliFor } from '../helpers/cli.ts';

test('api limits: the defaults file is the one source, overrides go over it, nonsense is refused', () => {
  const file = JSON.parse(readFileSync(new URL('../../defaults/defaults.json', import.meta.url), 'utf8')) as {
    api: Record<string, number>;
  };
  assert.deepEqual(Object.keys(file.api).sort(), [...LIMIT_NAMES].sort());
  assert.deepEqual(apiLimits(), file.api);
  assert.equal(apiLimits({ maxConnections: 7 }).maxConnections, 7);
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    assert.throws(
      () => apiLimits({ authTimeoutMs: bad }),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_USAGE' && e.place.param === 'api.authTimeoutMs',
    );
  }
  assert.throws(() => apiLimits({ headersTimeoutMs: 5000, requestTimeoutMs: 1000 }), /at least headersTimeoutMs/);
  // idle connections are looked at often enough for the timeouts to mean what they say
  assert.ok(serverOptions(apiLimits()).connectionsCheckingInterval! <= 1000);
});

test('serve refuses a bad limit option before opening anything', async () => {
  const jy = cliFor(() => '/nonexistent-jy-apic');
  for (const args of [
    ['--max-connections', '0'],
    ['--idle-timeout', 'x'],
    ['--max-client-connections', '2.5'],
  ]) {
    const r = await jy('serve', '--socket', '/nonexistent-jy-apic/s.sock', ...args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(args[0]!));
  }
});

test('capConnections: a destroyed connection frees its place at once, before its close event', async () => {
  // a timeout destroys a socket; its 'close' (which released the place) comes a loop turn
  // later, and a peer that saw the end may connect again in between: it was refused (a CI
  // run of api-limits' "then it serves again")
  const server = createServer();
  capConnections(server, { max: 1 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = connect(port, '127.0.0.1');
  client.on('error', () => {});
  try {
    const first = await new Promise<Socket>((resolve) => server.once('connection', resolve));
    first.destroy();
    // the same turn: no 'close' yet
    const second = new Socket();
    server.emit('connection', second);
    assert.equal(second.destroyed, false, 'the next connection is taken, not refused');
    const third = new Socket();
    server.emit('connection', third);
    assert.equal(third.destroyed, true, 'the cap still holds');
    second.destroy();
  } finally {
    client.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('token bucket: burst at once, then one per interval, never more than the burst saved up', () => {
  const b = new TokenBucket(3, 100, 0);
  assert.deepEqual([b.take(0), b.take(0), b.take(0), b.take(0)], [true, true, true, false]);
  assert.equal(b.waitMs(0), 100);
  assert.equal(b.waitMs(40), 60);
  assert.equal(b.take(99), false);
  assert.equal(b.take(100), true);
  assert.equal(b.full(100), false);
  // a long pause fills it to the burst, no further
  assert.equal(b.full(10_000), true);
  assert.deepEqual([b.take(10_000), b.take(10_000), b.take(10_000), b.take(10_000)], [true, true, true, false]);
  // a clock going back takes nothing away and gives nothing
  assert.equal(b.take(5_000), false);
});
