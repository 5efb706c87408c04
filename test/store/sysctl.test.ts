// jailyard sysctl: the CLI verb over the store's settings (run as root here; the non-root
// case runs the CLI in a child process with a non-root uid).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { openStore } from '../../src/store/sqlite.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'jy-sysctl-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const cli = (...args: string[]) => runCli(['--state', join(dir, 'state'), 'sysctl', ...args]);

describe('jailyard sysctl', () => {
  test('lists every setting like sysctl(8)', async () => {
    const r = await cli();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'meta_maxbufsize: 4096\nmeta_hierarchical: 0\nevent_history: 100000\n');
  });

  test('one setting, -n, FreeBSD names, --json, -d', async () => {
    assert.equal((await cli('meta_maxbufsize')).stdout, 'meta_maxbufsize: 4096\n');
    assert.equal((await cli('-n', 'security.jail.meta_maxbufsize')).stdout, '4096\n');
    assert.deepEqual(JSON.parse((await cli('--json', 'meta_hierarchical')).stdout), { meta_hierarchical: 0 });
    assert.match((await cli('-d', 'meta_maxbufsize')).stdout, /^meta_maxbufsize: Maximum buffer size/);
  });

  test('sets as root and prints old -> new; the store sees it', async () => {
    assert.equal(process.getuid?.(), 0, 'this test runs as root');
    const r = await cli('meta_maxbufsize=8192', 'meta_hierarchical=1');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'meta_maxbufsize: 4096 -> 8192\nmeta_hierarchical: 0 -> 1\n');
    const s = openStore(join(dir, 'state'));
    assert.equal(s.getSettings().meta_maxbufsize, 8192);
    s.close();
  });

  test('unknown names and bad values fail with the setting named, nothing set', async () => {
    const a = await cli('nope');
    assert.equal(a.code, 1);
    assert.match(a.stderr, /parameter "nope": unknown setting/);
    const b = await cli('event_history=10', 'meta_hierarchical=7');
    assert.equal(b.code, 1);
    assert.match(b.stderr, /parameter "meta_hierarchical": invalid value "7"/);
    assert.equal((await cli('-n', 'event_history')).stdout, '100000\n');
  });

  test('writes need root: JY_ERR_NOT_ROOT for another uid (child process)', () => {
    chmodSync(dir, 0o755);
    const script = `
      process.setgid(65534); process.setuid(65534);
      const { main } = await import(${JSON.stringify(new URL('../../src/cli/main.ts', import.meta.url).pathname)});
      let err = '';
      const code = await main(['--state', ${JSON.stringify(join(dir, 'state'))}, 'sysctl', 'meta_maxbufsize=1'], { out() {}, err: (t) => (err += t) });
      console.log(JSON.stringify({ code, err }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    const res = JSON.parse(r.stdout) as { code: number; err: string };
    assert.equal(res.code, 1);
    assert.match(res.err, /setting a sysctl needs root/);
  });
});
