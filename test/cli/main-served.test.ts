// main() run by the daemon for a client (src/cli/host-front.ts: `jailyard ls` for jy-ctl)
// shares the daemon's process: the daemon's own exit status (serve's, or a signal's that
// arrived while the request ran) must be what it was once the client's ls is answered.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CliIO } from '../../src/cli/context.ts';
import type { JailReader } from '../../src/cli/jails.ts';
import { main } from '../../src/cli/main.ts';

test("a served ls leaves the daemon's process.exitCode as it found it", async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'jy-main-served-'));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const none: JailReader = {
    list: async () => [],
    get: async (ref) => {
      throw new Error(`no jail ${ref}`);
    },
  };
  const out: string[] = [];
  const io: CliIO = { out: (s) => void out.push(s), err: (s) => void out.push(s) };
  process.exitCode = 143;
  try {
    const code = await main(['--state', state, 'ls'], io, none);
    assert.equal(code, 0, out.join(''));
    assert.equal(process.exitCode, 143);
  } finally {
    process.exitCode = undefined;
  }
  // the CLI's own run still owns it: cleared after
  process.exitCode = 5;
  await main(['--state', state, 'ls', '--json'], io);
  assert.equal(process.exitCode, undefined);
});
