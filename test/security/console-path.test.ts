// exec.consolelog inside the jail's own root is refused: the jail controls the folders
// there, so a symlink among them would send the host's log writes anywhere on the host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-consolepath-'));
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
});

after(async () => {
  await jy('remove', 'cp1');
  await jy('remove', 'cp2');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('an exec.consolelog inside the jail root fails the start, naming the parameter, and leaves the jail stopped', {
  timeout: 60_000,
}, async () => {
  const root = join(state, 'jails', 'cp1', 'root');
  const log = join(root, 'tmp', 'console.log');
  assert.equal(
    (await jy('create', 'cp1', 'skeleton=host', 'persist', `exec.consolelog=${log}`, 'exec.prestart=echo hi')).code,
    0,
  );
  const r = await jy('start', 'cp1');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /exec\.consolelog/);
  assert.match(r.stderr, /inside the jail's root/);
  const ls = await jy('ls', '-a', '--json', 'name', 'state');
  assert.match(ls.stdout, /"state":\s*"stopped"/);
  assert.equal(existsSync(log), false, 'nothing was written there');
});

test("a failed start shows the jail's output printable: its escape sequences never reach the operator's terminal", {
  timeout: 60_000,
}, async () => {
  // exec.start runs inside the jail: its output is the jail's to choose
  const hostile = `printf 'A\\033]0;TITLE\\007B\\033[31mRED\\n'; exit 3`;
  assert.equal((await jy('create', 'cp2', 'skeleton=host', 'persist', `exec.start=${hostile}`)).code, 0);
  const r = await jy('start', 'cp2');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /A\\x1b\]0;TITLE\\x07B\\x1b\[31mRED/, r.stderr);
  assert.doesNotMatch(r.stderr, /[\x1b\x07]/, 'no raw ESC or BEL');
});
