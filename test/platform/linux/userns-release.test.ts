// A removed jail gives its user-namespace range back at once (src/platform/linux/userns.ts
// releaseRange through the Linux driver's forget): a real `userns` jail started, stopped and
// removed through the CLI, with a registry of this test's own (JAILYARD_USERNS_REGISTRY).
// A refused removal keeps the slot. (Reclaiming slots whose owner vanished without a
// removal: test/security/userns-range.test.ts.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor } from '../../helpers/cli.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../../helpers/leaks.ts';
import { rangeFor, recordedRange, usernsConfig, type UsernsConfig } from '../../../src/platform/linux/userns.ts';

let top: string;
let state: string;
let registry: string;
let baseline: SystemSnapshot;
const savedRegistry = process.env.JAILYARD_USERNS_REGISTRY;
const jy = cliFor(() => state);
const jailDir = (name: string) => join(state, 'jails', name);
const slots = () => readdirSync(registry).sort();
const cfg = (): UsernsConfig => usernsConfig();

before(async () => {
  baseline = snapshot();
  top = mkdtempSync(join(tmpdir(), 'jy-userns-rel-'));
  state = join(top, 'state');
  registry = join(top, 'registry');
  process.env.JAILYARD_USERNS_REGISTRY = registry;
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
});

after(async () => {
  await jy('remove', 'ur1', 'ur2');
  if (savedRegistry === undefined) delete process.env.JAILYARD_USERNS_REGISTRY;
  else process.env.JAILYARD_USERNS_REGISTRY = savedRegistry;
  assertNoLeaks(baseline, state);
  rmSync(top, { recursive: true, force: true });
});

test('remove frees the jail slot in the registry; the next jail takes it again', { timeout: 120_000 }, async () => {
  for (const name of ['ur1', 'ur2']) {
    const c = await jy('create', name, 'skeleton=host', 'persist', 'userns');
    assert.equal(c.code, 0, c.stderr);
    const s = await jy('start', name);
    assert.equal(s.code, 0, s.stderr);
  }
  const r1 = recordedRange(jailDir('ur1'), cfg());
  const r2 = recordedRange(jailDir('ur2'), cfg());
  assert.ok(r1 && r2, 'both running jails hold a range');
  assert.notEqual(r1.slot, r2.slot);
  assert.deepEqual(slots(), [String(r1.slot), String(r2.slot)].sort());

  const rm = await jy('remove', 'ur1');
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(existsSync(jailDir('ur1')), false);
  assert.deepEqual(slots(), [String(r2.slot)], 'the removed jail slot file is gone, the other kept');
  assert.deepEqual(recordedRange(jailDir('ur2'), cfg()), r2);

  // a new jail gets the lowest free slot: the one just released
  const again = await rangeFor({ name: 'probe', stateDir: join(top, 'other', 'jails', 'probe') }, cfg());
  assert.equal(again.slot, r1.slot);
  rmSync(join(top, 'other'), { recursive: true, force: true });
});

test('a remove that is refused keeps the slot; the remove that succeeds frees it', { timeout: 60_000 }, async () => {
  const r2 = recordedRange(jailDir('ur2'), cfg());
  assert.ok(r2);
  // a revision the jail does not have: refused, nothing changes
  const refused = await jy('remove', 'ur2', '--if-revision', '999999');
  assert.notEqual(refused.code, 0);
  assert.deepEqual(recordedRange(jailDir('ur2'), cfg()), r2, 'slot kept while the jail exists');
  assert.ok(slots().includes(String(r2.slot)));
  const rm = await jy('remove', 'ur2');
  assert.equal(rm.code, 0, rm.stderr);
  assert.ok(!slots().includes(String(r2.slot)), 'released on remove');
});
