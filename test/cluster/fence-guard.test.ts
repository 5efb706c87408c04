// The fence guard (src/cluster/fence-guard.ts): a real `serve --etcd` on one etcd member (this
// file's ports: client 23796, peer 23806) runs a jail placed on it. Killed with -9, its guard
// kills the jail's processes at once (well within the lease TTL) and exits; an orderly SIGTERM
// ends the guard without a fence; neither touches the jail of another state folder.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stateTag } from '../../src/platform/linux/paths.ts';
import { JY_BIN, runBin, runCli } from '../helpers/cli.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';

const skip = process.getuid?.() !== 0 ? 'needs root' : undefined;
const CLIENT = 'http://127.0.0.1:23796';
const PEER = 'http://127.0.0.1:23806';
const NODE = 'fga';
const RANGE = '198.51.100.88/29';
const SLEEPER = 'exec.start=/usr/bin/python3 -c "import time; time.sleep(10**6)" >/dev/null 2>&1 &';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Whether `pid` runs: a zombie (exited, its new parent has not reaped it yet) does not. */
const alive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
};

async function waitFor(what: string, cond: () => boolean, ms: number, every = 50): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(every);
  }
}

/** Live pids in the cgroups of `state`'s jails. */
function jailPids(state: string): number[] {
  const marker = `/jy-${stateTag(`${state}/jails/x`)}-`;
  const found: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // a zombie is gone for the purpose of a fence: it runs nothing
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (readFileSync(`/proc/${d}/cgroup`, 'utf8').includes(marker)) found.push(Number(d));
    } catch {}
  }
  return found;
}

/** The fence guard started by the daemon `pid` (its child running fence-guard). */
function guardOf(pid: number): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('fence-guard')) return Number(d);
    } catch {}
  }
  return undefined;
}

interface Serve {
  proc: ChildProcess;
  log: () => string;
  exited: Promise<void>;
  guard: number;
}

describe('cluster fence guard', { skip, timeout: 120_000 }, () => {
  let dir = '';
  let stateA = '';
  let stateB = '';
  let etcd: ChildProcess | undefined;
  let serve: Serve | undefined;
  let baseline: SystemSnapshot;
  const sock = () => join(stateA, 'jailyard.sock');
  const cli = (...args: string[]) => runCli(['--host', `unix://${sock()}`, ...args]);

  async function startServe(): Promise<Serve> {
    rmSync(sock(), { force: true });
    const proc = spawn(
      process.execPath,
      [
        JY_BIN,
        '--state',
        stateA,
        'serve',
        '--socket',
        sock(),
        '--etcd',
        CLIENT,
        '--node',
        NODE,
        '--range',
        RANGE,
        '--lease-ttl',
        '3',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, JAILYARD_SRC: '1' } },
    );
    let text = '';
    proc.stderr!.on('data', (d: Buffer) => (text += d.toString('utf8')));
    const exited = new Promise<void>((r) => proc.once('close', () => r()));
    await waitFor(
      'the node to join',
      () => {
        if (proc.exitCode !== null) throw new Error(`serve exited (${proc.exitCode}):\n${text}`);
        return text.includes('serving on') && existsSync(sock());
      },
      30_000,
    );
    const guard = guardOf(proc.pid!);
    assert.ok(guard, `no fence guard below serve:\n${text}`);
    return { proc, log: () => text, exited, guard };
  }

  /** Starts fg1 (placed on this node) and waits for its process. */
  async function runJail(): Promise<void> {
    const r = await cli('start', 'fg1');
    assert.equal(r.code, 0, r.stderr);
    await waitFor("fg1's processes", () => jailPids(stateA).length > 0, 15_000);
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jy-fg-'));
    stateA = join(dir, 'a');
    stateB = join(dir, 'b');
    baseline = snapshot();
    etcd = spawn(
      'etcd',
      [
        '--name',
        'fg1',
        '--data-dir',
        join(dir, 'etcd'),
        '--listen-client-urls',
        CLIENT,
        '--advertise-client-urls',
        CLIENT,
        '--listen-peer-urls',
        PEER,
        '--initial-advertise-peer-urls',
        PEER,
        '--initial-cluster',
        `fg1=${PEER}`,
        '--log-level',
        'error',
      ],
      { stdio: 'ignore' },
    );
    // another state folder's one-host jail: no guard of node A may touch it
    let r = runBin(stateB, ['create', 'fgb', 'path=/', 'persist', SLEEPER]);
    assert.equal(r.code, 0, r.stderr);
    r = runBin(stateB, ['start', 'fgb']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(jailPids(stateB).length > 0, 'fgb runs');
    serve = await startServe();
    const c = await cli('create', 'fg1', 'path=/', 'persist', SLEEPER, `node=${NODE}`);
    assert.equal(c.code, 0, c.stderr);
    await runJail();
  });

  after(async () => {
    try {
      if (!serve || serve.proc.exitCode !== null || serve.proc.signalCode !== null) {
        // the fenced jail's namespaces, mounts and record are left for a reconcile, as
        // after any crash (the restarted agent alone reports fg1 'starting' and fails)
        const r = runBin(stateA, ['reconcile']);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        serve = await startServe();
      }
      const r = await cli('remove', 'fg1');
      assert.equal(r.code, 0, r.stderr);
      serve.proc.kill('SIGTERM');
      await serve.exited;
      await waitFor('the guard to end', () => !alive(serve!.guard), 5000);
    } catch (e) {
      console.error(serve?.log());
      throw e;
    } finally {
      if (serve && serve.proc.exitCode === null && serve.proc.signalCode === null) serve.proc.kill('SIGKILL');
      runBin(stateB, ['remove', 'fgb']);
      if (etcd && etcd.exitCode === null) {
        const gone = new Promise((r) => etcd!.once('exit', r));
        etcd.kill('SIGTERM');
        await gone;
      }
    }
    assertNoLeaks(baseline, stateA);
    assertNoLeaks(baseline, stateB);
    rmSync(dir, { recursive: true, force: true });
  });

  test('an orderly SIGTERM: the daemon stops its jails, the guard exits without a fence', async () => {
    const s = serve!;
    const other = jailPids(stateB);
    s.proc.kill('SIGTERM');
    await s.exited;
    assert.equal(s.proc.exitCode, 0, s.log());
    await waitFor('the guard to end', () => !alive(s.guard), 5000);
    assert.doesNotMatch(s.log(), /fence guard/, 'no fence on an orderly stop');
    assert.deepEqual(jailPids(stateA), [], "the daemon stopped its node's jails");
    assert.deepEqual(jailPids(stateB), other, "another folder's jail still runs");
    serve = await startServe();
    await runJail();
  });

  test("kill -9: the guard kills the node's jails within 1 s and exits; another folder's jail runs on", async () => {
    const s = serve!;
    const other = jailPids(stateB);
    assert.ok(jailPids(stateA).length > 0);
    const t0 = performance.now();
    s.proc.kill('SIGKILL');
    await waitFor("fg1's processes to be gone", () => jailPids(stateA).length === 0, 5000, 10);
    const ms = performance.now() - t0;
    assert.ok(ms < 1000, `the jail's processes went after ${Math.round(ms)} ms`);
    await waitFor('the guard to end', () => !alive(s.guard), 5000, 10).catch(async (e) => {
      await sleep(3000);
      throw new Error(`${e.message} (alive after 3 s more: ${alive(s.guard)}):\n${s.log()}`);
    });
    await s.exited;
    assert.match(s.log(), /fence guard: the daemon died without its 'bye'/);
    assert.deepEqual(jailPids(stateB), other, "another folder's jail still runs");

    // the node comes back by itself: no `jailyard reconcile` by hand; the restarted daemon
    // finishes the fenced jail's local records and its agent starts fg1 again (etcd still
    // places it here and wants it running), then a remove works
    serve = await startServe();
    await waitFor('fg1 to run again on its node', () => jailPids(stateA).length > 0, 30_000).catch((e) => {
      throw new Error(`${e.message}:\n${serve?.log()}`);
    });
    assert.match(serve.log(), /"msg":"recovered","name":"fg1"/);
  });
});
