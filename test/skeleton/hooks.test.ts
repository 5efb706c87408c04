// The runtime's skeleton hooks on real trees: seed at create, plan at start, upgrade.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { createSkeleton } from '../../src/skeleton/registry.ts';
import { prepareJail, planJail, upgradeJail, readPinned, jailSkeleton } from '../../src/skeleton/hooks.ts';
import { JailyardError } from '../../src/errors.ts';
import { tempDir, makeSkeleton } from './fixtures.ts';

const t = tempDir('hooks');
after(t.cleanup);
const src = join(t.dir, 'src');
makeSkeleton(src, { 'usr/share/x': 'x', 'etc/app.conf': 'port=80\n# tuning\nworkers=2\n' });
const state = join(t.dir, 'state');

describe('skeleton hooks', () => {
  test('nullfs jail: seeded, pinned, planned; upgrade merges and re-pins', async () => {
    await createSkeleton(state, 'deb', { type: 'copy', path: src });
    // /etc copied at create (skeleton.cow empty; copy-on-write dirs: test/cli/cow.test.ts)
    const rec = { name: 'web', params: { skeleton: 'deb', 'skeleton.strategy': 'nullfs', 'skeleton.cow': '' } };
    await prepareJail(state, rec);
    const root = join(state, 'jails/web/root');
    assert.equal(readFileSync(join(root, 'etc/app.conf'), 'utf8'), 'port=80\n# tuning\nworkers=2\n');
    assert.deepEqual(readPinned(state, 'web'), { name: 'deb', version: 1, cow: [] });
    const plan = planJail(state, rec, root);
    assert.ok(plan.mounts.some((m) => m.kind === 'bind' && m.target === join(root, 'usr/bin') && m.readonly));
    assert.deepEqual(
      plan.symlinks.find((s) => s.path === join(root, 'bin')),
      { path: join(root, 'bin'), target: 'usr/bin' },
    );

    // v2 of the skeleton; the jail edited its config meanwhile
    writeFileSync(join(src, 'etc/app.conf'), 'port=80\n# tuning\nworkers=4\n');
    await createSkeleton(state, 'deb', { type: 'copy', path: src });
    // a bare NAME stays on the pinned version until upgraded
    assert.equal(jailSkeleton(state, rec).version, 1);
    writeFileSync(join(root, 'etc/app.conf'), 'port=8080\n# tuning\nworkers=2\n');
    const r = await upgradeJail(state, rec, 'deb');
    assert.deepEqual([r.from, r.to], [1, 2]);
    assert.equal(readFileSync(join(root, 'etc/app.conf'), 'utf8'), 'port=8080\n# tuning\nworkers=4\n');
    assert.equal(jailSkeleton(state, rec).version, 2);
  });

  test('full and overlay jails', async () => {
    const full = { name: 'f', params: { skeleton: 'deb@1', 'skeleton.strategy': 'full' } };
    await prepareJail(state, full);
    assert.ok(lstatSync(join(state, 'jails/f/root/usr/bin/sh')).isFile());
    assert.deepEqual(planJail(state, full, join(state, 'jails/f/root')).mounts, []);
    await assert.rejects(
      upgradeJail(state, full, 'deb@2'),
      (e: unknown) => e instanceof JailyardError && e.place.param === 'skeleton.strategy',
    );
    const ov = { name: 'o', params: { skeleton: 'deb', 'skeleton.strategy': 'overlay' } };
    await prepareJail(state, ov);
    assert.equal(planJail(state, ov, join(state, 'jails/o/root')).mounts[0]!.kind, 'overlay');
  });

  test('a live tree (--from): overlay jails get per-dir layers, older overlay jails keep their layout', async () => {
    const live = join(t.dir, 'live');
    makeSkeleton(live, { 'work/src/secret': 'host only\n' });
    await createSkeleton(state, 'live', { type: 'from', path: live });
    const ov = { name: 'lo', params: { skeleton: 'live', 'skeleton.strategy': 'overlay' } };
    await prepareJail(state, ov);
    const root = join(state, 'jails/lo/root');
    assert.equal(readPinned(state, 'lo')?.live, true);
    assert.ok(existsSync(join(root, 'tmp')) && !existsSync(join(root, 'work')));
    let plan = planJail(state, ov, root);
    assert.ok(!plan.mounts.some((m) => m.target === root), 'no overlay of the whole tree');
    assert.ok(
      plan.mounts.some(
        (m) => m.kind === 'overlay' && m.target === join(root, 'usr/bin') && m.lower[0] === join(live, 'usr/bin'),
      ),
    );
    assert.ok(
      plan.mounts.some((m) => m.kind === 'overlay' && m.target === join(root, 'etc')),
      '/etc copy-on-write over the seed',
    );
    // a jail seeded before (no `live` in its pin): the whole tree below its own upper layer
    const pin = readPinned(state, 'lo')!;
    delete pin.live;
    writeFileSync(join(state, 'jails/lo/skeleton.json'), JSON.stringify(pin));
    plan = planJail(state, ov, root);
    assert.ok(plan.mounts.some((m) => m.kind === 'overlay' && m.target === root && m.lower[0] === live));
    const bj = { name: 'lb', params: { skeleton: 'live', 'skeleton.strategy': 'basejail' } };
    await prepareJail(state, bj);
    plan = planJail(state, bj, join(state, 'jails/lb/root'));
    assert.ok(!plan.mounts.some((m) => m.kind === 'bind' && m.source === live), 'no bind of the whole tree');
    assert.ok(
      plan.mounts.some(
        (m) =>
          m.kind === 'bind' &&
          m.source === join(live, 'usr/bin') &&
          m.target === join(state, 'jails/lb/root/basejail/usr/bin'),
      ),
    );
  });

  test('unknown skeleton names the jail', async () => {
    await assert.rejects(
      prepareJail(state, { name: 'x', params: { skeleton: 'nope' } }),
      (e: unknown) =>
        e instanceof JailyardError &&
        e.code === 'JY_ERR_SKELETON_NOT_FOUND' &&
        e.place.jail === 'x' &&
        e.place.param === 'skeleton',
    );
    assert.ok(!existsSync(join(state, 'jails/x/skeleton.json')));
  });
});
