// A batch's dryRun on one host (the API's POST /v1/batch/* body, docs/api.md): the outcomes
// in the batch's order, the refusals a real run would meet (a missing jail, a stale
// revision), and nothing changed: no driver step acts, no state moves, no record goes.
// Real jails on the host's root, the Linux driver.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Driver } from '../../src/platform/driver.ts';
import { createLinuxDriver } from '../../src/platform/linux/index.ts';
import { createLocalService } from '../../src/runtime/service.ts';
import { skeletonHooks } from '../../src/skeleton/hooks.ts';
import { createSkeleton } from '../../src/skeleton/registry.ts';
import { openStore, type SqliteStore } from '../../src/store/sqlite.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;
let store: SqliteStore;
let service: ReturnType<typeof createLocalService>;
/** Driver steps that act, as called. */
const acted: string[] = [];

function watchedDriver(): Driver {
  const real = createLinuxDriver({});
  const acting = new Set(['setupNetwork', 'mount', 'create', 'destroy', 'unmount', 'teardownNetwork', 'runHost']);
  return new Proxy(real, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver);
      if (typeof v !== 'function' || !acting.has(String(key))) return v;
      return (...args: unknown[]) => {
        acted.push(`${String(key)} ${(args[0] as { name: string }).name}`);
        return v.apply(target, args);
      };
    },
  });
}

const states = () => Object.fromEntries(store.listJails().map((j) => [j.name, j.state]));

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-dryrun-'));
  store = openStore(state) as SqliteStore;
  service = createLocalService({ store, stateDir: state, driver: watchedDriver(), skeletons: skeletonHooks() });
  await createSkeleton(state, 'host', { type: 'from', path: '/' });
  const jail = (name: string, extra: Record<string, string | boolean> = {}) =>
    service.create({ spec: { name, params: { name, skeleton: 'host', persist: true, ...extra } } });
  await jail('dr-db');
  await jail('dr-web', { depend: 'dr-db' });
  await jail('dr-run');
  assert.ok((await service.start(['dr-run'])).ok);
});

after(async () => {
  // one by one: a jail a failing test removed must not keep the others
  for (const n of ['dr-web', 'dr-db', 'dr-run']) if (store.getJail(n)) await service.remove([n]).catch(() => {});
  store.close();
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('a dry start gives the order a real one takes (depend first) and starts nothing', async () => {
  acted.length = 0;
  const before = states();
  const r = await service.start(['dr-web'], { dryRun: true });
  assert.deepEqual(
    r.outcomes.map((o) => [o.name, o.status]),
    [
      ['dr-db', 'ok'],
      ['dr-web', 'ok'],
    ],
  );
  assert.ok(r.ok);
  assert.deepEqual(acted, []);
  assert.deepEqual(states(), before);
});

test('a dry stop, restart and remove of a running jail leave it running, recorded and mounted', async () => {
  acted.length = 0;
  const rev = store.requireJail('dr-run').revision;
  for (const verb of ['stop', 'restart', 'remove'] as const) {
    const r = await service[verb](['dr-run'], { dryRun: true });
    assert.deepEqual(
      r.outcomes.map((o) => [o.name, o.status]),
      [['dr-run', 'ok']],
      verb,
    );
  }
  assert.deepEqual(acted, []);
  const j = store.requireJail('dr-run');
  assert.equal(j.state, 'running');
  assert.equal(j.revision, rev);
  // its pid 1 still runs
  const pid = j.runtime?.create?.initPid;
  assert.ok(pid && existsSync(`/proc/${pid}`), `pid 1 of dr-run: ${pid}`);
});

test('a dry remove compares the revision, and a missing jail is refused, as a real one would', async () => {
  const rev = store.requireJail('dr-db').revision;
  await assert.rejects(service.remove(['dr-db'], { dryRun: true, ifRevision: rev + 5 }), {
    code: 'JY_ERR_REVISION_CONFLICT',
  });
  const ok = await service.remove(['dr-db'], { dryRun: true, ifRevision: rev });
  assert.ok(ok.ok);
  await assert.rejects(service.start(['dr-nope'], { dryRun: true }), { code: 'JY_ERR_JAIL_NOT_FOUND' });
  assert.ok(store.getJail('dr-db'));
});
