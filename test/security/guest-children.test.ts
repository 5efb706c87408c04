// What a jail's children may cost the host (red-team run of 2026-12-04), through the in-jail
// jail(8) (src/api/guest-tools.ts): stopped children counted for nothing, so a jail could
// leave an unbounded number of child records (create, stop, create ...); and a child's
// exec.stop, written by the jail, had no time bound and held the operator's stop of the
// parent for good. The daemon runs in this process with the real jail(8) front; the jail
// runs its own `jail` as a jailed root would.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SecurityHost, toolsDaemon, type ToolsDaemon } from './helpers.ts';
import { assertNoLeaks } from '../helpers/leaks.ts';
import type { Store } from '../../src/store/types.ts';

/** The exec.timeout the daemon gives a jail's children here (seconds; default 60). */
const CHILD_EXEC_TIMEOUT = 2;

describe("a jail's children: counted whatever their state, their commands bounded in time", () => {
  let h: SecurityHost;
  let d: ToolsDaemon;
  let store: Store;
  let service: ToolsDaemon['service'];

  /** argv run in the jail as its root (the jail's own `jail`, `sysctl` reach the daemon). */
  const run = (jail: string, argv: string[]) => d.run(jail, argv);
  const names = () =>
    store
      .listJails()
      .map((j) => `${j.name}:${j.state}`)
      .sort();

  before(async () => {
    h = await SecurityHost.open('f6');
    await h.jail('f6p', { params: ['children.max=2'] });
    d = await toolsDaemon(h, ['f6p'], {}, { childExecTimeout: CHILD_EXEC_TIMEOUT });
    ({ store, service } = d);
  });
  after(async () => {
    await d?.close();
    await h?.close();
  });

  test('children.max=2: two children made and stopped still count; a third create is "prison limit exceeded"', async () => {
    for (const kid of ['a', 'b']) {
      const r = await run('f6p', ['jail', '-c', `name=${kid}`, 'persist']);
      assert.equal(r.code, 0, r.stderr);
    }
    const stopped = await service.stop(['f6p.a', 'f6p.b']);
    assert.ok(stopped.ok, JSON.stringify(stopped.outcomes));
    // what the jail reads of its tree is what the limit counts
    let r = await run('f6p', ['sysctl', '-n', 'security.jail.children.max', 'security.jail.children.cur']);
    assert.deepEqual([r.code, r.stdout], [0, '2\n2\n']);
    r = await run('f6p', ['jail', '-c', 'name=c', 'persist']);
    assert.deepEqual([r.code, r.stderr], [1, 'jail: prison limit exceeded\n']);
    assert.deepEqual(names(), ['f6p.a:stopped', 'f6p.b:stopped', 'f6p:running']);
    // removing a record gives its place back
    assert.ok((await service.remove(['f6p.a'])).ok);
    r = await run('f6p', ['jail', '-c', 'name=c', 'persist']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await service.remove(['f6p.b', 'f6p.c'])).ok);
    assert.deepEqual(names(), ['f6p:running']);
  });

  test("a child's hanging exec.stop holds the operator's stop of the parent for no longer than its bound", async () => {
    const r = await run('f6p', ['jail', '-c', 'name=h', 'persist', 'exec.stop=sleep 1000000']);
    assert.equal(r.code, 0, r.stderr);
    // the host's bound, which the jail cannot give nor take away
    assert.equal(String(store.requireJail('f6p.h').params['exec.timeout']), String(CHILD_EXEC_TIMEOUT));
    const m = await run('f6p', ['jail', '-m', 'name=h', 'exec.timeout=0']);
    assert.deepEqual([m.code, m.stderr], [1, 'jail: jail_set: exec.timeout: Operation not permitted\n']);
    const t0 = Date.now();
    const result = await service.stop(['f6p']);
    const ms = Date.now() - t0;
    // the child's stop.timeout (10 s) and the parent's own stop come on top of the bound
    assert.ok(ms < CHILD_EXEC_TIMEOUT * 1000 + 15_000, `the stop took ${ms} ms`);
    // the parent is stopped; the child too, its killed exec.stop reported as its failure
    assert.equal(store.requireJail('f6p').state, 'stopped');
    assert.equal(store.requireJail('f6p.h').state, 'stopped');
    assert.deepEqual(
      result.outcomes.map((o) => [o.name, o.status]),
      [
        ['f6p.h', 'failed'],
        ['f6p', 'ok'],
      ],
    );
    assert.match(result.outcomes[0]!.message ?? '', /exec\.stop command failed \(killed by SIGKILL\)/);
    assert.match(store.requireJail('f6p.h').lastError ?? '', /exec\.stop/);
    // nothing of either jail is left: no process (the sleep included), mount, netns or cgroup
    assert.equal(store.requireJail('f6p').runtime, null);
    assert.equal(store.requireJail('f6p.h').runtime, null);
    assertNoLeaks(h.baseline, h.state);
  });
});
