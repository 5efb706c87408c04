// Issue #11 item 11 (console part): a jail's console log is bounded. Its pid 1 output and
// the exec.* commands' console output go through a host-side relay (jy-log) that keeps the
// file under the limit with one rotation; the jail holds only a pipe, a symlink planted at
// the log's name is never followed, and the relay ends with the jail.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createLinuxDriver } from '../../src/platform/linux/index.ts';
import { consoleRelays, consoleSink, defaultConsoleLimit } from '../../src/platform/linux/console.ts';
import type { CreateFacts, MountFacts, NetworkFacts } from '../../src/platform/driver.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { makeTestJail, type TestJail } from '../platform/linux/fixture.ts';

const PREFIX = 'jyseccon';
const driver = createLinuxDriver({ cgroupParent: `jailyard-${PREFIX}` });
const MiB = 1 << 20;

const size = (p: string) => {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
};
/** The log's text ('' while it is missing). */
const readLog = (p: string) => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
const relaysOf = (log: string) =>
  consoleRelays()
    .filter((r) => r.log === log)
    .map((r) => r.pid);
const pssKiB = (pid: number) =>
  Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1]);

describe('security: a bounded console log', () => {
  let base: SystemSnapshot;
  let jail: TestJail;
  let marker: string;
  let log: string;
  let net: NetworkFacts | undefined;
  let mounts: MountFacts | undefined;
  let facts: CreateFacts | undefined;
  const limit = defaultConsoleLimit();

  before(async () => {
    base = snapshot();
    jail = makeTestJail(PREFIX);
    marker = dirname(jail.ctx.path);
    jail.ctx.stateDir = `${marker}/jails/${jail.ctx.name}`;
    log = `${jail.ctx.stateDir}/console.log`;
    // a symlink where the log belongs, to a file the log must never write through
    mkdirSync(jail.ctx.stateDir, { recursive: true });
    writeFileSync(`${marker}/victim`, 'untouched\n');
    symlinkSync(`${marker}/victim`, log);
    net = await driver.setupNetwork(jail.ctx);
    mounts = await driver.mount(jail.ctx, jail.plan);
    facts = await driver.create(jail.ctx, net, { maxProcs: 64 });
  });

  after(async () => {
    if (facts) await driver.destroy(jail.ctx, facts, 500).catch(() => {});
    if (mounts) await driver.unmount(jail.ctx, mounts);
    if (net) await driver.teardownNetwork(jail.ctx, net);
    assertNoLeaks(base, marker);
    jail.cleanup();
  });

  test('the jail holds a pipe, not the host file; the planted symlink was not followed', () => {
    const target = readlinkSync(`/proc/${facts!.initPid}/fd/2`);
    assert.match(target, /^pipe:\[\d+\]$/, `pid 1's stderr: ${target}`);
    assert.ok(lstatSync(log).isFile(), 'the log is a regular file now');
    assert.equal(readFileSync(`${marker}/victim`, 'utf8'), 'untouched\n');
    assert.ok(relaysOf(log).length >= 1, 'a relay writes the log');
  });

  test('200 MiB written to the console leave at most ~2x the limit on disk, with the newest lines', {
    timeout: 120_000,
  }, async () => {
    // through an exec.* command's console output (exec.consolelog)
    let t0 = Date.now();
    const r = await driver.runInJail(
      jail.ctx,
      facts!,
      ['/bin/sh', '-c', 'yes exec-output-0123456789 | head -c 209715200; echo; echo LAST-FROM-EXEC'],
      { consoleLog: log },
    );
    assert.equal(r.code, 0, r.stderr);
    const execMs = Date.now() - t0;
    await until('the exec output in the log', () => readLog(log).includes('LAST-FROM-EXEC'));
    assert.ok(
      size(log) + size(`${log}.1`) <= 2 * limit + 128 * 1024,
      `on disk: ${size(log)} + ${size(`${log}.1`)} (limit ${limit})`,
    );
    // through pid 1's own output, which every process of the jail can reach
    t0 = Date.now();
    const p = await driver.runInJail(jail.ctx, facts!, [
      '/bin/sh',
      '-c',
      'yes pid1-output-0123456789 | head -c 209715200 > /proc/1/fd/1; echo LAST-FROM-PID1 > /proc/1/fd/1',
    ]);
    assert.equal(p.code, 0, p.stderr);
    const pid1Ms = Date.now() - t0;
    await until('the pid 1 output in the log', () => readLog(log).includes('LAST-FROM-PID1'));
    const total = size(log) + size(`${log}.1`);
    assert.ok(total <= 2 * limit + 128 * 1024, `on disk: ${total} (limit ${limit})`);
    assert.ok(lstatSync(`${log}.1`).isFile(), 'one rotation');
    assert.equal(readFileSync(`${marker}/victim`, 'utf8'), 'untouched\n');
    const pss = relaysOf(log).map(pssKiB);
    console.log(
      `# 200 MiB via exec: ${execMs} ms, via pid 1: ${pid1Ms} ms; on disk ${(total / MiB).toFixed(2)} MiB (limit ${limit / MiB} MiB); relay PSS KiB: ${pss.join(', ')}`,
    );
  });

  test("a failed command's last lines are in the log when its result comes back", { timeout: 30_000 }, async () => {
    for (let i = 0; i < 5; i++) {
      const r = await driver.runInJail(jail.ctx, facts!, ['/bin/sh', '-c', `echo LAST-WORDS-${i}; exit 3`], {
        consoleLog: log,
      });
      assert.equal(r.code, 3);
      assert.ok(readLog(log).includes(`LAST-WORDS-${i}`), `run ${i}`);
    }
  });

  test('the relays are gone once the jail is', { timeout: 30_000 }, async () => {
    const relays = relaysOf(log);
    assert.ok(relays.length >= 1);
    await driver.destroy(jail.ctx, facts!, 500);
    facts = undefined;
    await until('the relays to exit', () => relaysOf(log).length === 0, 5000);
  });
});

test('security: the relay itself: limit, rotation, a FIFO or hard link at the name, start cost', {
  timeout: 60_000,
}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jy-seccon-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = `${dir}/console.log`;
  // a hard link to another file at the log's name: never written through
  writeFileSync(`${dir}/other`, 'other\n');
  const { linkSync } = await import('node:fs');
  linkSync(`${dir}/other`, log);
  const sink = await consoleSink(log, 64 * 1024);
  const fd = openSync(sink.path, 'a');
  const line = Buffer.from(`${'0123456789abcdef'.repeat(4)}\n`);
  for (let i = 0; i < (1 * MiB) / line.length; i++) writeSync(fd, line);
  writeSync(fd, 'NEWEST\n');
  closeSync(fd);
  await until('the relay to exit', () => relaysOf(log).length === 0, 5000);
  assert.equal(readFileSync(`${dir}/other`, 'utf8'), 'other\n', 'the hard-linked file is untouched');
  assert.ok(size(log) <= 64 * 1024 && size(`${log}.1`) <= 64 * 1024, `${size(log)} ${size(`${log}.1`)}`);
  assert.match(readFileSync(log, 'utf8'), /NEWEST\n$/);
  assert.ok(existsSync(`${log}.1`));

  // start cost: relay up, its pipe opened and closed, the relay gone
  const n = 20;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) closeSync(openSync((await consoleSink(log)).path, 'a'));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6 / n;
  await until('the relays to exit', () => relaysOf(log).length === 0, 5000);
  console.log(`# relay start (spawn + ready + open): ${ms.toFixed(2)} ms per sink`);
});

test('security: reconcile ends a relay whose jail folder is gone', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jy-seccon-'));
  const log = `${dir}/jails/gone/console.log`;
  mkdirSync(dirname(log), { recursive: true });
  const sink = await consoleSink(log);
  const fd = openSync(sink.path, 'a'); // a writer that never goes: the relay would stay
  t.after(() => {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  rmSync(`${dir}/jails`, { recursive: true, force: true });
  const found = await driver.scanLeftovers();
  assert.ok(found.pids.includes(sink.pid), `the relay ${sink.pid} is reported: ${found.pids.join(' ')}`);
  await driver.removeLeftover('pids', sink.pid);
  await until('the relay to exit', () => relaysOf(log).length === 0, 5000);
});

test('security: a stalled disk never blocks the writers; the newest lines and a count of the dropped arrive', {
  timeout: 60_000,
}, async (t) => {
  const { spawn, spawnSync } = await import('node:child_process');
  const dir = mkdtempSync(join(tmpdir(), 'jy-seccon-'));
  const log = `${dir}/console.log`;
  // the relay's writer waits for this lock (as on a disk that does not answer): 6 s
  const holder = spawn('flock', ['-x', dir, 'sleep', '6'], { stdio: 'ignore' });
  t.after(() => {
    holder.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  // until flock holds it (a non-blocking try fails)
  await until('the lock held', () => spawnSync('flock', ['-n', dir, 'true']).status === 1, 5000);
  const sink = await consoleSink(log, 1 * MiB);
  const fd = openSync(sink.path, 'a');
  const t0 = Date.now();
  const chunk = Buffer.alloc(1 * MiB, 'x'.charCodeAt(0));
  for (let i = 0; i < 50; i++) writeSync(fd, chunk);
  writeSync(fd, '\nNEWEST-LINE\n');
  const ms = Date.now() - t0;
  closeSync(fd);
  // (blocked writers would have waited for the lock: most of its 6 s)
  assert.ok(ms < 4000, `50 MiB written in ${ms} ms while the log could not be written`);
  await until('the relay to finish', () => relaysOf(log).length === 0, 15_000);
  const text = readLog(log);
  assert.match(text, /NEWEST-LINE\n$/);
  assert.match(text + readLog(`${log}.1`), /\[jailyard: \d+ bytes of console output dropped\]/);
  console.log(`# 50 MiB written in ${ms} ms with the log's writer stalled for 6 s`);
});
