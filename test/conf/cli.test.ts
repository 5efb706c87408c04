import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';

const example = (f: string) => fileURLToPath(new URL(`../../examples/${f}`, import.meta.url));
const run = (...argv: string[]) => runCli(argv);

describe('jailyard conf', () => {
  test('check: ok and exit 0', async () => {
    const r = await run('conf', 'check', example('jail.conf.5.conf'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ok, 2 jails: foo, bar/);
  });
  test('show --json: exactly {"jails": {NAME: {param: value}}} in file order', async () => {
    const r = await run('conf', 'show', example('jail.conf.5.conf'), '--json', 'bar');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      jails: {
        bar: {
          name: 'bar',
          'exec.start': [''],
          'exec.stop': [''],
          'exec.clean': true,
          'mount.devfs': false,
          path: '/',
          persist: true,
        },
      },
    });
    const all = JSON.parse((await run('conf', 'show', example('handbook.conf'), '--json')).stdout) as {
      jails: Record<string, unknown>;
    };
    assert.deepEqual(Object.keys(all.jails), ['classic', 'thinjail', 'vnetjail', 'ubuntu']);
  });
  test('show without --json: name: param = value; lines', async () => {
    const r = await run('conf', 'show', example('jail.conf.5.conf'), 'foo');
    assert.match(r.stdout, /^foo: host\.hostname = foo\.com;$/m);
    assert.match(r.stdout, /^foo: exec\.clean;$/m);
  });
  test('fmt prints canonical text that checks clean', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'jyconf-cli-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const r = await run('conf', 'fmt', example('handbook.conf'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^vnetjail \{$/m);
    writeFileSync(join(dir, 'fmt.conf'), r.stdout);
    const again = await run('conf', 'fmt', join(dir, 'fmt.conf'));
    assert.equal(again.stdout, r.stdout);
  });
  test('import-rc prints jail.conf text', async () => {
    const r = await run('conf', 'import-rc', example('legacy-rc.conf'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^www \{$/m);
    assert.match(r.stdout, /exec\.start = "\/bin\/sh \/etc\/rc";/);
  });
  test('errors: exit 1, the place and caret on stderr', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'jyconf-cli-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'bad.conf'), 'j {\n  pesist;\n}\n');
    const r = await run('conf', 'check', join(dir, 'bad.conf'));
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      /bad\.conf:2:3, jail "j", parameter "pesist": unknown parameter "pesist"; did you mean "persist"\?/,
    );
    assert.match(r.stderr, /\n {4}\^/);
    const missing = await run('conf', 'show', example('jail.conf.5.conf'), 'nope');
    assert.equal(missing.code, 1);
  });
});
