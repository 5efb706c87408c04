// What FreeBSD's own jail tests (usr.sbin/jail/tests/jail_basic_test.sh) rely on in the
// core, with real jails: a jail named by its jid in every verb, jid = N and numeric names,
// the exec.* output passed to the caller in jail(8)'s order, a console log that cannot be
// opened failing cleanly, non-persistent jails going away when their last process exits
// (without their stop commands), children.max/cur and parent, and a failed create --start
// leaving nothing.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { createLocalService } from '../../src/runtime/service.ts';
import { skeletonHooks } from '../../src/skeleton/hooks.ts';
import type { Store } from '../../src/store/types.ts';
import { JailyardError } from '../../src/errors.ts';
import { buildApp } from '../../src/api/app.ts';

let state: string;
let baseline: SystemSnapshot;
let store: Store;
const jy = cliFor(() => state);

const service = () => createLocalService({ store, stateDir: state, skeletons: skeletonHooks() });

/** Collects what the hooks pass to the caller, per stream. */
function collector(): {
  out: string[];
  err: string[];
  hookOutput: (j: string, s: 'stdout' | 'stderr', t: string) => void;
} {
  const c = {
    out: [] as string[],
    err: [] as string[],
    hookOutput: (_j: string, s: 'stdout' | 'stderr', t: string) => void (s === 'stdout' ? c.out : c.err).push(t),
  };
  return c;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-f2-'));
  const r = await jy('skel', 'create', 'host', '--from', '/');
  assert.equal(r.code, 0, r.stderr);
  store = openStore(state);
});

after(async () => {
  await jy('remove', '-l', 'test=f2');
  store.close();
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

describe('jail(8) semantics', () => {
  test('a jail is named by its jid in every verb (jail_getid: the number as a jid first)', async () => {
    let r = await jy('create', 'fsa', 'skeleton=host', 'persist', 'meta.test=f2');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('start', 'fsa');
    assert.equal(r.code, 0, r.stderr);
    const jid = String(store.requireJail('fsa').jid);
    assert.ok(Number(jid) > 0);
    r = await jy('ls', '-j', jid, 'name');
    assert.equal(r.stdout, 'fsa\n', r.stderr);
    assert.equal((await jy('exec', jid, '/bin/true')).code, 0);
    assert.equal((await jy('exec', jid, '/bin/false')).code, 1);
    r = await jy('set', jid, 'meta.via=jid');
    assert.equal(r.code, 0, r.stderr);
    assert.match(store.requireJail('fsa').meta, /^via=jid$/m);
    assert.equal((await service().get(jid)).name, 'fsa');
    // the API's /v1/jails/:name is the same service
    const app = buildApp({ store, service: service() });
    try {
      const got = await app.inject({ method: 'GET', url: `/v1/jails/${jid}` });
      assert.equal(got.statusCode, 200, got.body);
      assert.equal(got.json().name, 'fsa');
      assert.equal((await app.inject({ method: 'GET', url: '/v1/jails/4242' })).statusCode, 404);
    } finally {
      await app.close();
    }
    r = await jy('stop', jid);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^fsa: stopped$/m);
    // stopped, it has no jid any more: the number names nothing
    r = await jy('ls', '-j', jid);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`jail "${jid}" not found`));
    r = await jy('start', 'fsa');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('remove', String(store.requireJail('fsa').jid));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^fsa: removed$/m);
    assert.equal(store.getJail('fsa'), undefined);
    r = await jy('stop', '4242');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /jail "4242" not found/);
  });

  test('jid = N is the jail jid; a numeric name is its jid; a jid in use is refused', async () => {
    let r = await jy('create', '5309', 'skeleton=host', 'persist', 'meta.test=f2');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(store.requireJail('5309').params.jid, 5309);
    r = await jy('create', 'basej', 'skeleton=host', 'persist', 'jid=5309', 'meta.test=f2');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('start', '5309');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('ls', '-j', '5309', 'name', 'jid');
    assert.equal(r.stdout, '5309 5309\n', r.stderr);
    r = await jy('start', 'basej');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /jid 5309 is in use by jail "5309"/);
    assert.equal(store.requireJail('basej').state, 'stopped');
    r = await jy('remove', '5309');
    assert.equal(r.code, 0, r.stderr);
    // stopped, basej is found by the jid it asks for
    r = await jy('start', '5309');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^basej: started$/m);
    r = await jy('ls', '-j', '5309', 'name');
    assert.equal(r.stdout, 'basej\n');
    r = await jy('remove', '5309');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(store.getJail('basej'), undefined);
  });

  test("exec.* output goes to the caller in jail(8)'s order, and stays in the console log", async () => {
    const s = service();
    await s.create({
      spec: {
        name: 'fsh',
        params: {
          name: 'fsh',
          skeleton: 'host',
          persist: true,
          'exec.prestart': 'echo START',
          'exec.start': 'echo INJAIL; echo ERR >&2',
          'exec.poststart': 'echo JID=$JID; echo JNAME=$JNAME',
          'exec.prestop': 'echo STOP',
          'exec.poststop': 'echo JID=$JID',
        },
      },
      meta: [{ op: 'set', key: 'test', value: 'f2' }],
    });
    const c = collector();
    const started = await s.start(['fsh'], { hookOutput: c.hookOutput });
    assert.ok(started.ok, JSON.stringify(started));
    const jid = store.requireJail('fsh').jid;
    assert.deepEqual(c.out, ['START\n', 'INJAIL\nERR\n', `JID=${jid}\nJNAME=fsh\n`]);
    assert.deepEqual(c.err, []);
    const d = collector();
    const stopped = await s.stop([String(jid)], { hookOutput: d.hookOutput });
    assert.ok(stopped.ok, JSON.stringify(stopped));
    assert.deepEqual(d.out, ['STOP\n', `JID=${jid}\n`]);
    const log = readFileSync(join(state, 'jails/fsh/console.log'), 'utf8');
    for (const line of ['START', 'INJAIL', 'ERR', `JNAME=fsh`, 'STOP']) assert.match(log, new RegExp(`^${line}$`, 'm'));
    // without the option nothing is passed on (and nothing breaks)
    assert.ok((await s.remove(['fsh'])).ok);
  });

  test('exec.consolelog=/dev/stdout is the caller; a log that cannot be opened fails cleanly', async () => {
    const s = service();
    await s.create({
      spec: {
        name: 'fsc',
        params: {
          name: 'fsc',
          skeleton: 'host',
          persist: true,
          'exec.consolelog': '/dev/stdout',
          'exec.start': 'echo CON',
          'exec.stop': 'echo BYE',
        },
      },
      meta: [{ op: 'set', key: 'test', value: 'f2' }],
    });
    const c = collector();
    assert.ok((await s.start(['fsc'], { hookOutput: c.hookOutput })).ok);
    assert.deepEqual(c.out, ['CON\n']);
    // the bug: remove failed with `spawn ENXIO` and left the jail 'stopping'
    let r = await jy('remove', 'fsc');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(store.getJail('fsc'), undefined);

    const file = join(state, 'a-file');
    writeFileSync(file, '');
    const bad = join(file, 'console.log'); // below a regular file: cannot be made
    r = await jy(
      'create',
      'fsb',
      'skeleton=host',
      'persist',
      `exec.consolelog=${bad}`,
      'exec.start=echo x',
      'meta.test=f2',
    );
    assert.equal(r.code, 0, r.stderr);
    await assert.rejects(
      s.start(['fsb']).then((x) => Promise.reject(x.outcomes[0])),
      (o: { code?: string; message?: string }) => {
        assert.equal(o.code, 'JY_ERR_PARAM_VALUE');
        assert.match(o.message ?? '', /exec\.consolelog/);
        return true;
      },
    );
    assert.equal(store.requireJail('fsb').state, 'stopped');
    assert.equal(store.requireJail('fsb').runtime, null);
    const good = join(state, 'logs/fsb.log');
    r = await jy('set', 'fsb', `exec.consolelog=${good}`);
    assert.equal(r.code, 0, r.stderr);
    r = await jy('start', 'fsb');
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(good, 'utf8'), /^x$/m);
    // made unwritable while running: the stop refuses before it changes anything
    r = await jy('set', 'fsb', `exec.consolelog=${bad}`);
    assert.equal(r.code, 0, r.stderr);
    r = await jy('remove', 'fsb');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /exec\.consolelog .* cannot be written/);
    assert.equal(store.requireJail('fsb').state, 'running');
    r = await jy('set', 'fsb', `exec.consolelog=${good}`);
    r = await jy('remove', 'fsb');
    assert.equal(r.code, 0, r.stderr);
  });

  test('a jail without persist goes away when its last process exits, without its stop commands', async () => {
    const marks = join(state, 'marks');
    const hooks = [`exec.prestop=echo prestop >> ${marks}`, `exec.poststop=echo poststop >> ${marks}`];
    // command exits at once: the start ends with the jail gone (jail -c ... command=true)
    let r = await jy(
      'create',
      'fsn1',
      'skeleton=host',
      'command=/bin/true',
      `exec.poststart=echo poststart >> ${marks}`,
      ...hooks,
      'meta.test=f2',
    );
    assert.equal(r.code, 0, r.stderr);
    r = await jy('start', 'fsn1');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(store.requireJail('fsn1').state, 'stopped');
    assert.equal(store.requireJail('fsn1').runtime, null);
    assert.equal(readFileSync(marks, 'utf8'), 'poststart\n');
    // neither persist nor a process to start: refused as the kernel refuses it, nothing runs
    r = await jy('create', 'fsn3', 'skeleton=host', `exec.prestart=echo prestart >> ${marks}`, 'meta.test=f2');
    r = await jy('start', 'fsn3');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /fsn3: failed: .*parameter "persist": new jail must persist or attach/);
    assert.equal(store.requireJail('fsn3').state, 'stopped');
    assert.equal(store.requireJail('fsn3').lastError, null, 'refused before anything changed');
    // a process left by exec.start keeps it; when that exits, the next reader cleans up
    r = await jy('create', 'fsn2', 'skeleton=host', 'exec.start=sleep 3 &', ...hooks, 'meta.test=f2');
    r = await jy('start', 'fsn2');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('ls', 'name');
    assert.match(r.stdout, /^fsn2$/m);
    assert.equal(existsSync(join(state, 'jails/fsn2/enter')), false, 'no exec fast path: the CLI notices its death');
    const jid = store.requireJail('fsn2').jid;
    await sleep(4500); // past the sleep's 3 s (bounds with room for a loaded machine)
    assert.equal(store.requireJail('fsn2').state, 'running', 'nobody looked yet');
    r = await jy('ls', 'name');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /fsn2/);
    assert.equal(store.requireJail('fsn2').state, 'stopped');
    assert.equal((await jy('exec', String(jid), '/bin/true')).code, 1);
    assert.equal(readFileSync(marks, 'utf8'), 'poststart\n', 'no exec.prestop or exec.poststop ran');
    // reconcile cleans up the same way
    r = await jy('create', 'fsn4', 'skeleton=host', 'exec.start=sleep 3 &', ...hooks, 'meta.test=f2');
    r = await jy('start', 'fsn4');
    assert.equal(r.code, 0, r.stderr);
    await sleep(4500);
    r = await jy('reconcile', '--dry-run');
    assert.match(r.stderr, /^fsn4: would be stopped$/m);
    assert.equal(store.requireJail('fsn4').state, 'running');
    r = await jy('reconcile');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^fsn4: stopped \(recovered\)$/m);
    assert.equal(store.requireJail('fsn4').state, 'stopped');
    assert.equal(readFileSync(marks, 'utf8'), 'poststart\n', 'no exec.prestop or exec.poststop ran');
    r = await jy('remove', 'fsn1', 'fsn2', 'fsn3', 'fsn4');
    assert.equal(r.code, 0, r.stderr);
  });

  test('children.max reads 0 when unset; children.cur and parent are filled in', async () => {
    let r = await jy('create', 'fsp', 'skeleton=host', 'persist', 'children.max=2', 'meta.test=f2');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('create', 'fsp.k1', 'skeleton=host', 'persist', 'meta.test=f2');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('create', 'fsq', 'skeleton=host', 'persist', 'meta.test=f2');
    r = await jy('start', 'fsp.k1', 'fsq');
    assert.equal(r.code, 0, r.stderr);
    const jid = (n: string) => store.requireJail(n).jid;
    r = await jy('ls', 'name', 'children.max', 'children.cur', 'parent');
    assert.equal(r.stdout, `fsp 2 1 0\nfsp.k1 0 0 ${jid('fsp')}\nfsq 0 0 0\n`);
    r = await jy('ls', '-j', 'fsp.k1', '--json', 'parent', 'children.max');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`"parent": ?"?${jid('fsp')}"?[,}]`));
    r = await jy('remove', 'fsp', 'fsq');
    assert.equal(r.code, 0, r.stderr);
  });

  test('a failed create --start leaves nothing: no record, no folder', async () => {
    const r = await jy('create', 'fsf', 'skeleton=host', 'persist', 'exec.prestart=exit 3', 'meta.test=f2', '--start');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /fsf: .*exec\.prestart command failed/);
    assert.match(r.stderr, /^fsf: removed$/m);
    assert.equal(store.getJail('fsf'), undefined);
    assert.equal(existsSync(join(state, 'jails/fsf')), false);
    assert.throws(
      () => store.requireJailRef('fsf'),
      (e) => e instanceof JailyardError && e.code === 'JY_ERR_JAIL_NOT_FOUND',
    );
  });
});
