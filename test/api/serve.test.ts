import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { createRemoteService, watch } from '../../src/api/client.ts';
import { tempState } from './helpers.ts';
import { binArgs } from '../helpers/cli.ts';
import { assertNoLeaks, snapshot } from '../helpers/leaks.ts';

test('jailyard serve: socket 0600 under --state, answers, SIGTERM ends watch streams and exits 0', async () => {
  const before = snapshot();
  const state = tempState('jy-api-serve-');
  const child = spawn(process.execPath, binArgs(state.dir, 'serve', '--bookmark-interval', '0.2'), {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b) => (stderr += b));
  try {
    const sock = join(state.dir, 'jailyard.sock');
    const t0 = Date.now();
    while (!existsSync(sock)) {
      if (Date.now() - t0 > 20_000 || child.exitCode !== null) throw new Error(`serve did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(statSync(sock).mode & 0o777, 0o600);
    const url = `unix://${sock}`;
    assert.deepEqual(await createRemoteService(url).list(), []);
    // a watch stream: SIGTERM must end it (so the daemon can exit), not hang
    const seen: string[] = [];
    const ac = new AbortController();
    const stream = (async () => {
      for await (const e of watch(url, { bookmarks: true, signal: ac.signal, retryMs: 5000 })) {
        seen.push(e.type);
        if (seen.length === 2) child.kill('SIGTERM');
      }
    })();
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, stderr);
    ac.abort();
    await stream;
    assert.ok(seen.length >= 2);
    assert.equal(existsSync(sock), false, 'socket removed at exit');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  // the state folder as the marker: only this test's objects count (others run tests too)
  assertNoLeaks(before, state.dir);
  state.cleanup();
});
