// vnet.interface (issue #15): a vnet jail gets the named host interfaces (split at commas,
// as jail(8) does) in its own network namespace while it runs; they come back to the host
// at its stop, after a failed start and on remove. The test's interfaces are veth pairs it
// makes (jytst*) and deletes; nothing else of the host is moved.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JailyardError } from '../../src/errors.ts';
import { vnetInterfaces } from '../../src/platform/linux/network.ts';
import { cliFor, runBin } from '../helpers/cli.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

describe('vnet.interface (pure)', () => {
  test('split at commas, trimmed, without duplicates; a name that is no interface name is refused', () => {
    assert.deepEqual(vnetInterfaces('j', { 'vnet.interface': ['a0,b0', ' c0 ', 'a0'] }), ['a0', 'b0', 'c0']);
    assert.deepEqual(vnetInterfaces('j', {}), []);
    for (const bad of ['../x', 'a/b', 'x'.repeat(16), 'a b'])
      assert.throws(
        () => vnetInterfaces('j', { 'vnet.interface': [bad] }),
        (e: unknown) => e instanceof JailyardError && e.place.param === 'vnet.interface' && e.place.jail === 'j',
        bad,
      );
  });
});

let state: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);
// short names (15 characters at most), unique to this run
const N = process.pid % 10000;
const IF = [`jytst${N}a`, `jytst${N}b`, `jytst${N}c`];
const PEER = (i: string) => `${i}p`;
const onHost = (i: string) => existsSync(`/sys/class/net/${i}`);

async function ok(...args: string[]): Promise<string> {
  const r = await jy(...args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

const links = (jail: string) => runBin(state, ['exec', jail, 'ip', '-o', 'link', 'show']).stdout;

describe('vnet.interface, for real', { timeout: 120_000 }, () => {
  before(() => {
    baseline = snapshot();
    state = mkdtempSync(join(tmpdir(), 'jy-vnet-interface-'));
    for (const i of IF) execFileSync('ip', ['link', 'add', i, 'type', 'veth', 'peer', 'name', PEER(i)]);
  });
  after(async () => {
    for (const j of ['vi1', 'vi2', 'vi3', 'vi4', 'vi5']) await jy('remove', j);
    try {
      for (const i of IF) assert.ok(onHost(i), `${i} is back on the host`);
      assertNoLeaks(baseline, state);
    } finally {
      for (const i of IF) if (onHost(i)) execFileSync('ip', ['link', 'del', i]);
      rmSync(state, { recursive: true, force: true });
    }
  });

  test('the interfaces move into the jail at start and back at stop', async () => {
    await ok('create', 'vi1', 'vnet', 'persist', `vnet.interface=${IF[0]},${IF[1]}`);
    await ok('start', 'vi1');
    assert.ok(!onHost(IF[0]!) && !onHost(IF[1]!), 'gone from the host while the jail runs');
    const inside = links('vi1');
    assert.match(inside, new RegExp(`: ${IF[0]}@`));
    assert.match(inside, new RegExp(`: ${IF[1]}@`));
    await ok('stop', 'vi1');
    assert.ok(onHost(IF[0]!) && onHost(IF[1]!), 'back on the host, under their names');
    // the pair is whole again: the peers still know their other end
    assert.match(
      execFileSync('ip', ['-o', 'link', 'show', PEER(IF[0]!)], { encoding: 'utf8' }),
      new RegExp(`@${IF[0]}`),
    );
    await ok('start', 'vi1');
    assert.ok(!onHost(IF[0]!));
    await ok('remove', 'vi1');
    assert.ok(onHost(IF[0]!) && onHost(IF[1]!));
  });

  test('with addresses too: the jail has its veth and the interface', async () => {
    await ok('create', 'vi2', 'vnet', 'persist', 'ip4.addr=198.51.100.185', `vnet.interface=${IF[2]}`);
    await ok('start', 'vi2');
    const inside = links('vi2');
    assert.match(inside, /: eth0@/);
    assert.match(inside, new RegExp(`: ${IF[2]}@`));
    await ok('stop', 'vi2');
    assert.ok(onHost(IF[2]!));
  });

  test('a missing interface fails the start naming the parameter; what moved comes back', async () => {
    await ok('create', 'vi3', 'vnet', 'persist', `vnet.interface=${IF[0]},jytstnone${N}`.slice(0, 200));
    const r = await jy('start', 'vi3');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /vnet\.interface/);
    assert.match(r.stderr, /does not exist|not an interface name/);
    assert.ok(onHost(IF[0]!), 'nothing was moved');
    // a step after the move fails: the undo gives it back
    await ok('set', 'vi3', `vnet.interface=${IF[0]}`, 'exec.prestart=false');
    const failed = await jy('start', 'vi3');
    assert.notEqual(failed.code, 0);
    assert.ok(onHost(IF[0]!), 'back after the failed start');
  });

  test('vnet.interface needs a vnet jail', async () => {
    await ok('create', 'vi4', 'persist', `vnet.interface=${IF[0]}`);
    const r = await jy('start', 'vi4');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /vnet\.interface.*needs a jail with a network stack of its own/s);
    assert.ok(onHost(IF[0]!));
  });

  test('a jail that died with the interfaces: reconcile gives them back', async () => {
    await ok('create', 'vi5', 'vnet', 'persist', `vnet.interface=${IF[1]}`);
    await ok('start', 'vi5');
    assert.ok(!onHost(IF[1]!));
    const store = openStore(state);
    const init = store.getJail('vi5')!.runtime!.create!.initPid;
    store.close();
    process.kill(init, 'SIGKILL');
    // gone (reaped by its jy-stage) before reconcile looks
    for (let i = 0; i < 250 && existsSync(`/proc/${init}`); i++) await new Promise((r) => setTimeout(r, 20));
    await ok('reconcile');
    assert.ok(onHost(IF[1]!), 'back on the host');
  });
});
