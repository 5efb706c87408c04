// The bundled CLI (scripts/bundle-cli.ts; scripts/build-dist.sh builds it into dist/bundle/):
// the bin runs it while dist/ is current (tsc's dist/cli/ when there is no bundle); a bundle
// built from the sources as they are runs a jail's whole life, so the paths its modules take
// from import.meta.url (native helpers, defaults, package.json) still lead where the sources'
// do; and `ls` loads none of the Node modules only other verbs need.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
  copyFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { assertNoLeaks, snapshot } from '../helpers/leaks.ts';

const ROOT = join(import.meta.dirname, '../..');
const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups.reverse()) c();
});

test('the bin runs dist/bundle/main.mjs while dist/ is current, else dist/cli/main.js', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jy-bin-bundle-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'bin'));
  copyFileSync(join(ROOT, 'bin/jailyard.js'), join(dir, 'bin/jailyard.js'));
  writeFileSync(join(dir, 'package.json'), '{"type":"module","version":"1.2.3"}\n');
  writeFileSync(join(dir, 'tsconfig.json'), '{}\n');
  writeFileSync(join(dir, 'tsconfig.build.json'), '{}\n');
  mkdirSync(join(dir, 'src/cli'), { recursive: true });
  mkdirSync(join(dir, 'dist/cli'), { recursive: true });
  mkdirSync(join(dir, 'dist/bundle'), { recursive: true });
  const entry = (from: string) =>
    `export async function main(argv) { console.log('${from}', argv.join(' ')); return 4; }\n`;
  writeFileSync(join(dir, 'src/cli/main.ts'), entry('src'));
  writeFileSync(join(dir, 'dist/cli/main.js'), entry('dist'));
  writeFileSync(join(dir, 'dist/bundle/main.mjs'), entry('bundle'));
  const hourAgo = new Date(Date.now() - 3600_000);
  for (const p of ['tsconfig.json', 'tsconfig.build.json', 'src', 'src/cli', 'src/cli/main.ts'])
    utimesSync(join(dir, p), hourAgo, hourAgo);
  writeFileSync(join(dir, 'dist/.built'), '');
  const run = (env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [join(dir, 'bin/jailyard.js'), 'ls', '-a'], {
      encoding: 'utf8',
      env: { ...process.env, JAILYARD_SRC: '', ...env },
    });
    return { code: r.status, out: r.stdout + r.stderr };
  };
  assert.deepEqual(run(), { code: 4, out: 'bundle ls -a\n' });
  assert.deepEqual(run({ JAILYARD_SRC: '1' }), { code: 4, out: 'src ls -a\n' });
  rmSync(join(dir, 'dist/bundle'), { recursive: true });
  assert.deepEqual(run(), { code: 4, out: 'dist ls -a\n' }, 'no bundle');
  utimesSync(join(dir, 'src/cli/main.ts'), new Date(), new Date());
  assert.deepEqual(run(), { code: 4, out: 'src ls -a\n' }, 'stale');
});

/** A bundle of the sources as they are, two levels below the root like dist/bundle/. */
function buildBundle(): string {
  const top = mkdtempSync(join(ROOT, '.jy-bundle-test-'));
  cleanups.push(() => rmSync(top, { recursive: true, force: true }));
  const out = join(top, 'bundle');
  execFileSync(process.execPath, [join(ROOT, 'scripts/bundle-cli.ts'), out], { stdio: 'pipe' });
  return join(out, 'main.mjs');
}

let bundle: string | undefined;
const bundled = () => (bundle ??= buildBundle());

/** Runs the bundle's main() in a process of its own; `loaded`: which of `watch` Node loaded. */
function runBundle(
  args: string[],
  watch: string[] = [],
): { code: number | null; stdout: string; stderr: string; loaded: string[] } {
  const code = `
    process.on('exit', () => {
      const loaded = ${JSON.stringify(watch)}.filter((m) => process.moduleLoadList.includes('NativeModule ' + m));
      process.stderr.write('\\nLOADED ' + JSON.stringify(loaded) + '\\n');
    });
    const { main } = await import(${JSON.stringify(pathToFileURL(bundled()).href)});
    process.exitCode = await main(process.argv.slice(1));`;
  const env: Record<string, string | undefined> = { ...process.env };
  delete env.JAILYARD_HOST;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, '--', ...args], {
    encoding: 'utf8',
    env,
    timeout: 60_000,
  });
  const at = r.stderr.lastIndexOf('\nLOADED ');
  assert.ok(at >= 0, `the bundle's process did not end normally: ${r.stderr}`);
  return {
    code: r.status,
    stdout: r.stdout,
    stderr: r.stderr.slice(0, at),
    loaded: JSON.parse(r.stderr.slice(at + '\nLOADED '.length)) as string[],
  };
}

test('the bundle names its paths as the sources do: every import.meta.url it rewrote is a source file', () => {
  const dir = join(bundled(), '..');
  let rewritten = 0;
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.mjs'))) {
    const text = readFileSync(join(dir, f), 'utf8');
    // esbuild's stand-in for a require() it could not bundle throws when called
    assert.doesNotMatch(text, /__require\(/, `${f}: a require() the bundle cannot serve`);
    for (const m of text.matchAll(/new URL\("\.\.\/\.\.\/(src\/[^"]+)",import\.meta\.url\)/g)) {
      rewritten++;
      assert.ok(readFileSync(join(ROOT, m[1]!), 'utf8').includes('import.meta.url'), `${f}: ${m[1]}`);
    }
  }
  // native.ts, console.ts, peer.ts, defaults.ts, main.ts, quickstart.ts
  assert.ok(rewritten >= 6, `${rewritten} rewritten`);
});

test('a jail through the bundle: create, start, exec, ls, stop, remove; ls loads no worker, child process or fs/promises', () => {
  const state = mkdtempSync(join(tmpdir(), 'jy-bundle-'));
  const before = snapshot();
  try {
    const jy = (...args: string[]) => runBundle(['--state', state, ...args]);
    const ok = (r: ReturnType<typeof jy>) => {
      assert.equal(r.code, 0, r.stderr);
      return r;
    };
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(ok(jy('--version')).stdout, `${pkg.version}\n`);
    ok(jy('skel', 'create', 'host', '--from', '/'));
    ok(jy('create', 'bj', 'skeleton=host', 'persist', 'meta.test=bundle'));
    ok(jy('start', 'bj'));
    assert.equal(ok(jy('exec', 'bj', 'hostname')).stdout, 'bj\n');
    const ls = runBundle(
      ['--state', state, 'ls', '-h', 'name', 'state', 'meta.test'],
      ['worker_threads', 'child_process', 'internal/fs/promises', 'internal/readline/interface'],
    );
    assert.equal(ls.code, 0, ls.stderr);
    assert.equal(ls.stdout, 'name state meta.test\nbj running bundle\n');
    assert.deepEqual(ls.loaded, []);
    ok(jy('stop', 'bj'));
    ok(jy('remove', 'bj'));
  } finally {
    spawnSync(process.execPath, [join(ROOT, 'bin/jailyard.js'), '--state', state, 'remove', 'bj'], { stdio: 'ignore' });
    assertNoLeaks(before, state);
    rmSync(state, { recursive: true, force: true });
  }
});
