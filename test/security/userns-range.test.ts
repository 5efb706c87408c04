// The user-namespace range registry and the ownership shift (src/platform/linux/userns.ts),
// without jails: a registry folder of this test's own (JAILYARD_USERNS_REGISTRY), state
// folders in /tmp. Host-wide uniqueness, reuse by the same jail, reclaim after removal,
// concurrent takers, the defaults switch, and the shift's care with setuid bits, symlinks and
// mount points.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  rangeFor,
  recordedRange,
  releaseRange,
  shiftOwnership,
  staleRanges,
  usernsConfig,
  usernsWanted,
  type UsernsConfig,
} from '../../src/platform/linux/userns.ts';

const dir = mkdtempSync(join(tmpdir(), 'jy-userns-range-'));
const cfg: UsernsConfig = { ...usernsConfig(), registry: join(dir, 'registry'), slots: 64 };
after(() => rmSync(dir, { recursive: true, force: true }));

const stateOf = (state: string, jail: string) => join(dir, state, 'jails', jail);

test('ranges: each jail its own, the same one again for the same jail, host-wide over state folders', async () => {
  const a = await rangeFor({ name: 'a', stateDir: stateOf('s1', 'a') }, cfg);
  const b = await rangeFor({ name: 'a', stateDir: stateOf('s2', 'a') }, cfg);
  assert.notEqual(a.slot, b.slot, 'two state folders, one range');
  assert.equal(a.base, cfg.first + a.slot * cfg.size);
  assert.equal(a.count, cfg.size);
  assert.deepEqual(await rangeFor({ name: 'a', stateDir: stateOf('s1', 'a') }, cfg), a);
  assert.deepEqual(recordedRange(stateOf('s1', 'a'), cfg), a);
});

test('ranges: concurrent takers never share a slot', async () => {
  const got = await Promise.all(
    Array.from({ length: 20 }, (_, i) => rangeFor({ name: `c${i}`, stateDir: stateOf('s3', `c${i}`) }, cfg)),
  );
  assert.equal(new Set(got.map((r) => r.slot)).size, 20);
});

test('ranges: a removed jail frees its slot (reclaimed, or released), a kept one is never taken', async () => {
  const gone = await rangeFor({ name: 'g', stateDir: stateOf('s4', 'g') }, cfg);
  rmSync(join(dir, 's4'), { recursive: true });
  assert.ok((await staleRanges(false, cfg)).includes(gone.slot));
  const next = await rangeFor({ name: 'n', stateDir: stateOf('s5', 'n') }, cfg);
  assert.equal(next.slot, gone.slot, 'the lowest free slot is the reclaimed one');
  await releaseRange(stateOf('s5', 'n'), cfg);
  assert.equal(recordedRange(stateOf('s5', 'n'), cfg), undefined);
  const kept = recordedRange(stateOf('s1', 'a'), cfg);
  assert.ok(kept && !(await staleRanges(true, cfg)).includes(kept.slot));
  assert.deepEqual(recordedRange(stateOf('s1', 'a'), cfg), kept);
});

test('ranges: all slots held is an error naming the registry', async () => {
  const small = { ...cfg, registry: join(dir, 'small'), slots: 1 };
  await rangeFor({ name: 'x', stateDir: stateOf('s6', 'x') }, small);
  await assert.rejects(rangeFor({ name: 'y', stateDir: stateOf('s6', 'y') }, small), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'JY_ERR_PLATFORM');
    assert.match(e.message, /no free user-namespace range/);
    return true;
  });
});

test('the parameter wins over the defaults switch', () => {
  const spec = (params: Record<string, unknown>) =>
    ({ name: 'j', params: { name: 'j', ...params } }) as Parameters<typeof usernsWanted>[0];
  assert.equal(usernsWanted(spec({}), { enabled: false }), false);
  assert.equal(usernsWanted(spec({}), { enabled: true }), true);
  assert.equal(usernsWanted(spec({ userns: false }), { enabled: true }), false);
  assert.equal(usernsWanted(spec({ userns: true }), { enabled: false }), true);
});

test('shift: host-owned entries move into the range, setuid kept, symlinks and mount points untouched', () => {
  const top = join(dir, 'tree');
  mkdirSync(join(top, 'sub', 'mnt'), { recursive: true });
  writeFileSync(join(top, 'sub', 'suid'), 'x');
  chmodSync(join(top, 'sub', 'suid'), 0o4755);
  writeFileSync(join(top, 'file'), 'a file of the jail');
  writeFileSync(join(dir, 'victim'), 'a host file outside the tree');
  symlinkSync(join(dir, 'victim'), join(top, 'link'));
  writeFileSync(join(top, 'sub', 'mnt', 'below'), 'behind a mount point');
  const range = { slot: 0, base: cfg.first, count: cfg.size };
  const r = shiftOwnership([top], range, new Set([join(top, 'sub', 'mnt')]));
  assert.equal(lstatSync(join(top, 'sub', 'suid')).uid, range.base);
  assert.equal(lstatSync(join(top, 'sub', 'suid')).mode & 0o7777, 0o4755, 'chown cleared the setuid bit');
  assert.equal(lstatSync(join(top, 'link')).uid, range.base, 'the link itself');
  assert.equal(lstatSync(join(dir, 'victim')).uid, 0, 'the link was followed');
  assert.equal(lstatSync(join(top, 'sub', 'mnt')).uid, 0, 'a mount point was changed');
  assert.equal(lstatSync(join(top, 'sub', 'mnt', 'below')).uid, 0, 'a mount point was entered');
  assert.equal(r.shifted, 5); // top, sub, suid, file, link
  assert.equal(
    shiftOwnership([top], range, new Set([join(top, 'sub', 'mnt')])).shifted,
    0,
    'a second run changes nothing',
  );
});

test("shift: a tree owned by another range (a clone's or an import's) moves into this one, uid for uid; ids outside the area stay", () => {
  // audit: a clone of a userns jail kept its source's range, so its root saw every file as nobody
  const top = join(dir, 'cloned');
  mkdirSync(join(top, 'home'), { recursive: true });
  writeFileSync(join(top, 'home', 'user-file'), 'x');
  writeFileSync(join(top, 'outside'), 'y');
  const source = { slot: 3, base: cfg.first + 3 * cfg.size, count: cfg.size };
  const mine = { slot: 5, base: cfg.first + 5 * cfg.size, count: cfg.size };
  chownSync(top, source.base, source.base);
  chownSync(join(top, 'home'), source.base, source.base);
  chownSync(join(top, 'home', 'user-file'), source.base + 1000, source.base + 1000);
  // above the area: nobody's range, left as it is
  const above = cfg.first + cfg.slots * cfg.size + 5;
  chownSync(join(top, 'outside'), above, above);
  const r = shiftOwnership([top], mine, new Set(), cfg);
  assert.equal(r.shifted, 3);
  assert.equal(lstatSync(top).uid, mine.base);
  assert.equal(lstatSync(join(top, 'home', 'user-file')).uid, mine.base + 1000);
  assert.equal(lstatSync(join(top, 'home', 'user-file')).gid, mine.base + 1000);
  assert.equal(lstatSync(join(top, 'outside')).uid, above);
  assert.equal(shiftOwnership([top], mine, new Set(), cfg).shifted, 0, 'a second run changes nothing');
});
