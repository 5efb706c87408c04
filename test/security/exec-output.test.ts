// The operator's output file and `jailyard exec` (red-team run of 2026-12-04, third pass):
// `jailyard exec J CMD > /srv/dump` handed the host file itself to the jail as fd 1, so a
// root-mode jail's root could `chmod 4755 /proc/self/fd/1` (a setuid-root program at the
// operator's path for any local user), chown it, reopen it to read what the operator had
// there, and keep writing to it from a daemon after exec returned. Now a host file or device
// as output is copied through a pipe (native/jy-enter.c); pipes and sockets still cross.
// Both ways into jy-enter: the bin's fast path and the CLI's (JAILYARD_SRC=1). One root-mode
// and one user-namespace jail. Addresses: none.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecurityHost } from './helpers.ts';
import { binArgs } from '../helpers/cli.ts';

/** What the jail's root tries through the descriptors it was given. */
const ATTACK = [
  'echo jail-output',
  'chmod 4755 /proc/self/fd/1 2>/dev/null',
  'chown 65534 /proc/self/fd/1 2>/dev/null',
  // what was in the file before: read back through a new open of the descriptor's file
  'cat /proc/self/fd/1 >&2 2>/dev/null',
  '(sleep 1; echo late-write) &',
].join('; ');

describe("the operator's output file never reaches the jail", () => {
  let h: SecurityHost;
  let dir: string;
  before(async () => {
    h = await SecurityHost.open('execout');
    await h.jail('eo', {});
    await h.jail('eou', { params: ['userns'] });
    dir = mkdtempSync(join(tmpdir(), 'jy-execout-'));
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await h?.close();
  });

  for (const jail of ['eo', 'eou'])
    for (const path of ['fast', 'cli'] as const)
      test(`${jail}, ${path} path: not made setuid, not chowned, not read back, not written after exec`, async () => {
        const file = join(dir, `${jail}-${path}.out`);
        writeFileSync(file, 'operator-secret\n', { mode: 0o644 });
        const fd = openSync(file, 'a');
        let r: ReturnType<typeof spawnSync>;
        try {
          r = spawnSync(process.execPath, binArgs(h.state, 'exec', jail, '/bin/sh', '-c', ATTACK), {
            stdio: ['ignore', fd, 'pipe'],
            timeout: 60_000,
            env: { ...process.env, ...(path === 'cli' ? { JAILYARD_SRC: '1' } : {}) },
            encoding: 'utf8',
          });
        } finally {
          closeSync(fd);
        }
        assert.equal(r.status, 0, String(r.stderr));
        await new Promise((res) => setTimeout(res, 1800));
        const st = statSync(file);
        assert.equal(st.mode & 0o7777, 0o644, 'the jail changed the mode of the host file');
        assert.equal(st.uid, 0, 'the jail changed the owner of the host file');
        assert.equal(readFileSync(file, 'utf8'), 'operator-secret\njail-output\n');
        assert.doesNotMatch(String(r.stderr), /operator-secret/, 'the jail read what was in the file');
      });
});
