// jailyard's parent cgroup is shared by every state folder and removed by the destroy that
// empties it: a start in another folder must make it again, not fail (seen once under kyua:
// "ENOENT: mkdir /sys/fs/cgroup/pids/jailyard"). Two folders' creates and removes interleave
// here on a parent group of the test's own; none may fail, and nothing is left.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createGroups, parentDirs, removeGroups } from '../../../src/platform/linux/cgroups.ts';

const cfg = { parent: `jy-race-${process.pid}`, base: 'root' as const };
const ROUNDS = 300;

test('two state folders starting and stopping jails at once never fail on the shared parent group', async () => {
  const layout = parentDirs(cfg);
  const parents = layout.version === 1 ? Object.values(layout.dirs) : [layout.dir];
  const failures: string[] = [];
  const loop = async (tag: string): Promise<void> => {
    for (let i = 0; i < ROUNDS; i++) {
      try {
        const dirs = await createGroups(cfg, i + 1, `j-${tag}`, {}, tag);
        await removeGroups(dirs, `j-${tag}`);
      } catch (e) {
        failures.push(`${tag} round ${i}: ${(e as Error).message}`);
      }
    }
  };
  try {
    await Promise.all([loop('ra'), loop('rb'), loop('rc')]);
    assert.deepEqual(failures.slice(0, 5), []);
  } finally {
    for (const p of parents) if (existsSync(p)) await removeGroups([p], 'cleanup').catch(() => {});
  }
  for (const p of parents) assert.equal(existsSync(p), false, `${p} left behind`);
});

test('one process: a parent removed by the destroy that emptied it is made again at the next create', async () => {
  const own = { parent: `jy-remade-${process.pid}`, base: 'root' as const };
  const layout = parentDirs(own);
  const parents = layout.version === 1 ? Object.values(layout.dirs) : [layout.dir];
  try {
    for (let i = 1; i <= 3; i++) {
      const dirs = await createGroups(own, i, 'j-remade', {});
      for (const d of dirs) assert.ok(existsSync(d), `${d} made`);
      await removeGroups(dirs, 'j-remade');
      // the destroy removed the emptied parents: the next create (the same process, which
      // made them before) must not take them for present
      for (const p of parents) assert.equal(existsSync(p), false, `${p} removed with its last group`);
    }
  } finally {
    for (const p of parents) if (existsSync(p)) await removeGroups([p], 'cleanup').catch(() => {});
  }
});
