// The limits a jail's parameters give the driver (runtime/params.ts jailLimits).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jailLimits } from '../../src/runtime/params.ts';
import { currentPlatform, loadDefaults } from '../../src/defaults.ts';

test("limits.procs: the jail's own, else the platform's default from defaults.json (a fork bomb stays inside)", () => {
  const fallback = loadDefaults().limits.procs?.[currentPlatform()] ?? undefined;
  if (currentPlatform() === 'linux') assert.equal(fallback, 4096);
  assert.equal(jailLimits({}, 'j').maxProcs, fallback);
  assert.equal(jailLimits({ 'limits.procs': 10 }, 'j').maxProcs, 10);
  assert.equal(jailLimits({ 'limits.procs': 100000 }, 'j').maxProcs, 100000, 'a jail may ask for more');
  assert.equal(jailLimits({ 'limits.memory': '64M' }, 'j').memoryBytes, 64 * 1024 * 1024);
});
