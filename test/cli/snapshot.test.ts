// snapshot create/list/rollback/remove: a rollback brings back a file the jail deleted (its
// own and one of its skeleton's, deleted in a copy-on-write layer) and drops what it made
// since; a running jail is refused; the jail starts and runs after it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor, runBin } from '../helpers/cli.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';
import { miniTree } from '../helpers/mini-skeleton.ts';

let state: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);

function sh(jail: string, script: string): string {
  const r = runBin(state, ['exec', jail, '/bin/sh', '-c', script]);
  assert.equal(r.code, 0, `${jail}: ${script}: ${r.stderr}`);
  return r.stdout;
}

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-snapshot-'));
  miniTree(join(state, 'src'));
  const r = await jy('skel', 'create', 'mini', '--copy', join(state, 'src'));
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await jy('remove', 'sn1');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('snapshot rollback restores a deleted file; a running jail is refused', { timeout: 120_000 }, async () => {
  let r = await jy('create', 'sn1', 'skeleton=mini', 'persist');
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await jy('start', 'sn1')).code, 0);
  sh(
    'sn1',
    'echo keep > /root/keep.txt && echo v1 > /etc/app.conf && rm -r /etc/sub && mkdir /etc/sub && echo b > /etc/sub/b.conf',
  );
  // running: refused unless --restart
  r = await jy('snapshot', 'create', 'sn1', 'before');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /running.*--restart/);
  r = await jy('snapshot', 'create', 'sn1', 'before', '--restart');
  assert.equal(r.code, 0, r.stderr);
  // the jail deletes its own file and a skeleton file, changes one, makes one
  sh('sn1', 'rm /root/keep.txt /etc/passwd && echo v2 > /etc/app.conf && echo new > /root/new.txt && rm -r /etc/sub');
  r = await jy('snapshot', 'rollback', 'sn1', 'before');
  assert.equal(r.code, 1, 'a running jail is refused');
  assert.match(r.stderr, /running/);
  assert.equal(sh('sn1', 'cat /etc/app.conf'), 'v2\n', 'nothing changed');
  assert.equal((await jy('stop', 'sn1')).code, 0);
  r = await jy('snapshot', 'create', 'sn1');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('snapshot', 'list', 'sn1', '--json');
  const list = JSON.parse(r.stdout) as { name: string }[];
  assert.equal(list.length, 2);
  assert.equal(list[0]!.name, 'before');
  assert.match(list[1]!.name, /^\d{8}-\d{6}$/);
  r = await jy('snapshot', 'rollback', 'sn1', 'nosuch');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no snapshot "nosuch"/);
  r = await jy('snapshot', 'rollback', 'sn1', 'before');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    readdirSync(join(state, 'jails/sn1')).filter((n) => n.includes('.rollback-')).length,
    0,
    'nothing left aside',
  );
  assert.equal((await jy('start', 'sn1')).code, 0);
  assert.equal(sh('sn1', 'cat /root/keep.txt /etc/app.conf'), 'keep\nv1\n');
  assert.match(sh('sn1', 'cat /etc/passwd'), /^root:/, "the skeleton's file is back");
  assert.equal(sh('sn1', 'ls /root/new.txt 2>/dev/null || echo gone'), 'gone\n');
  assert.equal(sh('sn1', 'ls /etc/sub'), 'b.conf\n', "the remade folder still hides the skeleton's files");
  assert.equal((await jy('stop', 'sn1')).code, 0);
  // the later snapshot still has the deletions: rolling forward works too
  r = await jy('snapshot', 'rollback', 'sn1', list[1]!.name);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(existsSync(join(state, 'jails/sn1/root/root/new.txt')), true);
  // a rollback killed in its renames (a dead process's leftovers): the root moved aside and
  // not yet replaced, a new copy half made; the next snapshot command puts the root back
  const dead = spawnSync('true').pid!;
  const root = join(state, 'jails/sn1/root');
  renameSync(root, `${root}.rollback-old-${dead}`);
  mkdirSync(`${join(state, 'jails/sn1/cow')}.rollback-new-${dead}`);
  r = await jy('snapshot', 'create', 'sn1', 'after-crash');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(existsSync(join(root, 'root/new.txt')), true, 'the root is back in its place');
  assert.deepEqual(
    readdirSync(join(state, 'jails/sn1')).filter((n) => n.includes('.rollback-')),
    [],
    'the leftovers are gone',
  );
  assert.equal((await jy('snapshot', 'remove', 'sn1', 'after-crash')).code, 0);
  for (const s of list) assert.equal((await jy('snapshot', 'remove', 'sn1', s.name)).code, 0);
  r = await jy('snapshot', 'list', 'sn1', '--json');
  assert.deepEqual(JSON.parse(r.stdout), []);
  r = await jy('snapshot', 'remove', 'sn1', 'before');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no snapshot "before"/);
});
