// The main job (`npm start` = jailyard quickstart) end to end: skeleton, daemon, 3 thin jails,
// a real HAProxy answering with a jail's env, then everything torn down with nothing left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { binArgs } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks } from '../helpers/leaks.ts';

test('quickstart brings up 3 www jails behind HAProxy and takes everything down again', {
  timeout: 240_000,
}, async (t) => {
  const before = snapshot();
  const state = mkdtempSync(join(tmpdir(), 'jy-quickstart-'));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const { stderr } = await promisify(execFile)(
    process.execPath,
    binArgs(state, 'quickstart', '--port', '18181', '--exit-when-ready'),
    { encoding: 'utf8', timeout: 230_000 },
  );
  assert.match(stderr, /HAProxy answered GET \/env with: version=v1/);
  assert.match(stderr, /jailyard is up: 3 thin jails/);
  assert.match(stderr, /rollout -l app=www --from version=v1 --to version=v2/);
  assert.match(stderr, /everything stopped/);
  assert.deepEqual(readdirSync(join(state, 'jails')), [], 'no jail folder is left');
  assert.equal(existsSync(join(state, 'jailyard.sock')), false, 'the daemon removed its socket');
  assertNoLeaks(before, state);
});
