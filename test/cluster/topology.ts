// The place the cluster (issue #16) is proven in: a router network namespace with a bridge,
// three etcd members listening there, and two or three node namespaces linked to it by
// veths, each node running `jailyard serve --etcd ... --node X` with a state folder of its own.
// Nothing is added to the host's network namespace: every address lives in namespaces this
// harness creates, and teardown removes them all (also after a failing test).
//
//   router  jyc-<tag>-r   bridge jycbr 203.0.113.33/27 (+ 198.51.100.30/32); etcd m1..m3 on 203.0.113.33:23791-23793
//                         (peers :23801-23803); routes to each node's jail range via its link
//   node a  jyc-<tag>-a   eth0 203.0.113.34/27, jails 198.51.100.32/28
//   node b  jyc-<tag>-b   eth0 203.0.113.35/27, jails 198.51.100.48/28
//   node c  jyc-<tag>-c   eth0 203.0.113.36/27, jails 198.51.100.64/28
//
// A node is more than a network namespace: it has a mount namespace of its own too (as a
// machine has), held by a small process for the node's whole life, so the mounts its daemon
// makes for jails outlive a `kill -9` of that daemon and its restart finds them, as on a real
// machine. That namespace sees the node's own sysfs (jailyard reads /sys/class/net) with the
// host's cgroup tree bound at /sys/fs/cgroup, and is a slave of the host's: nothing mounted in
// it reaches the host.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { stateTag } from '../../src/platform/linux/paths.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';
import { JY_BIN, runCli, type CliResult } from '../helpers/cli.ts';

export type NodeName = 'a' | 'b' | 'c';

export const NODE_PLAN: Record<NodeName, { link: string; range: string; zone: string }> = {
  a: { link: '203.0.113.34', range: '198.51.100.32/28', zone: 'z1' },
  b: { link: '203.0.113.35', range: '198.51.100.48/28', zone: 'z1' },
  c: { link: '203.0.113.36', range: '198.51.100.64/28', zone: 'z2' },
};
export const ROUTER_ADDR = '203.0.113.33';
/**
 * The router's address in the jails' network, outside every node's range: the routes to the
 * node ranges prefer it as the source of the router's own connections (HAProxy's), since
 * jails have no route to the link network.
 */
export const JAIL_SIDE_ADDR = '198.51.100.30';
const LINK_PREFIX = 27;
export const ETCD_CLIENT_PORTS = [23791, 23792, 23793];
export const ETCD_PEER_PORTS = [23801, 23802, 23803];

export interface TopologyOptions {
  /** The nodes to make (namespaces and state folders; daemons start with startNode). */
  nodes?: NodeName[];
  /** Lease TTL in seconds given to every node's daemon (default 2). */
  leaseTtl?: number;
}

interface EtcdMember {
  name: string;
  dataDir: string;
  clientPort: number;
  peerPort: number;
  proc?: ChildProcess;
  log: string;
}

export interface ClusterNode {
  name: NodeName;
  netns: string;
  /** The node's own folder (its state folder is `state` below it). */
  dir: string;
  state: string;
  socket: string;
  /** `unix://...` for --host. */
  host: string;
  /** The process holding the node's mount namespace. */
  holder?: ChildProcess;
  /** The running `jailyard serve`, if any. */
  serve?: ChildProcess;
  log: string;
  range: string;
  link: string;
  labels: Record<string, string>;
}

function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    // a zombie (exited, not yet reaped by us) counts as gone
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(what: string, ok: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await ok()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Sends SIGTERM, then SIGKILL after `graceMs`, and waits for the process to be gone. */
async function stopProcess(p: ChildProcess | undefined, graceMs = 5000): Promise<void> {
  if (!p?.pid || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(t);
}

async function killProcess(p: ChildProcess | undefined): Promise<void> {
  if (!p?.pid || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGKILL');
  await gone;
}

export class Topology {
  readonly root: string;
  readonly tag: string;
  readonly routerNs: string;
  readonly nodes = new Map<NodeName, ClusterNode>();
  readonly etcd: EtcdMember[] = [];
  readonly leaseTtl: number;
  private before: SystemSnapshot;
  private madeNetns: string[] = [];
  private agents = new Map<NodeName, Agent>();
  /** Removes the signal handlers build() installed. */
  private release: () => void = () => {};

  private constructor(root: string, before: SystemSnapshot, leaseTtl: number) {
    this.root = root;
    this.before = before;
    this.leaseTtl = leaseTtl;
    // 4 hex digits: interface names stay under 15 characters (jyc<tag>a = 8)
    this.tag = stateTag(`${root}/jails/x`);
    this.routerNs = `jyc-${this.tag}-r`;
  }

  /** Builds the namespaces, links and routes and starts the three etcd members (healthy on return). */
  static async build(opts: TopologyOptions = {}): Promise<Topology> {
    const before = snapshot();
    const root = mkdtempSync(join(tmpdir(), 'jy-cluster-'));
    const t = new Topology(root, before, opts.leaseTtl ?? 2);
    // interrupted (Ctrl-C, a runner's SIGTERM): nothing of the topology may outlive us
    const onSignal = (sig: NodeJS.Signals) => {
      void t.teardown().finally(() => process.kill(process.pid, sig));
    };
    t.release = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      t.buildNetwork(opts.nodes ?? ['a', 'b', 'c']);
      await t.startEtcd();
      await t.waitEtcdHealthy();
      for (const n of t.nodes.values()) await t.holdNode(n);
    } catch (e) {
      await t.teardown().catch(() => {});
      throw e;
    }
    return t;
  }

  /** `ip` inside namespace `ns` (one batch). */
  private ipIn(ns: string, batch: string[]): void {
    sh('ip', ['-n', ns, '-batch', '-'], `${batch.join('\n')}\n`);
  }

  private buildNetwork(names: NodeName[]): void {
    const r = this.routerNs;
    sh('ip', ['netns', 'add', r]);
    this.madeNetns.push(r);
    this.ipIn(r, [
      'link set lo up',
      'link add jycbr type bridge',
      `addr add ${ROUTER_ADDR}/${LINK_PREFIX} dev jycbr`,
      `addr add ${JAIL_SIDE_ADDR}/32 dev jycbr`,
      'link set jycbr up',
    ]);
    // forwarding between node ranges happens in the router: a per-namespace setting
    sh('ip', ['netns', 'exec', r, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    for (const name of names) {
      const plan = NODE_PLAN[name];
      const ns = `jyc-${this.tag}-${name}`;
      sh('ip', ['netns', 'add', ns]);
      this.madeNetns.push(ns);
      const dir = join(this.root, name);
      mkdirSync(dir, { recursive: true });
      const state = join(dir, 'state');
      mkdirSync(state, { recursive: true });
      const veth = `jyc${this.tag}${name}`;
      // the veth is made inside the router namespace and its peer moved to the node: the
      // host's namespace never holds either end
      this.ipIn(r, [
        `link add ${veth} type veth peer name eth0 netns ${ns}`,
        `link set ${veth} master jycbr`,
        `link set ${veth} up`,
        // src: what the router itself opens to jails (HAProxy's checks and requests) comes
        // from its jail-side address, the one jails can answer
        `route add ${plan.range} via ${plan.link} src ${JAIL_SIDE_ADDR}`,
      ]);
      this.ipIn(ns, [
        'link set lo up',
        `addr add ${plan.link}/${LINK_PREFIX} dev eth0`,
        'link set eth0 up',
        // other nodes' ranges and the router's jail-side address through the router: more
        // specific than the /24 of the node's own bridge (jy0, made by its first jail)
        ...Object.entries(NODE_PLAN)
          .filter(([other]) => other !== name)
          .map(([, o]) => `route add ${o.range} via ${ROUTER_ADDR}`),
        `route add ${JAIL_SIDE_ADDR}/32 via ${ROUTER_ADDR}`,
      ]);
      // jails get no default route: with the default /24 prefix a jail takes every
      // 198.51.100.x for on-link and asks the node's bridge by ARP, which the node answers
      // for what it routes elsewhere (other nodes' ranges, the router's JAIL_SIDE_ADDR)
      sh('ip', [
        'netns',
        'exec',
        ns,
        'sysctl',
        '-q',
        '-w',
        'net.ipv4.ip_forward=1',
        'net.ipv4.conf.all.proxy_arp=1',
        'net.ipv4.conf.default.proxy_arp=1',
      ]);
      const socket = join(state, 'jailyard.sock');
      this.nodes.set(name, {
        name,
        netns: ns,
        dir,
        state,
        socket,
        host: `unix://${socket}`,
        log: join(dir, 'serve.log'),
        range: plan.range,
        link: plan.link,
        labels: { zone: plan.zone, node: name },
      });
    }
  }

  /** The etcd client URLs, comma-separated, for --etcd. */
  get etcdUrls(): string {
    return ETCD_CLIENT_PORTS.map((p) => `http://${ROUTER_ADDR}:${p}`).join(',');
  }

  private async startEtcd(): Promise<void> {
    const initial = ETCD_PEER_PORTS.map((p, i) => `m${i + 1}=http://${ROUTER_ADDR}:${p}`).join(',');
    for (let i = 0; i < 3; i++) {
      const name = `m${i + 1}`;
      const dataDir = join(this.root, 'etcd', name);
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      this.etcd.push({
        name,
        dataDir,
        clientPort: ETCD_CLIENT_PORTS[i]!,
        peerPort: ETCD_PEER_PORTS[i]!,
        log: join(this.root, 'etcd', `${name}.log`),
      });
    }
    for (const m of this.etcd) this.spawnEtcd(m, initial, 'new');
  }

  private spawnEtcd(m: EtcdMember, initial: string, state: 'new' | 'existing'): void {
    const out = openSync(m.log, 'a');
    const c = `http://${ROUTER_ADDR}:${m.clientPort}`;
    const p = `http://${ROUTER_ADDR}:${m.peerPort}`;
    // `ip netns exec` execs etcd: the child's pid is etcd's own
    m.proc = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.routerNs,
        'etcd',
        '--name',
        m.name,
        '--data-dir',
        m.dataDir,
        '--listen-client-urls',
        c,
        '--advertise-client-urls',
        c,
        '--listen-peer-urls',
        p,
        '--initial-advertise-peer-urls',
        p,
        '--initial-cluster',
        initial,
        '--initial-cluster-state',
        state,
        '--initial-cluster-token',
        `jyc-${this.tag}`,
        // small and quick: a test cluster on one machine
        '--heartbeat-interval',
        '50',
        '--election-timeout',
        '500',
        '--snapshot-count',
        '10000',
        '--quota-backend-bytes',
        String(256 * 1024 * 1024),
        '--log-level',
        'warn',
        '--logger',
        'zap',
      ],
      { stdio: ['ignore', out, out] },
    );
    closeSync(out);
  }

  /** `etcdctl` against the whole cluster (or the members given), run in the router namespace.
   * Asynchronous: a test's samplers keep running while it waits. */
  etcdctl(args: string[], members: number[] = [0, 1, 2]): Promise<CliResult> {
    const endpoints = members.map((i) => `http://${ROUTER_ADDR}:${ETCD_CLIENT_PORTS[i]}`).join(',');
    return runProcess(
      'ip',
      [
        'netns',
        'exec',
        this.routerNs,
        'etcdctl',
        `--endpoints=${endpoints}`,
        '--dial-timeout=2s',
        '--command-timeout=5s',
        ...args,
      ],
      20_000,
      { ETCDCTL_API: '3' },
    );
  }

  /** Health of each member (endpoint health), e.g. [true, true, false]. */
  async etcdHealth(): Promise<boolean[]> {
    return await Promise.all(
      this.etcd.map(async (_m, i) => (await this.etcdctl(['endpoint', 'health'], [i])).code === 0),
    );
  }

  async waitEtcdHealthy(timeoutMs = 20_000): Promise<void> {
    await waitUntil(
      'etcd members healthy',
      async () => (await this.etcdHealth()).every((ok, i) => ok || !this.etcd[i]!.proc),
      timeoutMs,
    );
  }

  /** Stops member i (0-2) with SIGKILL, as a crash; its data folder stays. */
  async stopEtcdMember(i: number): Promise<void> {
    const m = this.etcd[i]!;
    await killProcess(m.proc);
    m.proc = undefined;
  }

  /** Freezes member i (SIGSTOP) or lets it go on (SIGCONT): its port still accepts
   * connections (the kernel's backlog), but it answers nothing meanwhile. */
  pauseEtcdMember(i: number, paused: boolean): void {
    const pid = this.etcd[i]!.proc?.pid;
    if (pid) process.kill(pid, paused ? 'SIGSTOP' : 'SIGCONT');
  }

  /** Starts member i again on its data folder (it rejoins the cluster). */
  async startEtcdMember(i: number): Promise<void> {
    const m = this.etcd[i]!;
    if (alive(m.proc?.pid)) return;
    const initial = ETCD_PEER_PORTS.map((p, j) => `m${j + 1}=http://${ROUTER_ADDR}:${p}`).join(',');
    this.spawnEtcd(m, initial, 'existing');
    await waitUntil(
      `etcd ${m.name} healthy`,
      async () => (await this.etcdctl(['endpoint', 'health'], [i])).code === 0,
      20_000,
    );
  }

  node(name: NodeName): ClusterNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name} in this topology`);
    return n;
  }

  /** Starts the process that holds the node's mount namespace (see the file's header). */
  private async holdNode(n: ClusterNode): Promise<void> {
    const stage = join(n.dir, '.sys');
    mkdirSync(stage, { recursive: true });
    // in the new (slave) mount namespace: a sysfs of the node's network namespace on /sys,
    // the host's cgroup tree bound below it. Paths are ours (mkdtemp), passed as arguments.
    const script = [
      'set -e',
      'mount --rbind /sys/fs/cgroup "$1"',
      'umount -l /sys',
      'mount -t sysfs sysfs /sys',
      'mount --rbind "$1" /sys/fs/cgroup',
      'umount -l "$1"',
      'echo held',
      'exec sleep infinity',
    ].join('\n');
    const holder = spawn(
      'nsenter',
      [
        `--net=/run/netns/${n.netns}`,
        '--',
        'unshare',
        '--mount',
        '--propagation',
        'slave',
        '--',
        'sh',
        '-c',
        script,
        'jyc-hold',
        stage,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    n.holder = holder;
    let out = '';
    let err = '';
    holder.stdout!.on('data', (d) => (out += d));
    holder.stderr!.on('data', (d) => (err += d));
    await waitUntil(
      `node ${n.name}'s namespace holder`,
      () => {
        if (holder.exitCode !== null) throw new Error(`node ${n.name}: holder failed: ${err}`);
        return out.includes('held');
      },
      10_000,
    );
  }

  /** argv prefix running a program in node `name`'s network and mount namespaces. */
  private inNode(n: ClusterNode): string[] {
    assert.ok(n.holder?.pid && alive(n.holder.pid), `node ${n.name} has no namespace holder`);
    return ['nsenter', `--target=${n.holder.pid}`, '--mount', '--net', '--'];
  }

  /** `jailyard serve` of node `name` (its extra flags after the standard ones). Waits for its socket. */
  async startNode(name: NodeName, extra: string[] = []): Promise<ChildProcess> {
    const n = this.node(name);
    if (n.serve && alive(n.serve.pid)) throw new Error(`node ${name} already runs`);
    rmSync(n.socket, { force: true });
    const labels = Object.entries(n.labels).flatMap(([k, v]) => ['--node-label', `${k}=${v}`]);
    const args = [
      ...this.inNode(n),
      process.execPath,
      JY_BIN,
      '--state',
      n.state,
      'serve',
      '--socket',
      n.socket,
      '--etcd',
      this.etcdUrls,
      '--node',
      name,
      '--range',
      n.range,
      '--lease-ttl',
      String(this.leaseTtl),
      ...labels,
      ...extra,
    ];
    const out = openSync(n.log, 'a');
    const p = spawn(args[0]!, args.slice(1), {
      stdio: ['ignore', out, out],
      env: { ...process.env, JAILYARD_SRC: '1' },
    });
    closeSync(out);
    n.serve = p;
    try {
      await waitUntil(
        `node ${name}'s daemon socket`,
        () => {
          if (p.exitCode !== null || p.signalCode !== null)
            throw new Error(`node ${name}: serve exited (${p.exitCode ?? p.signalCode}):\n${this.logOf(name)}`);
          return existsSync(n.socket);
        },
        30_000,
      );
    } catch (e) {
      await killProcess(p);
      n.serve = undefined;
      throw e;
    }
    return p;
  }

  /** The tail of node `name`'s daemon log. */
  logOf(name: NodeName, chars = 4000): string {
    try {
      return readFileSync(this.node(name).log, 'utf8').slice(-chars);
    } catch {
      return '';
    }
  }

  /** SIGTERM to node `name`'s daemon (its jails keep running, as jailyard's daemon leaves them). */
  async stopNode(name: NodeName): Promise<void> {
    const n = this.node(name);
    await stopProcess(n.serve);
    n.serve = undefined;
  }

  /**
   * The node dies as a machine does: SIGKILL to its daemon and to every process of its jails
   * (found by the cgroups named with its state folder's tag). Its disk (state folder) and its
   * namespaces stay, as after a power cut they would be on a machine that comes back.
   */
  async killNode(name: NodeName): Promise<void> {
    const n = this.node(name);
    await killProcess(n.serve);
    n.serve = undefined;
    for (const pid of this.jailPids(name)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }

  /** Pids of the processes of node `name`'s jails. */
  jailPids(name: NodeName): number[] {
    const marker = `/jy-${stateTag(`${this.node(name).state}/jails/x`)}-`;
    const found: number[] = [];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        if (readFileSync(`/proc/${d}/cgroup`, 'utf8').includes(marker) && alive(Number(d))) found.push(Number(d));
      } catch {}
    }
    return found;
  }

  /**
   * Cuts node `name` from etcd: a drop rule for the etcd client ports in an nftables table of
   * the node's own namespace (the TCP connections hang, as in a real partition).
   */
  cut(name: NodeName): void {
    const n = this.node(name);
    const ports = ETCD_CLIENT_PORTS.join(', ');
    sh(
      'ip',
      ['netns', 'exec', n.netns, 'nft', '-f', '-'],
      `table inet jyccut {\n  chain out {\n    type filter hook output priority 0; policy accept;\n    ip daddr ${ROUTER_ADDR} tcp dport { ${ports} } drop\n  }\n}\n`,
    );
  }

  /** Undoes cut(). */
  heal(name: NodeName): void {
    sh('ip', ['netns', 'exec', this.node(name).netns, 'nft', 'delete', 'table', 'inet', 'jyccut']);
  }

  /** `jailyard --host <node's socket> ...args`, in this process (a unix socket reaches the
   * node's daemon from the host's namespaces). */
  cli(name: NodeName, ...args: string[]): Promise<CliResult> {
    return runCli(['--host', this.node(name).host, ...args]);
  }

  /** The same as a process of its own (bin/jailyard.js). */
  cliProcess(name: NodeName, ...args: string[]): Promise<CliResult> {
    return runProcess(process.execPath, [JY_BIN, '--host', this.node(name).host, ...args]);
  }

  /** `jailyard --state <node's state> ...args` inside the node (its local jails, not the cluster's). */
  local(name: NodeName, ...args: string[]): Promise<CliResult> {
    const n = this.node(name);
    const argv = [...this.inNode(n), process.execPath, JY_BIN, '--state', n.state, ...args];
    return runProcess(argv[0]!, argv.slice(1));
  }

  /** Any program inside node `name`'s namespaces. */
  execIn(name: NodeName, argv: string[], timeoutMs?: number): Promise<CliResult> {
    const a = [...this.inNode(this.node(name)), ...argv];
    return runProcess(a[0]!, a.slice(1), timeoutMs);
  }

  /** One request to node `name`'s API over its unix socket: status and parsed JSON body. */
  // biome-ignore lint/suspicious/noExplicitAny: a test reads fields of the JSON it asked for
  async api(name: NodeName, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    let agent = this.agents.get(name);
    if (!agent) this.agents.set(name, (agent = new Agent({ connect: { socketPath: this.node(name).socket } })));
    const r = await request(`http://localhost${path}`, {
      method: method as 'GET',
      dispatcher: agent,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    const text = await r.body.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {}
    return { status: r.statusCode, body: parsed };
  }

  /**
   * A `haproxy` that runs in the router namespace, for startHaproxy's `binary` (a wrapper
   * script in the topology's folder).
   */
  haproxyBinary(): string {
    const f = join(this.root, 'haproxy-in-router');
    writeFileSync(f, `#!/bin/sh\nexec ip netns exec ${this.routerNs} haproxy "$@"\n`, { mode: 0o755 });
    return f;
  }

  /** Any program in the router namespace (e.g. a probe of jails, HAProxy's frontend). */
  router(argv: string[]): Promise<CliResult> {
    return runProcess('ip', ['netns', 'exec', this.routerNs, ...argv]);
  }

  /** Mount points of node `name`'s mount namespace below its state folder. */
  nodeMounts(name: NodeName): string[] {
    const n = this.node(name);
    if (!n.holder?.pid || !alive(n.holder.pid)) return [];
    return readFileSync(`/proc/${n.holder.pid}/mountinfo`, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ')[4]!.replace(/\\040/g, ' '))
      .filter((m) => m.startsWith(`${n.state}/`));
  }

  /**
   * Removes everything, in an order that leaves nothing: daemons, each node's local jails
   * (removed through its own state folder inside the node), the holders, etcd, namespaces,
   * the folder. Safe to call twice and after a partial build.
   */
  async teardown(): Promise<void> {
    this.release();
    const errors: string[] = [];
    for (const a of this.agents.values()) await a.destroy().catch(() => {});
    this.agents.clear();
    await Promise.all([...this.nodes.values()].map((n) => stopProcess(n.serve, 3000)));
    // each node's leftovers, the nodes side by side
    await Promise.all(
      [...this.nodes.values()].map(async (n) => {
        if (!n.holder?.pid || !alive(n.holder.pid)) return;
        const names = await this.local(n.name, 'ls', '-a', '-N', 'name').catch(() => undefined);
        const list = names?.code === 0 ? names.stdout.split('\n').filter(Boolean) : [];
        if (list.length) {
          const r = await this.local(n.name, 'remove', '-p', '4', ...list);
          if (r.code !== 0) errors.push(`node ${n.name}: remove ${list.join(' ')}: ${r.stderr}`);
        }
        // what a failed removal left: the jails' processes
        for (const pid of this.jailPids(n.name)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {}
        }
      }),
    );
    for (const n of this.nodes.values()) {
      await killProcess(n.holder);
      n.holder = undefined;
    }
    for (const m of this.etcd) {
      await killProcess(m.proc);
      m.proc = undefined;
    }
    for (const ns of [...this.madeNetns].reverse()) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch (e) {
        errors.push(`netns ${ns}: ${e instanceof Error ? e.message : e}`);
      }
    }
    this.madeNetns = [];
    rmSync(this.root, { recursive: true, force: true });
    if (errors.length) throw new Error(`cluster teardown: ${errors.join('; ')}`);
  }

  /**
   * Nothing of this topology is left: namespaces (its own and its jails'), links, mounts,
   * cgroups, processes (etcd, daemons, holders, jails: their command lines mention the
   * folder, or their cgroups carry a node's tag). Call after teardown().
   */
  assertNoLeaks(): void {
    const left = readdirSync('/run/netns').filter((ns) => ns.startsWith(`jyc-${this.tag}-`));
    assert.deepEqual(left, [], 'topology namespaces left behind');
    for (const n of this.nodes.values()) assertNoLeaks(this.before, n.state);
    assertNoLeaks(this.before, this.root);
  }
}

/** Runs a program to its end (2 min at most) without blocking the event loop. */
export function runProcess(
  cmd: string,
  args: string[],
  timeoutMs = 120_000,
  env: Record<string, string> = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, JAILYARD_SRC: '1', ...env },
    });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d) => (stdout += d));
    p.stderr!.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    p.once('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code: code ?? 128 + (signal === 'SIGKILL' ? 9 : 15), stdout, stderr });
    });
  });
}

export { waitUntil, sleep };
