// The real CommandRunner is plain Node process spawning, so it runs (and is tested) here for real.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createExecRunner } from '../../../src/platform/freebsd/runner.ts';

const MARKER = '31.4159'; // an unusual sleep duration: finds our processes in /proc

/** These tests make processes only (no mounts, netns, cgroups), so only processes are checked:
 * the full snapshot()/assertNoLeaks() also sees other engineers' concurrent cgroups. */
function assertNoStrayProcesses(marker: string): void {
  const stray = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(marker);
      } catch {
        return false;
      }
    });
  assert.deepEqual(stray, [], `processes with ${marker} left behind`);
}

describe('FreeBSD driver: the real command runner (runs on this machine)', () => {
  test('argument arrays, clean environment, exit codes, a missing program is 127', async () => {
    const runner = createExecRunner();
    const r = await runner.run(
      ['/bin/sh', '-c', 'printf "%s|%s" "$1" "$FOO"; echo err >&2; exit 3', 'sh', 'a b; $(reboot)'],
      { env: { FOO: 'bar' } },
    );
    assert.deepEqual(r, { code: 3, signal: null, stdout: 'a b; $(reboot)|bar', stderr: 'err\n' });
    const env = await runner.run(['/usr/bin/env'], { env: { ONLY: '1' } });
    assert.equal(env.stdout, 'ONLY=1\n');
    const missing = await runner.run(['/nonexistent/jyfb-tool']);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /ENOENT/);
    const sync = runner.runSync(['/bin/echo', 'hi']);
    assert.deepEqual(sync, { code: 0, signal: null, stdout: 'hi\n', stderr: '' });
  });

  test('timeout: SIGTERM after timeoutMs', async () => {
    const r = await createExecRunner().run(['/bin/sleep', MARKER], { timeoutMs: 150 });
    assert.equal(r.signal, 'SIGTERM');
    assertNoStrayProcesses(MARKER);
  });

  test('consoleLog: output appended to the file; resolves at exit although a daemon keeps the file open', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'jyfb-run-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const log = join(dir, 'console.log');
    const runner = createExecRunner();
    const r = await runner.run(['/bin/sh', '-c', `/bin/sleep ${MARKER} & echo "daemon $!"`], { consoleLog: log });
    assert.equal(r.code, 0);
    const text = readFileSync(log, 'utf8');
    const pid = Number(/daemon (\d+)/.exec(text)?.[1]);
    assert.ok(pid > 0);
    process.kill(pid, 'SIGKILL');
    await new Promise((res) => setTimeout(res, 100));
    await runner.run(['/bin/echo', 'second'], { consoleLog: log });
    assert.match(readFileSync(log, 'utf8'), /daemon \d+\nsecond\n$/);
    assertNoStrayProcesses(MARKER);
  });
});
