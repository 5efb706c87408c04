// The CLI loads only the verb a command line names, and bin/jailyard.js runs the compiled
// dist/ only while it was built from the sources as they are: a tree of the bin's own layout
// (stub entry points in src/ and dist/) is put through each case, including a real build by
// scripts/build-dist.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { verbs, verbsFor } from '../../src/cli/commands/index.ts';
import { main } from '../../src/cli/main.ts';
import { captureIO } from '../helpers/cli.ts';

const ROOT = join(import.meta.dirname, '../..');

test('each verb entry names exactly what its file registers', async () => {
  for (const v of verbs) {
    const program = new Command().enablePositionalOptions();
    (await v.load()).register(program, captureIO());
    const registered = program.commands.map((c) => [c.name(), ...c.aliases()]);
    assert.deepEqual(registered, [v.names], `${v.names[0]}`);
  }
});

test('verbsFor: the verb after the global options, else every verb', () => {
  const names = (argv: string[]) => verbsFor(argv).map((v) => v.names[0]);
  assert.deepEqual(names(['ls', '-a']), ['ls']);
  assert.deepEqual(names(['--state', '/x', 'rm', 'j']), ['remove']);
  assert.deepEqual(names(['--state=/x', '--host', 'unix:///s', 'exec', 'j', 'true']), ['exec']);
  // a value that looks like a verb is still the option's value
  assert.deepEqual(names(['--state', 'ls', 'start', 'j']), ['start']);
  const all = verbs.map((v) => v.names[0]);
  for (const argv of [[], ['--help'], ['-h'], ['help', 'ls'], ['nosuchverb'], ['--state', '/x'], ['--bogus', 'ls']])
    assert.deepEqual(names(argv), all, argv.join(' '));
});

test('--help lists every verb; a verb still works and its errors are usage errors', async () => {
  const io = captureIO();
  assert.equal(await main(['--help'], io), 0);
  for (const v of verbs) assert.match(io.stdout, new RegExp(`^  ${v.names.join('\\|')}\\b`, 'm'), v.names[0]);
  const state = mkdtempSync(join(tmpdir(), 'jy-verbs-'));
  try {
    const ls = captureIO();
    assert.equal(await main(['--state', state, 'ls', '-a', '--json'], ls), 0);
    assert.equal(JSON.parse(ls.stdout)['jail-information'].jail.length, 0);
    const bad = captureIO();
    assert.equal(await main(['--state', state, 'nosuchverb'], bad), 2);
    assert.match(bad.stderr, /unknown command 'nosuchverb'/);
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});

/** A tree with the bin and stub entry points that print where they were loaded from. */
function stubTree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'jy-bin-'));
  mkdirSync(join(dir, 'bin'));
  copyFileSync(join(ROOT, 'bin/jailyard.js'), join(dir, 'bin/jailyard.js'));
  writeFileSync(join(dir, 'package.json'), '{"type":"module","version":"9.8.7"}\n');
  writeFileSync(join(dir, 'tsconfig.json'), '{}\n');
  writeFileSync(join(dir, 'tsconfig.build.json'), '{}\n');
  mkdirSync(join(dir, 'src/cli/commands'), { recursive: true });
  const entry = (from: string) =>
    `export async function main(argv${from === 'src' ? ': string[]' : ''}) { console.log('${from}', argv.join(' ')); return 3; }\n`;
  writeFileSync(join(dir, 'src/cli/main.ts'), entry('src'));
  writeFileSync(join(dir, 'src/cli/commands/x.ts'), '');
  mkdirSync(join(dir, 'dist/cli'), { recursive: true });
  writeFileSync(join(dir, 'dist/cli/main.js'), entry('dist'));
  return dir;
}

/** Every file and folder of the tree an hour old, the build stamp a minute old. */
function built(dir: string): void {
  const hourAgo = new Date(Date.now() - 3600_000);
  for (const p of ['tsconfig.json', 'tsconfig.build.json', 'src', 'src/cli', 'src/cli/main.ts', 'src/cli/commands'])
    utimesSync(join(dir, p), hourAgo, hourAgo);
  utimesSync(join(dir, 'src/cli/commands/x.ts'), hourAgo, hourAgo);
  writeFileSync(join(dir, 'dist/.built'), '');
  const minuteAgo = new Date(Date.now() - 60_000);
  utimesSync(join(dir, 'dist/.built'), minuteAgo, minuteAgo);
}

function run(dir: string, args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [join(dir, 'bin/jailyard.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, JAILYARD_SRC: '', ...env },
  });
  return { code: r.status, out: r.stdout + r.stderr };
}

test('the bin runs dist/ only while nothing under src/ or a tsconfig is newer than its stamp', () => {
  const dir = stubTree();
  try {
    assert.deepEqual(run(dir, ['ls', '-a']), { code: 3, out: 'src ls -a\n' }, 'no stamp: src');
    built(dir);
    assert.deepEqual(run(dir, ['ls', '-a']), { code: 3, out: 'dist ls -a\n' });
    assert.equal(run(dir, ['ls'], { JAILYARD_SRC: '1' }).out, 'src ls\n', 'JAILYARD_SRC=1');
    assert.equal(run(dir, ['--version']).out, '9.8.7\n');

    const now = new Date();
    // an edited file, deep down
    utimesSync(join(dir, 'src/cli/commands/x.ts'), now, now);
    assert.equal(run(dir, ['ls']).out, 'src ls\n', 'edited file');
    built(dir);
    // a new file (its folder's mtime changes)
    writeFileSync(join(dir, 'src/cli/commands/y.ts'), '');
    utimesSync(join(dir, 'src/cli/commands/y.ts'), new Date(0), new Date(0));
    assert.equal(run(dir, ['ls']).out, 'src ls\n', 'added file');
    rmSync(join(dir, 'src/cli/commands/y.ts'));
    built(dir);
    utimesSync(join(dir, 'tsconfig.build.json'), now, now);
    assert.equal(run(dir, ['ls']).out, 'src ls\n', 'tsconfig');
    built(dir);
    assert.equal(run(dir, ['ls']).out, 'dist ls\n');
    // an installed package has no sources: dist/ whatever its stamp says
    rmSync(join(dir, 'src'), { recursive: true });
    rmSync(join(dir, 'dist/.built'));
    assert.equal(run(dir, ['ls']).out, 'dist ls\n', 'package');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('jy-ctl makes the same check before it hands a command to the bin, which takes its word ($JAILYARD_DIST_BUILT)', () => {
  const dir = stubTree();
  const state = mkdtempSync(join(tmpdir(), 'jy-bin-state-'));
  try {
    // the entries say which tree ran and whether the word reached them (the bin removes it)
    const entry = (from: string) =>
      `export async function main() { console.log('${from}', process.env.JAILYARD_DIST_BUILT ?? '-'); return 3; }\n`;
    writeFileSync(join(dir, 'src/cli/main.ts'), entry('src'));
    writeFileSync(join(dir, 'dist/cli/main.js'), entry('dist'));
    mkdirSync(join(dir, 'native/build'), { recursive: true });
    copyFileSync(join(ROOT, 'native/build/jy-ctl'), join(dir, 'native/build/jy-ctl'));
    // the "node" jy-ctl hands the command to says what jy-ctl told it
    mkdirSync(join(dir, 'node_modules/.bin'), { recursive: true });
    writeFileSync(
      join(dir, 'node_modules/.bin/node'),
      `#!/bin/sh\necho "told=\${JAILYARD_DIST_BUILT-}" >&2\nexec ${JSON.stringify(process.execPath)} "$@"\n`,
      { mode: 0o755 },
    );
    /** `ls -a` as a shell runs the bin: its sh line, jy-ctl (no daemon serves `state`), node. */
    const viaCtl = (env: NodeJS.ProcessEnv = {}) => {
      const r = spawnSync(join(dir, 'bin/jailyard.js'), ['ls', '-a'], {
        encoding: 'utf8',
        env: { PATH: '/usr/bin:/bin', JAILYARD_STATE: state, ...env },
      });
      assert.equal(r.status, 3, r.stderr);
      return { told: /^told=(.*)$/m.exec(r.stderr)?.[1], out: r.stdout };
    };
    const stampNs = () => String(statSync(join(dir, 'dist/.built'), { bigint: true }).mtimeNs);

    built(dir);
    assert.deepEqual(viaCtl(), { told: stampNs(), out: 'dist -\n' }, 'current: told, and not passed on');
    const now = new Date();
    utimesSync(join(dir, 'src/cli/commands/x.ts'), now, now);
    assert.deepEqual(viaCtl(), { told: '', out: 'src -\n' }, 'edited file');
    // a caller's own word is not jy-ctl's
    assert.deepEqual(viaCtl({ JAILYARD_DIST_BUILT: stampNs() }), { told: '', out: 'src -\n' }, 'caller');
    built(dir);
    writeFileSync(join(dir, 'src/cli/commands/y.ts'), '');
    utimesSync(join(dir, 'src/cli/commands/y.ts'), new Date(0), new Date(0));
    assert.deepEqual(viaCtl(), { told: '', out: 'src -\n' }, 'added file');
    rmSync(join(dir, 'src/cli/commands/y.ts'));
    built(dir);
    utimesSync(join(dir, 'tsconfig.json'), now, now);
    assert.deepEqual(viaCtl(), { told: '', out: 'src -\n' }, 'tsconfig');
    built(dir);
    assert.equal(viaCtl().out, 'dist -\n');

    // the bin takes the word only for the stamp's mtime as it is
    utimesSync(join(dir, 'src/cli/commands/x.ts'), now, now);
    const direct = (told: string) => run(dir, ['ls'], { JAILYARD_DIST_BUILT: told }).out;
    assert.equal(direct(stampNs()), 'dist -\n', 'told: no walk of its own');
    assert.equal(direct(String(BigInt(stampNs()) - 1n)), 'src -\n', 'another stamp');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  }
});

test('run as a program, the bin starts node_modules/.bin/node on itself, also through a symlink', () => {
  const dir = stubTree();
  try {
    mkdirSync(join(dir, 'node_modules/.bin'), { recursive: true });
    // a "node" that says it was used, then runs this test's Node 24
    writeFileSync(
      join(dir, 'node_modules/.bin/node'),
      `#!/bin/sh\necho local-node >&2\nexec ${JSON.stringify(process.execPath)} "$@"\n`,
      { mode: 0o755 },
    );
    symlinkSync(join(dir, 'bin/jailyard.js'), join(dir, 'jy-link'));
    // the machine's own node may be on PATH: the message says which one ran
    const env = { PATH: '/usr/bin:/bin', JAILYARD_SRC: '1' };
    for (const cmd of [join(dir, 'bin/jailyard.js'), join(dir, 'jy-link')]) {
      const r = spawnSync(cmd, ['exec', 'j', 'a b'], { encoding: 'utf8', env });
      assert.equal(r.status, 3, `${cmd}: ${r.stderr}`);
      assert.equal(r.stderr, 'local-node\n');
      assert.equal(r.stdout, 'src exec j a b\n');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an older node hands over to node_modules/.bin/node', { skip: !hasOldNode() }, () => {
  const r = spawnSync('/usr/bin/node', [join(ROOT, 'bin/jailyard.js'), '--version'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
});

function hasOldNode(): boolean {
  const r = spawnSync('/usr/bin/node', ['-p', 'process.versions.node'], { encoding: 'utf8' });
  return r.status === 0 && Number(r.stdout.split('.')[0]) < 24;
}

test('scripts/build-dist.sh: stamp before the compiler, nothing to do while current, rebuilt after an edit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jy-build-'));
  try {
    mkdirSync(join(dir, 'scripts'));
    mkdirSync(join(dir, 'src'));
    copyFileSync(join(ROOT, 'scripts/build-dist.sh'), join(dir, 'scripts/build-dist.sh'));
    writeFileSync(join(dir, 'tsconfig.json'), '{}\n');
    writeFileSync(join(dir, 'tsconfig.build.json'), '{}\n');
    // a stand-in for tsc (the script's logic is under test, not TypeScript's): copies
    // src/*.ts to OUTDIR/*.js, records when it read them, fails on a source saying "error"
    mkdirSync(join(dir, 'node_modules/.bin'), { recursive: true });
    mkdirSync(join(dir, 'node_modules/typescript/bin'), { recursive: true });
    symlinkSync(process.execPath, join(dir, 'node_modules/.bin/node'));
    writeFileSync(
      join(dir, 'node_modules/typescript/bin/tsc'),
      `const fs = require('node:fs');
const out = process.argv[process.argv.indexOf('--outDir') + 1];
let failed = false;
for (const f of fs.readdirSync('src')) {
  const text = fs.readFileSync('src/' + f, 'utf8');
  failed ||= text.includes('error');
  fs.writeFileSync(out + '/' + f.replace(/\\.ts$/, '.js'), text);
}
fs.writeFileSync(out + '/read-at', String(Date.now()));
process.exit(failed ? 2 : 0);
`,
    );
    const build = () => execFileSync('bash', ['scripts/build-dist.sh'], { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
    const output = () => readFileSync(join(dir, 'dist/a.js'), 'utf8');
    const stamp = () => statSync(join(dir, 'dist/.built')).mtimeMs;
    writeFileSync(join(dir, 'src/a.ts'), 'one');
    build();
    assert.equal(output(), 'one');
    assert.ok(
      stamp() <= Number(readFileSync(join(dir, 'dist/read-at'), 'utf8')),
      'stamped before the sources were read',
    );
    const first = stamp();
    build();
    assert.equal(stamp(), first, 'current: not rebuilt');
    writeFileSync(join(dir, 'src/a.ts'), 'two');
    build();
    assert.ok(stamp() > first);
    assert.equal(output(), 'two');
    // a failed build keeps the last good tree and its stamp, which the edit is newer than
    const second = stamp();
    writeFileSync(join(dir, 'src/a.ts'), 'an error');
    assert.throws(build);
    assert.equal(output(), 'two');
    assert.equal(stamp(), second);
    writeFileSync(join(dir, 'src/a.ts'), 'three');
    build();
    assert.equal(output(), 'three');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
