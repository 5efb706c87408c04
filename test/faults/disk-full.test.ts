// The state folder's disk full (a 16 MiB tmpfs as the state folder, filled to the last byte):
// commands that add (create, set, start, skel create) fail with a clear error and change
// nothing; a running jail can still be stopped and a jail removed (the store keeps a reserve
// for them); once space is freed, the store has its last good state and everything works.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { cliFor } from '../helpers/cli.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { crashing } from '../helpers/crash.ts';

let disk: string;
let state: string;
let baseline: SystemSnapshot;
let mounted = false;
const cli = cliFor(() => state);

async function jy(...args: string[]): Promise<{ code: number; out: string }> {
  const r = await cli(...args);
  return { code: r.code, out: r.stdout + r.stderr };
}

async function states(): Promise<Record<string, string>> {
  const r = await cli('ls', '-a', '--json', 'name', 'state');
  const doc = JSON.parse(r.stdout) as { 'jail-information'?: { jail?: { name: string; state: string }[] } };
  return Object.fromEntries((doc['jail-information']?.jail ?? []).map((j) => [j.name, j.state]));
}

/** Writes zeros to `file` until the filesystem refuses (ENOSPC). */
function fill(file: string): number {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  let n = 0;
  try {
    for (;;) n += writeSync(fd, chunk);
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    closeSync(fd);
  }
  // the last partial blocks too
  const small = openSync(`${file}.tail`, 'w');
  try {
    for (;;) n += writeSync(small, Buffer.alloc(512));
  } catch {
    // full
  } finally {
    closeSync(small);
  }
  return n;
}

before(async () => {
  baseline = snapshot();
  disk = mkdtempSync(join(tmpdir(), 'jy-faults-disk-'));
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'jy-faults-disk', disk], {
    encoding: 'utf8',
  });
  assert.equal(m.status, 0, m.stderr);
  mounted = true;
  // the state folder inside the small disk (the leak check then sees only the jails' mounts)
  state = join(disk, 'state');
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
  for (const args of [
    ['create', 'd1', 'skeleton=host', 'persist', 'ip4.addr=198.51.100.100/24', 'exec.start=sleep 1000 &'],
    ['create', 'd2', 'skeleton=host', 'persist', 'meta.tier=gold', 'exec.start=sleep 1000 &'],
    ['create', 'd3', 'skeleton=host', 'persist'],
  ]) {
    const r = await jy(...args);
    assert.equal(r.code, 0, r.out);
  }
  const s = await jy('start', 'd1');
  assert.equal(s.code, 0, s.out);
});

after(async () => {
  for (const f of ['fill', 'fill.tail']) if (existsSync(join(state, f))) unlinkSync(join(state, f));
  // one at a time: a batch naming a jail that is gone removes none
  for (const name of ['d1', 'd2', 'd3', 'd4', 'd5']) await jy('remove', name);
  assertNoLeaks(baseline, state);
  if (mounted) spawnSync('umount', [disk]);
  rmdirSync(disk);
});

test('full state disk: adds fail clearly and change nothing, stop and remove work, all is back after freeing', {
  timeout: 120_000,
}, async () => {
  const revisionBefore = (() => {
    const st = openStore(state);
    try {
      return st.currentRevision();
    } finally {
      st.close();
    }
  })();
  assert.ok(fill(join(state, 'fill')) > 0);

  const enospc = /step store: no space left on the state folder's disk \(ENOSPC\).*jailyard\.db.*free space/;
  const create = await jy('create', 'd4', 'skeleton=host', 'persist');
  assert.notEqual(create.code, 0);
  assert.match(create.out, enospc);
  assert.match(create.out, /jail "d4"/);
  assert.equal(existsSync(join(state, 'jails', 'd4')), false, 'no folder of a jail not created');

  const set = await jy('set', 'd2', 'meta.tier=silver');
  assert.notEqual(set.code, 0);
  assert.match(set.out, enospc);

  const start = await jy('start', 'd2');
  assert.notEqual(start.code, 0);
  assert.match(start.out, enospc);

  const skel = await jy('skel', 'create', 'h2', '--from', '/');
  assert.notEqual(skel.code, 0, 'skel create on a full disk fails');
  assert.match(skel.out, /ENOSPC/);
  assert.equal(existsSync(join(state, 'skeletons', 'h2')), false, 'no half-made skeleton');

  assert.deepEqual(await states(), { d1: 'running', d2: 'stopped', d3: 'stopped' }, 'nothing half-created');

  // what frees must still work
  const stop = await jy('stop', 'd1');
  assert.equal(stop.code, 0, `a running jail can be stopped on a full disk: ${stop.out}`);
  const rm = await jy('remove', 'd3');
  assert.equal(rm.code, 0, `a jail can be removed on a full disk: ${rm.out}`);
  assert.deepEqual(await states(), { d1: 'stopped', d2: 'stopped' });
  assertNoLeaks(baseline, state);

  unlinkSync(join(state, 'fill'));
  unlinkSync(join(state, 'fill.tail'));
  const st = openStore(state);
  try {
    const d2 = st.requireJail('d2');
    assert.match(d2.meta, /tier=gold/, 'the last good metadata is intact');
    // the stop and the remove were recorded; the refused writes were not
    assert.equal(st.eventsSince(revisionBefore).filter((e) => e.name === 'd4' || e.name === 'd2').length, 0);
    assert.equal(st.requireJail('d1').state, 'stopped');
    assert.equal(st.getJail('d3'), undefined);
  } finally {
    st.close();
  }
  assert.ok(existsSync(join(state, 'jailyard.reserve')), 'the reserve is made again once there is room');

  // recovery by the normal commands
  for (const args of [
    ['create', 'd4', 'skeleton=host', 'persist'],
    ['set', 'd2', 'meta.tier=silver'],
    ['start', 'd1', 'd2'],
    ['stop', 'd1', 'd2'],
  ]) {
    const r = await jy(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.out}`);
  }
  assertNoLeaks(baseline, state);
});

test('full state disk under a long-lived store handle (the daemon): adds refused, stop and remove recorded', {
  timeout: 60_000,
}, async () => {
  const st = openStore(state);
  try {
    st.createJail({ name: 'e1', params: { path: '/nonexistent' } });
    st.createJail({ name: 'e2', params: { path: '/nonexistent' }, meta: [{ op: 'set', key: 'tier', value: 'gold' }] });
    st.transition('e1', 'stopped', 'starting');
    st.transition('e1', 'starting', 'running');
    fill(join(state, 'fill'));
    const enospc = (e: unknown) => {
      assert.equal((e as { code?: string }).code, 'JY_ERR_STORE');
      assert.match((e as Error).message, /ENOSPC/);
      return true;
    };
    assert.throws(() => st.createJail({ name: 'e3', params: { path: '/nonexistent' } }), enospc);
    assert.throws(() => st.modifyJail('e2', { meta: [{ op: 'set', key: 'tier', value: 'silver' }] }), enospc);
    assert.throws(() => st.transition('e2', 'stopped', 'starting'), enospc);
    st.transition('e1', 'running', 'stopping');
    st.recordRuntime('e1', null);
    st.transition('e1', 'stopping', 'stopped');
    st.removeJail('e1');
    assert.equal(st.getJail('e3'), undefined);
    assert.equal(st.getJail('e1'), undefined);
    assert.match(st.requireJail('e2').meta, /tier=gold/);
    assert.equal(st.requireJail('e2').state, 'stopped');
  } finally {
    for (const f of ['fill', 'fill.tail']) if (existsSync(join(state, f))) unlinkSync(join(state, f));
  }
  try {
    st.modifyJail('e2', { meta: [{ op: 'set', key: 'tier', value: 'silver' }] });
    st.removeJail('e2');
  } finally {
    st.close();
  }
});

/** This state folder's mounts (the leak check's own count, at a moment in the middle). */
const mountsOfState = (): number =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4]?.startsWith(`${state}/`)).length;

test('the disk fills in the middle of a start: the start is undone on the reserve, and reconcile recovers a killed one on a full disk', {
  timeout: 120_000,
}, async () => {
  const fillFile = join(state, 'fill');
  const freeAgain = () => {
    for (const f of ['fill', 'fill.tail']) if (existsSync(join(state, f))) unlinkSync(join(state, f));
  };
  // exec.prestart runs after the mounts and before the jail is made: it fills the disk, so
  // the start's next record (its create step) meets ENOSPC with mounts made
  const fillAll = `dd if=/dev/zero of=${fillFile} bs=64k 2>/dev/null; dd if=/dev/zero of=${fillFile}.tail bs=512 2>/dev/null; true`;
  const c = await jy('create', 'd5', 'skeleton=host', 'persist', `exec.prestart=${fillAll}`);
  assert.equal(c.code, 0, c.out);
  const start = await jy('start', 'd5');
  assert.notEqual(start.code, 0);
  assert.match(start.out, /step store: no space left on the state folder's disk \(ENOSPC\)/);
  // before: "(and undoing it failed: ... ENOSPC ...; run jailyard reconcile)", the jail left
  // starting with its 12 mounts, and reconcile failed the same way until space was freed
  assert.doesNotMatch(start.out, /undoing it failed/);
  assert.equal((await states()).d5, 'stopped', 'the failed start is undone');
  assert.equal(mountsOfState(), 0, 'no mount of the failed start is left');
  freeAgain();

  // a start killed after its mounts, then the disk full: reconcile finishes its stop
  const set = await jy('set', 'd5', 'exec.prestart=');
  assert.equal(set.code, 0, set.out);
  const killed = crashing(state, ['start', 'd5'], 'mounts:done');
  assert.equal(killed.signal, 'SIGKILL', killed.out);
  assert.equal((await states()).d5, 'starting');
  assert.ok(mountsOfState() > 0, 'the killed start left its mounts');
  assert.ok(fill(fillFile) >= 0);
  const rec = await jy('reconcile');
  assert.equal(rec.code, 0, `reconcile recovers on a full disk: ${rec.out}`);
  assert.equal((await states()).d5, 'stopped');
  assert.equal(mountsOfState(), 0, 'reconcile unmounted the killed start');
  freeAgain();
  const again = await jy('start', 'd5');
  assert.equal(again.code, 0, again.out);
  const stop = await jy('stop', 'd5');
  assert.equal(stop.code, 0, stop.out);
  const rm = await jy('remove', 'd5');
  assert.equal(rm.code, 0, rm.out);
  assertNoLeaks(baseline, state);
});
