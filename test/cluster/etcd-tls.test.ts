// `serve --etcd https://...` against a real etcd 3.4 member run with client TLS and then
// RBAC (this file's ports: client 23798, peer 23808), its PKI made with openssl in the
// test's folder (etcd-certs.ts). A node with the CA, a client certificate and its key joins
// and its API's jails are in etcd; without the certificate, with one of another CA, or with
// a wrong password it is refused at start-up naming the endpoint and the reason, exits
// non-zero and registers nothing. With auth enabled, a user limited to the prefix works from
// a password file or $JAILYARD_ETCD_PASSWORD, and the password is in no jailyard process's
// command line (nor in the fence guard's environment).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JY_BIN, runCli } from '../helpers/cli.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';
import { makePki, type TestPki } from './etcd-certs.ts';
import { readEtcdAccess } from '../../src/cluster/etcd-access.ts';
import { ClusterState } from '../../src/cluster/state.ts';
import { probeMember, startNodeAgent } from '../../src/cluster/agent.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { createLocalService } from '../../src/runtime/service.ts';
import { skeletonHooks } from '../../src/skeleton/hooks.ts';
import { loadDriver } from '../../src/platform/index.ts';

const skip = process.getuid?.() !== 0 ? 'needs root' : undefined;
const CLIENT = 'https://127.0.0.1:23798';
const PEER = 'http://127.0.0.1:23808';
const NODE = 'tlsn';
const RANGE = '198.51.100.104/29';
const ROOT_PW = 'root-pw-4b1e';
const NODE_PW = 'node-pw-93f0c7a2';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ETCDCTL_API: '3' } });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

/** Processes whose command line holds `needle`, with their command lines. */
function processesWith(needle: string): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmdline = readFileSync(`/proc/${d}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes(needle)) found.push({ pid: Number(d), cmdline });
    } catch {}
  }
  return found;
}

/** The direct children of `pid`. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(d));
    } catch {}
  }
  return out;
}

interface Serve {
  proc: ChildProcess;
  log: () => string;
  exited: Promise<void>;
}

describe('cluster: etcd with client TLS and RBAC', { skip, timeout: 240_000 }, () => {
  let dir = '';
  let state = '';
  let pki: TestPki;
  let etcd: ChildProcess | undefined;
  let etcdLog = '';
  let baseline: SystemSnapshot;
  let authOn = false;
  const serves: Serve[] = [];
  const sock = () => join(state, 'jailyard.sock');
  const cli = (...args: string[]) => runCli(['--host', `unix://${sock()}`, ...args]);
  const tlsFlags = () => ['--etcd-cacert', pki.ca, '--etcd-cert', pki.clientCert, '--etcd-key', pki.clientKey];

  /** etcdctl as the test's administrator (the client certificate; root once auth is on). */
  const etcdctl = async (...args: string[]): Promise<string> => {
    const r = await run('etcdctl', [
      '--endpoints',
      CLIENT,
      '--cacert',
      pki.ca,
      '--cert',
      pki.clientCert,
      '--key',
      pki.clientKey,
      ...(authOn ? ['--user', `root:${ROOT_PW}`] : []),
      ...args,
    ]);
    if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.out}`);
    return r.out;
  };
  const registeredNodes = async (): Promise<string> =>
    (await etcdctl('get', '--prefix', '/jailyard/nodes/', '--keys-only')).trim();

  function spawnServe(args: string[], env: NodeJS.ProcessEnv = {}): Serve {
    rmSync(sock(), { force: true });
    const proc = spawn(
      process.execPath,
      [
        JY_BIN,
        '--state',
        state,
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
        '4',
        ...args,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, JAILYARD_SRC: '1', ...env } },
    );
    let text = '';
    proc.stderr!.on('data', (d: Buffer) => (text += d.toString('utf8')));
    const exited = new Promise<void>((r) => proc.once('close', () => r()));
    const s = { proc, log: () => text, exited };
    serves.push(s);
    return s;
  }

  async function startServe(args: string[], env?: NodeJS.ProcessEnv): Promise<Serve> {
    const s = spawnServe(args, env);
    const end = Date.now() + 30_000;
    while (!(s.log().includes('serving on') && existsSync(sock()))) {
      if (s.proc.exitCode !== null) throw new Error(`serve exited (${s.proc.exitCode}):\n${s.log()}`);
      if (Date.now() > end) throw new Error(`serve did not start:\n${s.log()}`);
      await sleep(50);
    }
    return s;
  }

  /** A serve that must be refused: its exit code and what it printed. */
  async function refusedServe(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; log: string }> {
    const s = spawnServe(args, env);
    const timer = setTimeout(() => s.proc.kill('SIGKILL'), 40_000);
    await s.exited;
    clearTimeout(timer);
    assert.doesNotMatch(s.log(), /serving on/, s.log());
    if (process.env.JY_TEST_VERBOSE) console.error(`refused (${s.proc.exitCode}): ${s.log()}`);
    return { code: s.proc.exitCode ?? -1, log: s.log() };
  }

  async function stopServe(s: Serve): Promise<void> {
    s.proc.kill('SIGTERM');
    await s.exited;
    assert.equal(s.proc.exitCode, 0, s.log());
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jy-etcd-tls-'));
    state = join(dir, 'node');
    pki = makePki(dir);
    baseline = snapshot();
    etcd = spawn(
      'etcd',
      [
        '--name',
        'tls1',
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
        `tls1=${PEER}`,
        '--client-cert-auth',
        '--trusted-ca-file',
        pki.ca,
        '--cert-file',
        pki.serverCert,
        '--key-file',
        pki.serverKey,
        '--log-level',
        'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    etcd.stderr!.on('data', (d) => (etcdLog += d));
    const end = Date.now() + 20_000;
    for (;;) {
      try {
        await etcdctl('endpoint', 'health');
        break;
      } catch (e) {
        if (Date.now() > end || etcd.exitCode !== null) throw new Error(`etcd did not start: ${e}\n${etcdLog}`);
        await sleep(100);
      }
    }
  });

  after(async () => {
    for (const s of serves) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
    await Promise.all(serves.map((s) => s.exited));
    if (etcd && etcd.exitCode === null && etcd.signalCode === null) {
      const gone = new Promise((r) => etcd!.once('exit', r));
      etcd.kill('SIGTERM');
      await gone;
    }
    // nothing of this test runs: no etcd, no serve, no fence guard of its folder
    await sleep(200);
    assert.deepEqual(
      processesWith(dir).map((p) => p.cmdline),
      [],
      'a process of this test is left',
    );
    assertNoLeaks(baseline, state);
    rmSync(dir, { recursive: true, force: true });
  });

  test('client TLS: the node joins and a jail created through its API is in etcd', async () => {
    const s = await startServe(tlsFlags());
    try {
      const c = await cli('create', 'tlsj', 'path=/', 'persist', 'meta.via=tls');
      assert.equal(c.code, 0, c.stderr);
      const got = await etcdctl('get', '/jailyard/jails/tlsj', '--print-value-only');
      assert.match(got, /"name":"tlsj"/);
      assert.match(got, /"meta":"via=tls"/);
      assert.match(await registeredNodes(), new RegExp(`/jailyard/nodes/${NODE}`));
      // the keepalive thread reaches etcd over TLS too: longer than the lease TTL, no fence
      await sleep(5000);
      assert.match(await registeredNodes(), new RegExp(`/jailyard/nodes/${NODE}`));
      assert.doesNotMatch(s.log(), /fenced|keepalive thread failed/, s.log());
      const r = await cli('remove', 'tlsj');
      assert.equal(r.code, 0, r.stderr);
    } catch (e) {
      console.error(s.log());
      throw e;
    } finally {
      await stopServe(s);
    }
    assert.equal(await registeredNodes(), '', 'the orderly stop revoked the lease');
    // without --etcd-cacert: Node's default CAs (here with NODE_EXTRA_CA_CERTS) and the system's
    const d = await startServe(['--etcd-cert', pki.clientCert, '--etcd-key', pki.clientKey], {
      NODE_EXTRA_CA_CERTS: pki.ca,
    });
    assert.match(await registeredNodes(), new RegExp(`/jailyard/nodes/${NODE}`));
    await stopServe(d);
    assert.equal(await registeredNodes(), '');
  });

  test('no client certificate, one of another CA, or no --etcd-cacert: refused, nothing registered', async () => {
    const keys = async () => (await etcdctl('get', '--prefix', '/jailyard/', '--keys-only')).trim();
    const before = await keys();
    // the CA only: the member asks for a client certificate
    let r = await refusedServe(['--etcd-cacert', pki.ca]);
    assert.equal(r.code, 1, r.log);
    assert.match(r.log, /etcd: connecting to https:\/\/127\.0\.0\.1:23798 failed: TLS failed: /, r.log);
    assert.match(r.log, /TLS failed: .*: the member refused this node's client certificate/, r.log);
    // a certificate the member's CA did not sign
    r = await refusedServe([
      '--etcd-cacert',
      pki.ca,
      '--etcd-cert',
      pki.otherClientCert,
      '--etcd-key',
      pki.otherClientKey,
    ]);
    assert.equal(r.code, 1, r.log);
    assert.match(r.log, /https:\/\/127\.0\.0\.1:23798/, r.log);
    assert.match(r.log, /TLS failed: .*: the member refused this node's client certificate/, r.log);
    // the system CAs do not know this test's CA: the member's certificate is not trusted
    r = await refusedServe(['--etcd-cert', pki.clientCert, '--etcd-key', pki.clientKey]);
    assert.equal(r.code, 1, r.log);
    assert.match(r.log, /https:\/\/127\.0\.0\.1:23798/, r.log);
    assert.match(r.log, /TLS failed: .*: the member's certificate is not signed by a trusted CA/, r.log);
    // a bad file: named with its option before anything is opened
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'junk\n');
    r = await refusedServe(['--etcd-cacert', junk]);
    assert.equal(r.code, 2, r.log);
    assert.match(r.log, new RegExp(`--etcd-cacert ${junk}: no PEM certificate`), r.log);
    assert.equal(await registeredNodes(), '', 'nothing registered');
    assert.equal(await keys(), before, 'nothing written');
  });

  test('RBAC: a user limited to the prefix works; a wrong password is refused; no password in any cmdline', async () => {
    await etcdctl('user', 'add', `root:${ROOT_PW}`);
    await etcdctl('role', 'add', 'jailyard-node');
    await etcdctl('role', 'grant-permission', 'jailyard-node', '--prefix=true', 'readwrite', '/jailyard/');
    await etcdctl('user', 'add', `jynode:${NODE_PW}`);
    await etcdctl('user', 'grant-role', 'jynode', 'jailyard-node');
    await etcdctl('auth', 'enable');
    authOn = true;

    const pwFile = join(dir, 'etcd-password');
    writeFileSync(pwFile, `${NODE_PW}\n`, { mode: 0o600 });
    chmodSync(pwFile, 0o600);
    const s = await startServe([...tlsFlags(), '--etcd-user', 'jynode', '--etcd-password-file', pwFile]);
    try {
      const c = await cli('create', 'rbacj', 'path=/', 'persist');
      assert.equal(c.code, 0, c.stderr);
      assert.match(await etcdctl('get', '/jailyard/jails/rbacj', '--print-value-only'), /"name":"rbacj"/);
      // the daemon and its fence guard run; none of them (nor anything else) shows the password
      const guard = childrenOf(s.proc.pid!).find((p) =>
        readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('fence-guard'),
      );
      assert.ok(guard, `no fence guard:\n${s.log()}`);
      assert.ok(readFileSync(`/proc/${s.proc.pid}/cmdline`, 'utf8').includes(pwFile), 'the file path is there');
      assert.deepEqual(processesWith(NODE_PW), [], 'the password is on a command line');
      // keepalives as the user (the thread's own client authenticates): no fence past the TTL
      await sleep(5000);
      assert.match(await registeredNodes(), new RegExp(`/jailyard/nodes/${NODE}`));
      assert.doesNotMatch(s.log(), /fenced|keepalive thread failed/, s.log());
      const r = await cli('remove', 'rbacj');
      assert.equal(r.code, 0, r.stderr);
    } catch (e) {
      console.error(s.log());
      throw e;
    } finally {
      await stopServe(s);
    }

    // from the environment: the fence guard does not inherit it
    const e = await startServe([...tlsFlags(), '--etcd-user', 'jynode'], { JAILYARD_ETCD_PASSWORD: NODE_PW });
    try {
      assert.match(await registeredNodes(), new RegExp(`/jailyard/nodes/${NODE}`));
      const guard = childrenOf(e.proc.pid!).find((p) =>
        readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('fence-guard'),
      );
      assert.ok(guard, `no fence guard:\n${e.log()}`);
      assert.doesNotMatch(readFileSync(`/proc/${guard}/environ`, 'utf8'), new RegExp(NODE_PW));
      assert.deepEqual(processesWith(NODE_PW), []);
    } finally {
      await stopServe(e);
    }
    assert.equal(await registeredNodes(), '');

    // a wrong password: refused at start-up, naming the endpoint and the reason
    const bad = join(dir, 'bad-password');
    writeFileSync(bad, 'not-the-password\n', { mode: 0o600 });
    chmodSync(bad, 0o600);
    let r = await refusedServe([...tlsFlags(), '--etcd-user', 'jynode', '--etcd-password-file', bad]);
    assert.equal(r.code, 1, r.log);
    assert.match(r.log, /https:\/\/127\.0\.0\.1:23798/, r.log);
    assert.match(r.log, /failed: etcd refused the user: authentication failed, invalid user ID or password$/m, r.log);
    // the certificate alone (its CN is no etcd user) gets nothing either
    r = await refusedServe(tlsFlags());
    assert.equal(r.code, 1, r.log);
    assert.match(r.log, /https:\/\/127\.0\.0\.1:23798/, r.log);
    assert.match(r.log, /etcd refused the user: permission denied \(no --etcd-user/, r.log);
    // a password file others may read: refused before etcd is asked
    chmodSync(pwFile, 0o644);
    r = await refusedServe([...tlsFlags(), '--etcd-user', 'jynode', '--etcd-password-file', pwFile]);
    assert.equal(r.code, 2, r.log);
    assert.match(r.log, /--etcd-password-file .*readable by group or others \(mode 0644\)/, r.log);
    assert.equal(await registeredNodes(), '', 'nothing registered');
  });
  test("the agent's keepalive thread holds the lease over TLS as the user while the main thread is blocked", async () => {
    assert.ok(authOn, 'runs after the RBAC test');
    const pwFile = join(dir, 'etcd-password');
    chmodSync(pwFile, 0o600);
    const access = readEtcdAccess(
      {
        endpoints: [CLIENT],
        cacert: pki.ca,
        cert: pki.clientCert,
        key: pki.clientKey,
        user: 'jynode',
        passwordFile: pwFile,
      },
      {},
    );
    // the /health probe before a fence shows the same CA and certificate (auth on: still healthy)
    assert.equal(await probeMember(CLIENT, 3000, access.tls), 'healthy');
    assert.equal(await probeMember(CLIENT, 3000), 'unreachable', 'no TLS: no answer');
    const local = join(dir, 'inproc');
    const cs = await ClusterState.open({ endpoints: [CLIENT], access });
    const store = openStore(local);
    try {
      const driver = await loadDriver({ stateDir: local });
      const service = createLocalService({ store, stateDir: local, driver, skeletons: skeletonHooks() });
      const agent = await startNodeAgent({
        state: cs,
        node: { name: 'tlsk', labels: {}, range: '198.51.100.112/29', capacity: 1 },
        local: { service, store },
        leaseTtlSec: 3,
        endpoints: [CLIENT],
      });
      try {
        const lease = (await etcdctl('get', '/jailyard/nodes/tlsk', '-w', 'json')).match(/"lease":(\d+)/)?.[1];
        assert.ok(lease, 'registered');
        // past the TTL with this thread blocked: only the keepalive thread (its own client,
        // TLS and user) keeps the lease alive
        await sleep(1000);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5000);
        await sleep(300);
        assert.equal(agent.fenced, false, 'not fenced');
        const now = (await etcdctl('get', '/jailyard/nodes/tlsk', '-w', 'json')).match(/"lease":(\d+)/)?.[1];
        assert.equal(now, lease, 'the same lease holds the node');
      } finally {
        await agent.stop();
      }
    } finally {
      store.close();
      await cs.close();
    }
  });
});
