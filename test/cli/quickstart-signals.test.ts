// Ctrl-C of the quick start while its output goes to a pipe that is gone (`npm start | tee`
// with tee killed by the same Ctrl-C), and a second Ctrl-C during the clean-up: everything
// it started is still taken down, HAProxy included, and nothing is left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshot, assertNoLeaks, processesMentioning } from '../helpers/leaks.ts';

test('quickstart: SIGINT with its stdout and stderr closed, then SIGINT again mid-clean-up, leaves nothing', {
  timeout: 240_000,
}, async () => {
  const before = snapshot();
  const state = mkdtempSync(join(tmpdir(), 'jy-qs-signals-'));
  try {
    const child = spawn(
      process.execPath,
      [join(import.meta.dirname, '../../bin/jailyard.js'), '--state', state, 'quickstart', '--port', '18182'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    let err = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the quick start did not come up: ${err}`)), 200_000);
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('jailyard is up')) {
          clearTimeout(t);
          resolve();
        }
      });
      child.once('exit', () => reject(new Error(`the quick start exited early: ${err}`)));
    });
    assert.ok(processesMentioning(join(state, 'haproxy')).length > 0, 'HAProxy runs');
    // the reader goes away, as `tee` does when the terminal's Ctrl-C reaches it too
    child.stdout!.destroy();
    child.stderr!.destroy();
    child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGINT');
    child.kill('SIGTERM');
    // and more while it finishes, up to its exit: none of them may turn the exit into a kill
    const late = setInterval(() => child.exitCode === null && child.signalCode === null && child.kill('SIGINT'), 20);
    const code = await exited.finally(() => clearInterval(late));
    assert.equal(code, 0, 'the clean-up finished and exited 0');
    assert.deepEqual(readdirSync(join(state, 'jails')), [], 'no jail folder is left');
    assert.deepEqual(processesMentioning(join(state, 'haproxy')), [], 'HAProxy is gone');
    assertNoLeaks(before, state);
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});
