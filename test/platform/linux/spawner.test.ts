// jy-spawner (native/jy-spawner.c, src/platform/linux/spawner.ts): the driver's programs are
// forked by a small helper instead of node. Real processes: output, exit codes and signals
// come back in order, a program that cannot run is an errno error, output can go to a file,
// a detached program has a session of its own and none of our descriptors, and node exits
// while such a program lives on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spawner, type SpawnedProcess } from '../../../src/platform/linux/spawner.ts';
import { JY_SPAWNER } from '../../../src/platform/linux/native.ts';
import { minimalEnv } from '../../../src/platform/linux/host-env.ts';
import { run, pidAlive, waitFor } from '../../../src/platform/linux/proc.ts';

const helper = new Spawner(JY_SPAWNER);

function collect(
  child: SpawnedProcess,
): Promise<{ out: string; err: string; code: number | null; signal: string | null }> {
  let out = '';
  let err = '';
  child.on('stdout', (d: Buffer) => (out += d.toString()));
  child.on('stderr', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) =>
    child.on('exit', (code: number | null, signal: string | null) => resolve({ out, err, code, signal })),
  );
}

test('output, exit code and signal of each program, all output before its exit', async () => {
  const a = helper.spawn({
    argv: ['sh', '-c', 'echo out; echo err >&2; seq 1 20000 | tail -1; exit 3'],
    env: minimalEnv(),
    cwd: '/tmp',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const b = helper.spawn({
    argv: ['sh', '-c', 'kill -9 $$'],
    env: minimalEnv(),
    cwd: '/',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [ra, rb] = await Promise.all([collect(a), collect(b)]);
  assert.deepEqual(ra, { out: 'out\n20000\n', err: 'err\n', code: 3, signal: null });
  assert.deepEqual([rb.code, rb.signal], [null, 'SIGKILL']);
  assert.ok(a.pid > 0 && b.pid > 0 && a.pid !== b.pid);
});

test('a program that cannot run: started rejects with the errno, nothing else follows', async () => {
  const c = helper.spawn({
    argv: ['/nonexistent/jy-program'],
    env: minimalEnv(),
    cwd: '/',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  let exited = false;
  c.on('exit', () => (exited = true));
  await assert.rejects(c.started, (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  const bad = helper.spawn({
    argv: ['true'],
    env: minimalEnv(),
    cwd: '/nonexistent-dir',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  await assert.rejects(bad.started, (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  assert.equal(exited, false);
  // run() reports it like node's spawn: a rejection
  await assert.rejects(run(['/nonexistent/jy-program']), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
});

test('output appended to a file; a detached program leads a session of its own and holds none of our descriptors', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jy-spawner-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'log');
  const c = helper.spawn({
    argv: ['sh', '-c', 'echo one; ls /proc/self/fd >&2; cat /proc/self/stat >&2'],
    env: minimalEnv(),
    cwd: '/',
    detached: true,
    stdout: { file: log },
    stderr: { file: log },
  });
  const r = await collect(c);
  assert.equal(r.code, 0);
  const [first, ...rest] = readFileSync(log, 'utf8').trim().split('\n');
  assert.equal(first, 'one');
  const stat = rest.pop()!;
  // fds of `ls`: 0, 1, 2 and the directory it reads
  assert.deepEqual(
    rest.map(Number).filter((fd) => fd > 3),
    [],
    `descriptors leaked into the program: ${rest.join(' ')}`,
  );
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  assert.equal(Number(fields[3]), c.pid, 'its own session (session id = its pid)');
});

test('the driver runs its programs through the helper, not through a fork of node', async () => {
  const r = await run(['sh', '-c', 'cat /proc/$PPID/comm']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'jy-spawner');
});

test('node exits while a detached program lives on; the helper goes with node', async (t) => {
  const script = `import { readFileSync } from 'node:fs';
    import { Spawner } from ${JSON.stringify(new URL('../../../src/platform/linux/spawner.ts', import.meta.url).pathname)};
    const c = new Spawner(${JSON.stringify(JY_SPAWNER)}).spawn({ argv: ['sleep', '30'], env: { PATH: '/usr/bin:/bin' }, cwd: '/', detached: true, stdout: 'pipe', stderr: 'ignore' });
    c.on('exit', () => {});
    const pid = await c.started;
    const helperPid = readFileSync('/proc/' + pid + '/stat', 'utf8').split(') ')[1].split(' ')[1];
    c.removeAllListeners();
    c.closeOutput();
    console.log(pid, helperPid);`;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(out.status, 0, `node did not exit by itself: ${out.stderr}`);
  const [pid, helperPid] = out.stdout.trim().split(' ').map(Number) as [number, number];
  t.after(() => process.kill(pid, 'SIGKILL'));
  assert.ok(pidAlive(pid), 'the detached program lives on');
  // (already gone and reaped: no /proc entry to read)
  let comm: string | undefined;
  try {
    comm = readFileSync(`/proc/${helperPid}/comm`, 'utf8').trim();
  } catch {
    comm = undefined;
  }
  assert.ok(comm === undefined || comm === 'jy-spawner' || !pidAlive(helperPid), `helper ${helperPid}: ${comm}`);
  assert.ok(await waitFor(() => !pidAlive(helperPid), 2000), 'the helper exits once its node is gone');
});

test("a program's name is looked up in the PATH of its own environment", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jy-spawner-path-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const prog = join(dir, 'jy-only-here');
  writeFileSync(prog, '#!/bin/sh\necho found\n', { mode: 0o755 });
  const r = await collect(
    helper.spawn({
      argv: ['jy-only-here'],
      env: { PATH: `${dir}:/usr/bin:/bin` },
      cwd: '/',
      stdout: 'pipe',
      stderr: 'pipe',
    }),
  );
  assert.deepEqual([r.out, r.code], ['found\n', 0], "not the helper's own (empty) environment's default path");
});
