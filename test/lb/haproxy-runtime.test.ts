// The Runtime API client against a REAL haproxy 2.6 (Debian's), servers on loopback.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startHaproxy, haproxyConfig, CHECK_TIMING, sleep, type HaproxyProcess } from '../../src/lb/haproxy-process.ts';
import { HaproxyRuntime, isServing } from '../../src/lb/haproxy-runtime.ts';
import { JailyardError } from '../../src/errors.ts';
import { freePort, startVersionServer, type VersionServer } from './fixtures.ts';

describe('haproxy runtime API (real haproxy)', () => {
  let dir: string;
  let hp: HaproxyProcess;
  let port: number;
  const servers: VersionServer[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jy-lb-rt-'));
    port = await freePort('127.0.0.20');
    hp = await startHaproxy({ dir, port, bindAddress: '127.0.0.20' });
    servers.push(await startVersionServer('127.0.0.21', 'v1'));
    servers.push(await startVersionServer('127.0.0.22', 'bad'));
    servers[1]!.healthy = false;
  });
  after(async () => {
    await hp?.stop();
    for (const s of servers) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('config is valid for haproxy -c', async () => {
    const { execFileSync } = await import('node:child_process');
    const cfg = join(dir, 'check.cfg');
    (await import('node:fs')).writeFileSync(cfg, haproxyConfig({ adminSocket: join(dir, 'x.sock'), port: 1 }));
    execFileSync('haproxy', ['-c', '-q', '-f', cfg]);
  });

  test('add server starts in maint; passes check; enable → UP and serving', async () => {
    const rt = hp.runtime;
    const s = servers[0]!;
    await rt.addServer('www', 'jy-a', s.addr, s.port, { check: true, ...CHECK_TIMING });
    let st = (await rt.showServersState('www')).find((x) => x.name === 'jy-a')!;
    assert.equal(st.addr, s.addr);
    assert.equal(st.port, s.port);
    assert.equal(st.adminState & 1, 1, 'new dynamic server is in forced maint');
    await rt.enableHealth('www', 'jy-a');
    for (let i = 0; i < 50 && st.checkResult !== 3; i++) {
      await sleep(50);
      st = (await rt.showServersState('www')).find((x) => x.name === 'jy-a')!;
    }
    assert.equal(st.checkResult, 3, 'check passed');
    await rt.enableServer('www', 'jy-a');
    st = (await rt.showServersState('www')).find((x) => x.name === 'jy-a')!;
    assert.ok(isServing(st));
    const r = await request(`http://127.0.0.20:${port}/`);
    assert.equal((await r.body.text()).trim(), 'v1');
  });

  test('a server failing its check stays DOWN when enabled', async () => {
    const rt = hp.runtime;
    const s = servers[1]!;
    await rt.addServer('www', 'jy-bad', s.addr, s.port, { check: true, ...CHECK_TIMING });
    await rt.enableHealth('www', 'jy-bad');
    await rt.enableServer('www', 'jy-bad');
    // its first check may come an interval later, then HAProxy's scheduling: polled up to 5 s
    let st = (await rt.showServersState('www')).find((x) => x.name === 'jy-bad')!;
    for (let i = 0; i < 100 && st.opState !== 0; i++) {
      await sleep(50);
      st = (await rt.showServersState('www')).find((x) => x.name === 'jy-bad')!;
    }
    assert.equal(st.opState, 0);
    assert.equal(isServing(st), false);
    const row = (await rt.showStat('www')).find((r) => r.svname === 'jy-bad')!;
    assert.equal(row.status, 'DOWN');
  });

  test('del server refuses a server not in maint, with JY_ERR_HAPROXY', async () => {
    await assert.rejects(hp.runtime.deleteServer('www', 'jy-bad'), (e: unknown) => {
      assert.ok(e instanceof JailyardError);
      assert.equal(e.code, 'JY_ERR_HAPROXY');
      assert.equal(e.place.step, 'haproxy server www/jy-bad');
      assert.match(e.message, /maintenance/);
      return true;
    });
  });

  test('drain, maint, del', async () => {
    const rt = hp.runtime;
    await rt.setServerState('www', 'jy-bad', 'drain');
    const st = (await rt.showServersState('www')).find((x) => x.name === 'jy-bad')!;
    assert.equal(st.adminState & 8, 8);
    await rt.setServerState('www', 'jy-bad', 'maint');
    assert.equal(await rt.sessionsOf('www', 'jy-bad'), 0);
    await rt.deleteServer('www', 'jy-bad');
    assert.deepEqual(
      (await rt.showServersState('www')).map((x) => x.name),
      ['jy-a'],
    );
  });

  test('unknown server and bad names', async () => {
    await assert.rejects(hp.runtime.enableServer('www', 'nope'), { code: 'JY_ERR_HAPROXY' });
    assert.throws(() => hp.runtime.command('show info; show stat'), { code: 'JY_ERR_USAGE' });
    await assert.rejects(hp.runtime.addServer('www', 'a b', '127.0.0.1', 80), {
      code: 'JY_ERR_USAGE',
      place: { param: 'server' },
    });
    await assert.rejects(new HaproxyRuntime(join(dir, 'none.sock')).command('show info'), { code: 'JY_ERR_HAPROXY' });
  });
});
