// The one interface between the pure core / runtime and the operating system.
// Drivers execute; they decide nothing about order (src/runtime owns the step table) and
// report facts (pids, mounts, links, cgroups) that the runtime records in the store, so that
// stop, reconcile and crash recovery can undo exactly what was done.

import type { JailSpec } from '../conf/spec.ts';
import type { DebootstrapOptions } from '../skeleton/debootstrap.ts';
import type { MountPlan } from '../skeleton/plan.ts';
import type { CreateFacts, MountFacts, NetworkFacts, PortFacts } from '../store/types.ts';

// The facts a driver reports are the store's records (it persists them as they are), so
// their shapes are defined there; drivers take them from here with the rest of the contract.
export type { CreateFacts, MountFacts, NetworkFacts, PortFacts };

/** Everything a driver needs to know about the jail it works on. */
export interface JailContext {
  spec: JailSpec;
  /** = spec.name */
  name: string;
  /** Jail id, allocated by the store before the jail is created (like jls' jid). */
  jid: number;
  /** The jail's root directory on the host (its `path`). */
  path: string;
  /** jailyard's own per-jail folder (state/jails/NAME): logs, guest dir, writable parts. */
  stateDir: string;
  /** The parent jail's facts for a nested jail ("parent.child"); undefined for top level. */
  parent?: CreateFacts;
  /** A nested jail's parent root on the host: its `path` lies inside it (FreeBSD semantics). */
  parentPath?: string;
}

export interface ExecResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Environment added on top of the clean one (JID, JNAME, JPATH are always set). */
  env?: Record<string, string>;
  /** Run as this user (jexec -U / exec.jail_user). */
  user?: string;
  /** 'pipe' collects output into the result; 'inherit' passes the caller's stdio through. */
  stdio?: 'pipe' | 'inherit';
  /** runInJail with 'inherit': give the program a new pty of its own (the caller's terminal
   * never crosses; see `jailyard exec -t`). */
  tty?: boolean;
  /** Kill after this many milliseconds (exec.timeout). */
  timeoutMs?: number;
  /** runInJail with 'pipe': written to the command's stdin, which is then closed (a recipe's
   * CP hands a file's bytes to a copy made inside the jail). */
  input?: string | Buffer;
  /** Working directory (inside the jail for runInJail). */
  cwd?: string;
  /** Append stdout and stderr to this host file instead of piping them (exec.consolelog);
   * the call then resolves when the process exits, not when the daemons it started close
   * their inherited output. */
  consoleLog?: string;
  /** With consoleLog: resolve only once the command's output is in the log (its relay has
   * written everything; a relay kept open by daemons the command left is waited for briefly),
   * so the caller can read it back (jail(8)'s hook output passed to its caller). */
  drain?: boolean;
}

/** Limits from the spec's limits.* parameters, already parsed. */
export interface Limits {
  memoryBytes?: number;
  maxProcs?: number;
  /** CPU in percent of one core (100 = one core). */
  cpuPercent?: number;
}

/** What is on the system that jailyard could have made (for `reconcile`). */
export interface Leftovers {
  mounts: string[];
  netns: string[];
  links: string[];
  cgroups: string[];
  /** Host pids of jail init processes found alive. */
  pids: number[];
}

export interface Driver {
  readonly platform: 'linux' | 'freebsd';

  /** Throws JY_ERR_PLATFORM / JY_ERR_NOT_ROOT naming what is missing. */
  preflight(): Promise<void>;

  /** The addresses step (before create): netns, veth, bridge, ip4.addr/ip6.addr. */
  setupNetwork(ctx: JailContext): Promise<NetworkFacts>;
  teardownNetwork(ctx: JailContext, facts: NetworkFacts): Promise<void>;

  /** The ports step (after addresses): the jail's `expose` entries forwarded from the host
   * to its address. Refuses (JY_ERR_PORT_IN_USE, changing nothing) a host port that a jail
   * of any state folder publishes already. Absent where the platform has none yet. */
  publishPorts?(ctx: JailContext, net: NetworkFacts): Promise<PortFacts>;
  /** Removes exactly these published ports; tolerates them being gone already. */
  unpublishPorts?(ctx: JailContext, facts: PortFacts): Promise<void>;
  /** reconcile: makes this state folder's published ports those of `running` (restores
   * missing ones, removes those of no running jail). `keep`: another process is starting or
   * stopping a jail, remove nothing; `all` (reconcile --all): also the tables of state
   * folders no longer on the host. Returns what it changed, as "tcp 8080 -> addr:80". */
  syncPorts?(
    running: { jail: string; facts: PortFacts }[],
    opts: { keep: boolean; all?: boolean },
  ): Promise<{ restored: string[]; removed: string[] }>;

  /**
   * The mounts step: make every directory, symlink and mount of the plan in order.
   * On failure it undoes what it made itself and throws (JY_ERR_MOUNT with source/target).
   */
  mount(ctx: JailContext, plan: MountPlan): Promise<MountFacts>;
  /** Unmount in reverse order; tolerates targets already gone. */
  unmount(ctx: JailContext, facts: MountFacts): Promise<void>;

  /** The create step: namespaces/jail(2), pid 1, hostname, limits, dropped privileges. */
  create(ctx: JailContext, net: NetworkFacts, limits: Limits, mounts?: MountFacts): Promise<CreateFacts>;
  /** Remove the jail: SIGTERM to every process, then SIGKILL after timeoutMs; cgroups removed. */
  destroy(ctx: JailContext, facts: CreateFacts, timeoutMs: number): Promise<void>;
  /** Whether the jail described by facts still exists (pid alive and the same process). */
  isAlive(facts: CreateFacts): boolean;
  /** Whether a live jail has no process of its own left (what keeps its namespaces, pid 1
   * and its holder, does not count): a jail without `persist` then goes away (jail(8)).
   * Absent where the kernel removes such a jail itself (FreeBSD). */
  idle?(facts: CreateFacts): boolean;
  /** Change limits / hostname of a running jail in place (jail -m). `meta` and `env` are the
   * new whole values, for kernels that keep them (FreeBSD 15); on Linux the runtime writes
   * the jail's env file itself. */
  modify(
    ctx: JailContext,
    facts: CreateFacts,
    changes: { hostname?: string; limits?: Limits; meta?: string; env?: string },
  ): Promise<void>;

  /** exec.prepare, exec.prestart, exec.created, exec.poststart, exec.poststop, exec.release:
   * `/bin/sh -c command` on the host with JID, JNAME, JPATH set. */
  runHost(ctx: JailContext, command: string, opts?: ExecOptions): Promise<ExecResult>;
  /** exec.start, exec.stop, command, `jailyard exec`: argv inside every namespace and the
   * cgroup of the jail, clean environment, dropped capabilities (like jexec). */
  runInJail(ctx: JailContext, facts: CreateFacts, argv: string[], opts?: ExecOptions): Promise<ExecResult>;

  /** Mount points at or below `dir` right now (the runtime never deletes a folder that still
   * has one: a recursive delete would go through a read-write mount into its source). */
  mountsBelow(dir: string): string[];

  /** A removed jail's folder `jailDir` is deleted: give back what the host holds for it
   * outside that folder (Linux: its user-namespace range in the host-wide registry). */
  forget?(jailDir: string): Promise<void>;

  /** A sparse image of `bytes` holding a filesystem with the content of `from` (none: empty),
   * for a skeleton jail's size-limited writable part (limits.disk). Absent where the platform
   * has none (FreeBSD). */
  makeDiskImage?(image: string, bytes: number, from: string | undefined, jail: string): Promise<void>;

  /** Builds a Debian tree with debootstrap (`skel create --debootstrap`); absent where the
   * platform has none (FreeBSD). */
  debootstrap?(opts: DebootstrapOptions): Promise<void>;

  /** Everything of jailyard's found on the system (named by prefix) for reconcile. */
  scanLeftovers(): Promise<Leftovers>;
  /** Whether a leftover found by scanLeftovers is marked as this state folder's (its name
   * carries the state folder's tag, or it lies below the state folder), so reconcile can
   * remove it without --all: nothing of another jailyard state folder is touched. */
  isOwnLeftover(kind: keyof Leftovers, id: string | number): boolean;
  /** The other state folder, still on this host, whose tag a leftover carries: reconcile
   * --all leaves it alone (it is that folder's running jail, or that folder's to reconcile). */
  otherStateOf?(kind: keyof Leftovers, id: string | number): string | undefined;
  /** Remove one leftover found by scanLeftovers (kind + id as reported there). */
  removeLeftover(kind: keyof Leftovers, id: string | number): Promise<void>;

  /** SIGKILL every process of every jail of this state folder at once, nested jails' too,
   * and wait (briefly) until none is left: a cluster node's fence when its daemon died
   * (src/cluster/fence-guard.ts). Nothing else is undone: the next daemon reconciles.
   * Returns how many processes it killed. */
  killAll?(): Promise<number>;
}
