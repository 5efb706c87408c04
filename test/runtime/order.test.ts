import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildGraph, runBatch, withDependencies } from '../../src/runtime/order.ts';
import { JailyardError } from '../../src/errors.ts';

const deps: Record<string, string[]> = { web: ['db', 'cache'], db: [], cache: ['db'], lone: [] };
const dependsOf = (n: string) => deps[n] ?? [];

test('withDependencies puts what a jail depends on first', () => {
  assert.deepEqual(withDependencies(['web'], dependsOf), ['db', 'cache', 'web']);
  assert.deepEqual(withDependencies(['lone', 'cache'], dependsOf), ['lone', 'db', 'cache']);
});

test('a dependency loop is an error naming the loop', () => {
  const loop: Record<string, string[]> = { a: ['b'], b: ['c'], c: ['a'] };
  assert.throws(
    () => buildGraph(['a', 'b', 'c'], (n) => loop[n] ?? []),
    (e: unknown) =>
      e instanceof JailyardError &&
      e.code === 'JY_ERR_DEPEND' &&
      /a -> b -> c -> a/.test(e.message) &&
      e.place.param === 'depend',
  );
});

test('start runs dependencies first; stop runs dependents first', async () => {
  const names = ['web', 'db', 'cache', 'lone'];
  const g = buildGraph(names, dependsOf);
  const started: string[] = [];
  await runBatch(names, g, 'start', 1, async (n) => void started.push(n));
  assert.ok(started.indexOf('db') < started.indexOf('cache'));
  assert.ok(started.indexOf('cache') < started.indexOf('web'));
  const stopped: string[] = [];
  await runBatch(names, g, 'stop', 1, async (n) => void stopped.push(n));
  assert.ok(stopped.indexOf('web') < stopped.indexOf('cache'));
  assert.ok(stopped.indexOf('cache') < stopped.indexOf('db'));
});

test('a failed jail marks its dependents skipped and the others carry on', async () => {
  const names = ['web', 'db', 'cache', 'lone'];
  const g = buildGraph(names, dependsOf);
  const out = await runBatch(names, g, 'start', 2, async (n) => {
    if (n === 'db')
      throw new JailyardError('JY_ERR_STEP_FAILED', 'exec.prestart command failed', {
        jail: 'db',
        step: 'exec.prestart',
      });
  });
  const by = Object.fromEntries(out.map((o) => [o.name, o]));
  assert.equal(by.db!.status, 'failed');
  assert.equal(by.db!.code, 'JY_ERR_STEP_FAILED');
  assert.equal(by.cache!.status, 'skipped');
  assert.equal(by.web!.status, 'skipped');
  assert.equal(by.lone!.status, 'ok');
  assert.deepEqual(
    out.map((o) => o.name),
    names,
    'one outcome per jail, in the order given',
  );
});

test('parallel runs independent jails at once, never more than asked', async () => {
  const names = ['a', 'b', 'c', 'd', 'e'];
  const g = buildGraph(names, () => []);
  let now = 0;
  let peak = 0;
  await runBatch(names, g, 'start', 3, async () => {
    now++;
    peak = Math.max(peak, now);
    await new Promise((r) => setTimeout(r, 20));
    now--;
  });
  assert.equal(peak, 3);
});

test('a failed stop that left the jail where the batch needs it (doneAnyway) does not skip the jails waiting for it', async () => {
  const names = ['web', 'db', 'cache', 'lone'];
  const g = buildGraph(names, dependsOf);
  const stopped: string[] = [];
  const out = await runBatch(
    names,
    g,
    'stop',
    1,
    async (n) => {
      stopped.push(n);
      if (n === 'web') throw new JailyardError('JY_ERR_STEP_FAILED', 'exec.stop command failed', { jail: 'web' });
      if (n === 'cache') throw new JailyardError('JY_ERR_STEP_FAILED', 'unmount failed', { jail: 'cache' });
    },
    undefined,
    (n) => n === 'web',
  );
  const by = Object.fromEntries(out.map((o) => [o.name, o.status]));
  // web failed but is down: cache goes on; cache failed and is not: db is skipped
  assert.deepEqual(by, { web: 'failed', cache: 'failed', db: 'skipped', lone: 'ok' });
  assert.ok(stopped.indexOf('web') < stopped.indexOf('cache'));
});
