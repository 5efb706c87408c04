// upgrade JAIL --to SKEL@N: the jail's writable config is 3-way merged (old skeleton, new
// skeleton, the jail's copy); conflicts are left for the user; a failed upgrade changes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor } from '../helpers/cli.ts';

let state: string;

const jy = cliFor(() => state);

function tree(dir: string, files: Record<string, string>): string {
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  return dir;
}

before(() => {
  state = mkdtempSync(join(tmpdir(), 'jy-cli-upgrade-'));
});

after(() => {
  rmSync(state, { recursive: true, force: true });
});

test("upgrade merges the jail's config with the new skeleton and repoints the jail", async () => {
  const v1 = tree(join(state, 'src1'), {
    'etc/app.conf': 'one\ntwo\nthree\nfour\nfive\n',
    'etc/motd': 'welcome v1\n',
    'etc/hosts': 'localhost\n',
  });
  const v2 = tree(join(state, 'src2'), {
    'etc/app.conf': 'one\ntwo\nthree\nfour\nFIVE\n',
    'etc/motd': 'welcome v2\n',
    'etc/hosts': 'localhost\n',
    'etc/new.conf': 'new\n',
  });
  let r = await jy('skel', 'create', 'base', '--copy', v1);
  assert.equal(r.code, 0, r.stderr);
  // /etc copied at create (a copy-on-write /etc is upgraded in test/cli/cow.test.ts)
  r = await jy('create', 'up1', 'skeleton=base', 'skeleton.cow=', 'persist');
  assert.equal(r.code, 0, r.stderr);
  const etc = join(state, 'jails/up1/root/etc');
  assert.equal(readFileSync(join(etc, 'app.conf'), 'utf8'), 'one\ntwo\nthree\nfour\nfive\n', 'seeded from version 1');
  // the jail's admin edits two files
  writeFileSync(join(etc, 'app.conf'), 'ONE\ntwo\nthree\nfour\nfive\n');
  writeFileSync(join(etc, 'motd'), 'our own motd\n');

  r = await jy('skel', 'create', 'base', '--copy', v2);
  assert.equal(r.code, 0, r.stderr);

  // a version that does not exist: an error, and the jail is untouched
  r = await jy('upgrade', 'up1', '--to', 'base@9');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /base@9|version 9/);
  assert.equal(readFileSync(join(etc, 'app.conf'), 'utf8'), 'ONE\ntwo\nthree\nfour\nfive\n');

  r = await jy('upgrade', 'up1', '--to', 'base@2', '--json');
  assert.equal(r.code, 0, r.stderr);
  // changed by the jail only in line 1, by the skeleton only in line 5: both kept
  assert.equal(readFileSync(join(etc, 'app.conf'), 'utf8'), 'ONE\ntwo\nthree\nfour\nFIVE\n');
  // new in the skeleton: added
  assert.equal(readFileSync(join(etc, 'new.conf'), 'utf8'), 'new\n');
  // changed by both: the jail's copy stays, the new version is beside it, reported
  assert.equal(readFileSync(join(etc, 'motd'), 'utf8'), 'our own motd\n');
  assert.equal(readFileSync(join(etc, 'motd.jailyard-new'), 'utf8'), 'welcome v2\n');
  assert.match(r.stderr, /conflict in .*motd/);
  const result = JSON.parse(r.stdout);
  assert.equal(result.from, 1);
  assert.equal(result.to, 2);
  assert.deepEqual(
    result.conflicts.map((c: { path: string }) => c.path.replace(/^\/+/, '')),
    ['etc/motd'],
  );

  r = await jy('ls', '-a', '-j', 'up1', 'skeleton');
  assert.equal(r.stdout, 'base@2\n');
  assert.equal(existsSync(join(state, 'jails/up1/root/etc/hosts')), true);
  r = await jy('remove', 'up1');
  assert.equal(r.code, 0, r.stderr);
});
