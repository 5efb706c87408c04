// What the lifecycle writes to the store, with real jails (a thin jail on the host's root,
// the Linux driver): every step that changed the system, or whose undo has work to do, is in
// the store before the next step that acts begins (what reconcile needs after a kill -9
// anywhere), and steps that do nothing share a write: a start or a stop of a jail without
// hooks is two runtime writes besides its two state transitions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Driver } from '../../src/platform/driver.ts';
import { createLinuxDriver } from '../../src/platform/linux/index.ts';
import { createLocalService } from '../../src/runtime/service.ts';
import { skeletonHooks } from '../../src/skeleton/hooks.ts';
import { createSkeleton } from '../../src/skeleton/registry.ts';
import { openStore } from '../../src/store/sqlite.ts';
import type { SqliteStore } from '../../src/store/sqlite.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;
let store: SqliteStore;
/** [driver call or hook command, the steps recorded in the store when it began] */
let seen: [string, string[]][] = [];
const writes = { runtime: 0, transition: 0 };

const recorded = (name: string): string[] => [...(store.requireJail(name).runtime?.steps ?? [])];

/** The Linux driver, noting what the store holds whenever a step acts. */
function watchedDriver(): Driver {
  const real = createLinuxDriver({});
  const acting = new Set(['setupNetwork', 'mount', 'create', 'destroy', 'unmount', 'teardownNetwork', 'runHost']);
  return new Proxy(real, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver);
      if (typeof v !== 'function' || !acting.has(String(key))) return v;
      return (...args: unknown[]) => {
        const ctx = args[0] as { name: string };
        const what = key === 'runHost' ? `runHost ${String(args[1])}` : String(key);
        seen.push([what, recorded(ctx.name)]);
        return v.apply(target, args);
      };
    },
  });
}

let service: ReturnType<typeof createLocalService>;

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-lcrec-'));
  store = openStore(state) as SqliteStore;
  for (const m of ['recordRuntime', 'transition'] as const) {
    const f = store[m].bind(store) as (...a: unknown[]) => unknown;
    (store as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => {
      writes[m === 'recordRuntime' ? 'runtime' : 'transition']++;
      return f(...a);
    };
  }
  service = createLocalService({ store, stateDir: state, driver: watchedDriver(), skeletons: skeletonHooks() });
  await createSkeleton(state, 'host', { type: 'from', path: '/' });
});

after(async () => {
  await service.remove(['rec1', 'rec2']).catch(() => {});
  store.close();
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

const reset = () => {
  seen = [];
  writes.runtime = 0;
  writes.transition = 0;
};

test('a jail without hooks: each acting step finds the one before it recorded, in two writes per start and stop', async () => {
  await service.create({ spec: { name: 'rec1', params: { name: 'rec1', skeleton: 'host', persist: true } } });
  reset();
  const started = await service.start(['rec1']);
  assert.ok(started.ok, JSON.stringify(started));
  assert.deepEqual(seen, [
    ['setupNetwork', []],
    ['mount', ['exec.prepare', 'addresses', 'ports']],
    ['create', ['exec.prepare', 'addresses', 'ports', 'mounts', 'exec.prestart']],
  ]);
  assert.deepEqual(writes, { runtime: 2, transition: 2 });
  const running = store.requireJail('rec1');
  assert.equal(running.state, 'running');
  assert.deepEqual(running.runtime?.steps, [
    'exec.prepare',
    'addresses',
    'ports',
    'mounts',
    'exec.prestart',
    'create',
    'exec.created',
    'exec.start',
    'exec.poststart',
  ]);

  reset();
  const stopped = await service.stop(['rec1']);
  assert.ok(stopped.ok, JSON.stringify(stopped));
  // destroy starts from what the transition to 'stopping' wrote; each later undo finds the
  // one before it gone from the store
  assert.deepEqual(
    seen.map(([what, steps]) => [what, steps.at(-1)]),
    [
      ['destroy', 'exec.poststart'],
      ['unmount', 'mounts'],
      ['teardownNetwork', 'addresses'],
    ],
  );
  assert.deepEqual(writes, { runtime: 2, transition: 2 });
  assert.equal(store.requireJail('rec1').state, 'stopped');
});

test("a hook's step is recorded before the next step acts, and so is a step whose undo has commands", async () => {
  // exec.prepare has no command, but its undo (exec.release) has: jail(8) runs exec.release
  // when exec.prepare ran, so a crash after it must find it recorded
  await service.create({
    spec: {
      name: 'rec2',
      params: { name: 'rec2', skeleton: 'host', persist: true, 'exec.release': 'true', 'exec.prestart': 'true' },
    },
  });
  reset();
  const started = await service.start(['rec2']);
  assert.ok(started.ok, JSON.stringify(started));
  assert.deepEqual(seen, [
    ['setupNetwork', ['exec.prepare']],
    ['mount', ['exec.prepare', 'addresses', 'ports']],
    ['runHost true', ['exec.prepare', 'addresses', 'ports', 'mounts']],
    ['create', ['exec.prepare', 'addresses', 'ports', 'mounts', 'exec.prestart']],
  ]);
  reset();
  const stopped = await service.stop(['rec2']);
  assert.ok(stopped.ok, JSON.stringify(stopped));
  // exec.release runs after addresses.remove was recorded, with exec.prepare still there
  assert.deepEqual(seen.at(-1), ['runHost true', ['exec.prepare']]);
  assert.equal(store.requireJail('rec2').state, 'stopped');
});
