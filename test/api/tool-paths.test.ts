// What the in-jail jail(8), jls(8) and sysctl get back names no host path: not the state
// folder, not a host process's /proc/PID/root (red-team run 2: "step mount: EEXIST: ...
// mkdir '/proc/18013/root/STATE/jails/rt2a.s8/nest-root/.jailyard'" and "jailyard stage:
// STATE/jails/rt2u.s8/nest-root/.jailyard is not a directory" reached the jail). Paths in
// the calling jail's tree are shown as it sees them. No jail needed: a fake front and service.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { runTool, type ToolFront, type ToolContext } from '../../src/api/guest-tools.ts';
import { HIDDEN_PATH, hideHostPaths, hostPathMap, installPaths } from '../../src/api/tool-paths.ts';
import { JailyardError } from '../../src/errors.ts';
import { jailStateDir, nestedRootDir } from '../../src/layout.ts';
import { nestedRoot } from '../../src/platform/linux/mounts.ts';
import type { JailService } from '../../src/runtime/types.ts';
import type { JailRecord } from '../../src/store/types.ts';

const STATE = '/tmp/jy-rt2-state';
const ROOT = join(STATE, 'jails', 'rt2a', 'root');
const roots: Record<string, string> = { rt2a: ROOT, 'rt2a.s8': join(ROOT, 'srv/s8'), other: '/srv/other' };

function fakeService(names: string[], listFails = false): JailService {
  const record = (name: string) => ({ name, params: {} }) as unknown as JailRecord;
  return {
    list: async () => {
      if (listFails) throw new Error('store gone');
      return names.map(record);
    },
    get: async (name: string) => record(name),
  } as unknown as JailService;
}

/** A front whose every tool writes `out` and `err`, then throws `error` if given. */
function front(out: string, err: string, error?: Error): ToolFront {
  const run = async (_argv: string[], io: { stdout(t: string): void; stderr(t: string): void }) => {
    io.stdout(out);
    io.stderr(err);
    if (error) throw error;
    return 0;
  };
  return { jail: run, jls: run, sysctl: run };
}

function context(f: ToolFront, opts: { scope?: boolean; listFails?: boolean; maxOutput?: number } = {}): ToolContext {
  return {
    front: f,
    service: fakeService(['rt2a', 'rt2a.s8', 'other'], opts.listFails),
    ...(opts.scope === false ? {} : { scope: { rootOf: (n: string) => roots[n], stateDir: STATE } }),
    ...(opts.maxOutput ? { limits: { maxOutput: opts.maxOutput } } : {}),
  };
}

const leaks = (text: string): string[] =>
  [STATE, '/tmp/jy-rt2', '/proc/123', '/proc/18013', 'rt2a.s8/nest-root'].filter((s) => text.includes(s));

test("layout's nestedRootDir is where the Linux driver pins a nested jail's root", () => {
  assert.equal(nestedRootDir(STATE, 'rt2a.s8'), nestedRoot(jailStateDir(STATE, 'rt2a.s8')));
});

test("a thrown error and the front's output name no host path; paths in the jail's tree are its own", async () => {
  const nest = nestedRootDir(STATE, 'rt2a.s8');
  const error = new JailyardError(
    'JY_ERR_MOUNT',
    `step mount: EEXIST: file already exists, mkdir '/proc/18013/root${nest}/.jailyard'`,
    { jail: 'rt2a.s8', param: 'path' },
  );
  const a = await runTool(
    context(
      front(
        `s8: created\nroot ${ROOT}/srv/s8/etc, guest ${jailStateDir(STATE, 'rt2a')}/guest/env\n`,
        `jailyard stage: ${nest}/.jailyard is not a directory\nlog: /proc/123/root${jailStateDir(STATE, 'rt2a.s8')}/console.log\n`,
        error,
      ),
    ),
    'jls',
    [],
    'rt2a',
  );
  const text = a.stdout + a.stderr;
  assert.deepEqual(leaks(text), [], text);
  assert.equal(a.status, 1);
  assert.match(a.stdout, /^s8: created\nroot \/srv\/s8\/etc, guest \/run\/jailyard\/env\n$/);
  assert.match(a.stderr, /^jailyard stage: \/srv\/s8\/\.jailyard is not a directory$/m);
  assert.match(a.stderr, new RegExp(`^log: ${HIDDEN_PATH}$`, 'm'));
  // the step and the reason stay
  assert.match(a.stderr, /^jls: step mount: EEXIST: file already exists, mkdir '\/srv\/s8\/\.jailyard'$/m);
});

test('without the jail list the state folder is hidden; without the scope the /proc/PID/root prefix still goes', async () => {
  for (const opts of [{ scope: false }, { listFails: true }]) {
    const nest = nestedRootDir(STATE, 'rt2a.s8');
    const a = await runTool(
      context(front('', `mkdir '/proc/123/root${nest}/.jailyard'\n`), opts),
      'jail',
      ['-r', 's8'],
      'rt2a',
    );
    // without the state folder known (no scope) the /proc prefix still goes; the folder is
    // only hidden when known
    assert.ok(!a.stderr.includes('/proc/123'), a.stderr);
    if (opts.listFails) assert.equal(a.stderr, `mkdir '${HIDDEN_PATH}'\n`);
  }
});

test('a path the output limit cuts in two is hidden all the same', async () => {
  const max = 200;
  // the path crosses the limit; the second crosses the slack kept past it too
  for (const pad of [max - 5, max + 8192 - 10]) {
    const a = await runTool(
      context(front(`${'x'.repeat(pad)} ${STATE}/jails/rt2a/console.log\n`, ''), { maxOutput: max }),
      'jls',
      [],
      'rt2a',
    );
    assert.deepEqual(leaks(a.stdout), [], a.stdout.slice(-80));
    assert.ok(!a.stdout.includes('/tmp'), a.stdout.slice(-80));
    assert.match(a.stdout, /\[jailyard: output cut\]\n$/);
    assert.ok(Buffer.byteLength(a.stdout) <= max + 30, 'cut to the limit');
  }
});

test('hideHostPaths leaves paths outside the state folder and the roots alone', () => {
  const map = hostPathMap({ caller: 'rt2a', descendants: ['rt2a.s8'], rootOf: (n) => roots[n], stateDir: STATE });
  assert.equal(hideHostPaths('/etc/passwd 198.51.100.5/24 http://x/y', map), '/etc/passwd 198.51.100.5/24 http://x/y');
  assert.equal(hideHostPaths(`${ROOT} ${ROOT}/ ${STATE}2/x`, map), `/ / ${STATE}2/x`);
  assert.equal(hideHostPaths(`"${STATE}"`, map), `"${HIDDEN_PATH}"`);
  const spaced = hostPathMap({ caller: 'a', descendants: [], stateDir: '/tmp/my state' });
  assert.equal(hideHostPaths("mkdir '/tmp/my state/jails/a/x'", spaced), `mkdir '${HIDDEN_PATH}/jails/a/x'`);
});

// jailyard's install folder and node's program: where the package, its native helpers and
// node live on the host (a missing helper, a failed spawn, a module not found, a stack's
// file:// URL). Before: "jail: step create: missing /work/.../native/build/jy-log: run npm
// install" reached a jail whose jail -c started a child while a helper was missing.
const PKG = join(import.meta.dirname, '../..');
const NODE_MODULES = realpathSync(join(PKG, 'node_modules'));
const installLeaks = (text: string): string[] =>
  [PKG, NODE_MODULES, process.execPath, realpathSync(process.execPath)].filter((s) => text.includes(s));

test("the install folder, its node_modules' real folder and node's program are hidden, the message kept", async () => {
  assert.ok(installPaths().includes(PKG), `${installPaths().join(', ')} has the package folder ${PKG}`);
  const error = new JailyardError(
    'JY_ERR_PLATFORM',
    `missing ${PKG}/native/build/jy-stage, ${PKG}/native/build/jy-log: run npm install (or bash scripts/build-native.sh)`,
    { step: 'create' },
  );
  const err = [
    `jail: spawn ${PKG}/native/build/jy-enter EACCES`,
    `jail: spawn ${process.execPath} ENOENT`,
    `jail: Cannot find module '${NODE_MODULES}/tar/dist/esm/index.js' imported from ${PKG}/dist/bundle/main.mjs`,
    `    at step (file://${PKG}/src/platform/linux/create.ts:12:3)`,
    '',
  ].join('\n');
  for (const opts of [{}, { scope: false }]) {
    const a = await runTool(context(front('', err, error), opts), 'jls', [], 'rt2a');
    const text = a.stdout + a.stderr;
    assert.deepEqual(installLeaks(text), [], text);
    assert.match(a.stderr, new RegExp(`^jail: spawn ${HIDDEN_PATH} EACCES$`, 'm'));
    assert.match(a.stderr, new RegExp(`^jail: spawn ${HIDDEN_PATH} ENOENT$`, 'm'));
    assert.match(a.stderr, new RegExp(`^jail: Cannot find module '${HIDDEN_PATH}' imported from ${HIDDEN_PATH}$`, 'm'));
    assert.match(a.stderr, new RegExp(`at step \\(file:${HIDDEN_PATH}:12:3\\)$`, 'm'));
    assert.match(
      a.stderr,
      new RegExp(
        `^jls: missing ${HIDDEN_PATH}, ${HIDDEN_PATH}: run npm install \\(or bash scripts/build-native.sh\\)$`,
        'm',
      ),
    );
  }
});

test("a path that only starts like the install folder's is left alone; the folder itself is hidden", () => {
  const map = hostPathMap({ caller: 'rt2a', descendants: [], rootOf: (n) => roots[n], stateDir: STATE });
  assert.equal(hideHostPaths(`${PKG}x/y ${PKG}-old`, map), `${PKG}x/y ${PKG}-old`);
  assert.equal(hideHostPaths(`${PKG}`, map), HIDDEN_PATH);
});
