// The embedded state store's contract (implemented in src/store/sqlite.ts over SQLite).
// The CLI and the daemon share it; neither needs the other. Every state change is one
// transaction that also appends one event with the next global revision.

import type { Params } from '../conf/spec.ts';
import type { MetaOp } from '../meta/ops.ts';

/** Jail status as a state machine; see ALLOWED_TRANSITIONS. */
export type JailState = 'stopped' | 'starting' | 'running' | 'stopping';

export const ALLOWED_TRANSITIONS: Readonly<Record<JailState, readonly JailState[]>> = {
  stopped: ['starting'],
  // a failed start unwinds back to stopped
  starting: ['running', 'stopped'],
  // a jail found dead (reconcile) goes straight to stopped
  running: ['stopping', 'stopped'],
  // a failed stop stays stopping until reconcile finishes it
  stopping: ['stopped'],
};

// The runtime facts below are persisted as JSON in each jail's record (the platform drivers
// report them, src/platform/driver.ts): a field may be added, never renamed or removed, or
// stores written before would no longer read the same.

/** The jailyard process walking a jail's steps (src/runtime/owner.ts). */
export interface Owner {
  pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks since boot), when the platform has /proc. */
  startTime?: string;
}

export interface NetworkFacts {
  /** Linux: named network namespace (ip netns) holding the jail's interfaces. */
  netns?: string;
  /** Linux: host side and jail side of the veth pair. */
  veth?: { host: string; jail: string };
  /** Linux: the bridge the host side is attached to (created on demand, shared). */
  bridge?: string;
  /** Addresses configured, as given in ip4.addr / ip6.addr (with prefix). */
  addresses: string[];
}

export interface MountFacts {
  /** Targets actually mounted, in the order they were mounted (host paths). */
  mounted: string[];
  /** Directories and symlinks the plan created (removed on undo only if jailyard made them). */
  created: string[];
  /** Linux, nested jail: the mounts were made in a private mount namespace held by this
   * process until the create step copied it; they are not in the host's mount table. */
  namespaceHolder?: number;
  /** Linux: mounts made nosuid in the host's view (a local user must never run a setuid
   * program the jailed root planted) whose setuid bits the jail itself honours: the create
   * step clears nosuid on them in the jail's own mount namespace. */
  suid?: string[];
}

export interface CreateFacts {
  /** Host pid of the jail's pid 1 (Linux: the reaper inside the new pid namespace). */
  initPid: number;
  /** Host pid of the process that holds the namespaces from outside (Linux: unshare), if any. */
  holderPid?: number;
  /** /proc/<pid>/ns/* inode identities at creation, to detect pid reuse. */
  nsIds?: Record<string, string>;
  /** cgroup directories created for the jail (v1: one per controller; v2: one). */
  cgroups: string[];
  /** Process start time (from /proc/<pid>/stat field 22) to detect pid reuse. */
  startTime?: string;
  /** Host uid of the jail's root (its uid 0): 0, or the first uid of its user namespace's
   * range (its own, or its parent's for a child). Who may use the guest socket's routes
   * that change something (the in-jail jail(8), readiness). */
  rootUid?: number;
}

/** What the runtime did to the system for a jail: enough to undo it after a crash. */
/** Published ports (the `expose` parameter) as the ports step put them in place. */
export interface PortFacts {
  /** Linux: the nftables table (`ip jy-TAG-ports`) holding them. */
  table?: string;
  /** Linux: the bridge the jail's address is on (what the table's masquerade names). */
  bridge?: string;
  ports: PublishedPort[];
}

/** Host ports hostPort..hostPortEnd of `proto` forwarded to address:jailPort..jailPortEnd. */
export interface PublishedPort {
  proto: 'tcp' | 'udp';
  hostPort: number;
  hostPortEnd: number;
  address: string;
  jailPort: number;
  jailPortEnd: number;
}

export interface RuntimeFacts {
  /** Names of the start steps completed, in order (the undo stack). */
  steps: string[];
  network?: NetworkFacts;
  ports?: PortFacts;
  mounts?: MountFacts;
  create?: CreateFacts;
  /** The jailyard process walking the steps while the jail is starting or stopping. */
  owner?: Owner;
  /** The jail's root on the host as this start made it (JailContext.path): what jls(8) and
   * `ls` print as `path` on the host, as FreeBSD's jls prints the kernel's path, also for a
   * skeleton jail whose root is in the state folder. Never shown inside a jail. */
  root?: string;
  /** The jail went away by itself (no `persist` and no process left): its stop undoes what
   * the start made but runs no exec.* command, as jail(8) runs none for such a jail. */
  died?: boolean;
}

/** A health check's verdict (docs/health.md): 'starting' until the first success or the
 * end of health.start_period, 'healthy' after a success, 'unhealthy' after health.retries
 * failures in a row. */
export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

/** Why the supervisor restarts a jail (restart.policy, docs/health.md). */
export type RestartReason = 'died' | 'exited' | 'unhealthy';

/** What the daemon's supervisor (src/runtime/supervisor.ts) keeps of a jail: its health in
 * its current life and its restarts. Written by the supervisor, and by transitions:
 * 'starting' and 'stopped' clear `health`; 'starting' and 'stopping' clear `pending` unless
 * the transition's own patch sets it (an operator's stop or start cancels a restart). */
export interface JailSupervision {
  health?: {
    status: HealthStatus;
    /** Failed checks in a row. */
    failingStreak: number;
    /** When the status last changed (ISO time). */
    since: string;
    /** The last failed check's output (bounded, control characters removed). */
    output?: string;
  };
  /** How many times the supervisor restarted the jail since it was created. */
  restarts: number;
  /** Restarts in a row without the jail staying up (the back-off exponent). */
  streak?: number;
  /** When the supervisor last started the jail (ISO time). */
  lastStart?: string;
  lastReason?: RestartReason;
  /** A restart the supervisor owes: due at `at` (ISO time). */
  pending?: { reason: RestartReason; at: string; attempt: number };
}

export interface JailRecord {
  name: string;
  /** Jail id while running (allocated when starting), 0 when stopped. */
  jid: number;
  state: JailState;
  /** Resolved parameters, without meta and env (those are below). */
  params: Params;
  meta: string;
  env: string;
  /** Grows on every change of this jail (parameters, meta, env, state, readiness). */
  revision: number;
  /** The jail said it is ready (PUT /ready on its guest socket); every transition to
   * 'starting' or 'stopped' clears it. Event snapshots written before the field existed are
   * normalised to false when read. */
  ready: boolean;
  runtime: RuntimeFacts | null;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
  /** Cluster mode: the node the jail is placed on (absent on one host and while unplaced). */
  node?: string;
  /** Health and restarts (docs/health.md); absent or null when nothing was recorded. */
  supervision?: JailSupervision | null;
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface JailEvent {
  /** Global revision: strictly increasing, one per event, never reused. */
  revision: number;
  type: EventType;
  name: string;
  /** The jail after the change (for DELETED: as it was when removed). */
  jail: JailRecord;
  at: string;
}

/** One write to a jail: parameters set/unset, meta and env key operations, in order. */
export interface JailChange {
  params?: Params;
  unset?: string[];
  meta?: MetaOp[];
  env?: MetaOp[];
}

export interface WriteOptions {
  /** Compare-and-swap: fail with JY_ERR_REVISION_CONFLICT unless the jail's revision is this. */
  ifRevision?: number;
}

/** Host-wide settings, like FreeBSD's security.jail.* sysctls. */
export interface Settings {
  /** security.jail.meta_maxbufsize: bytes including the trailing NUL (default 4096). */
  meta_maxbufsize: number;
  /** 1: a parent's meta_maxbufsize also covers the meta and env of all its descendants. */
  meta_hierarchical: number;
  /** How many events the log keeps at least before compaction (default 100000). */
  event_history: number;
}

/** The part of the state the API's watch hub and routes read, synchronously: the SQLite
 * store is one, a cluster's etcd mirror (src/cluster/state.ts) the other. */
export interface EventLog {
  currentRevision(): number;
  /** Events with revision > since, oldest first; JY_ERR_REVISION_GONE when the log no
   * longer holds every event after `since` (the client must re-list). */
  eventsSince(since: number, limit?: number): JailEvent[];
  /** All jails (or those matching the label selector), ordered by name. */
  listJails(filter?: { selector?: string }): JailRecord[];
  /** A log that learns of changes by itself (the cluster's watch) calls `listener` after
   * each: readers wake at once instead of at their next poll. Returns the unsubscribe. */
  subscribe?(listener: () => void): () => void;
}

/** What a state transition changes beside the state (JailStore.transition). */
export interface TransitionPatch {
  runtime?: RuntimeFacts | null;
  lastError?: string | null;
  /** The supervision after the transition, from what it is once the transition's own
   * rules applied (see JailSupervision); stores without supervision ignore it. */
  supervision?: (cur: JailSupervision | null) => JailSupervision | null;
}

export interface Store extends EventLog {
  readonly dir: string;
  close(): void;

  createJail(input: { name: string; params: Params; meta?: MetaOp[]; env?: MetaOp[] }): JailRecord;
  getJail(name: string): JailRecord | undefined;
  /** Throws JY_ERR_JAIL_NOT_FOUND. */
  requireJail(name: string): JailRecord;
  /**
   * A jail as jail(8)'s jail_getid() finds it: an all-digit reference is first the jid of a
   * jail that is not stopped, then a jail of that name (a numeric name is its jid), then the
   * one stopped jail whose `jid` parameter asks for it; any other reference is a name.
   */
  resolveJail(ref: string): JailRecord | undefined;
  /** resolveJail, or JY_ERR_JAIL_NOT_FOUND naming the reference. */
  requireJailRef(ref: string): JailRecord;
  /** All jails (or those matching the label selector), ordered by name. */
  listJails(filter?: { selector?: string }): JailRecord[];
  /** Apply a change atomically; meta/env ops are applied to the CURRENT value inside the
   * transaction (so concurrent key writers never lose each other's keys). */
  modifyJail(name: string, change: JailChange, opts?: WriteOptions): JailRecord;
  /** State machine step; throws JY_ERR_INVALID_TRANSITION "invalid transition from X to Y".
   * Going to 'starting' allocates a jid; going to 'stopped' clears it. Both clear `ready`. */
  transition(
    name: string,
    from: JailState,
    to: JailState,
    patch?: TransitionPatch,
    /** Runs inside the write transaction before the change; throwing cancels it. Checks
     * that read other jails (children.max) cannot race another process this way. */
    guard?: () => void,
  ): JailRecord;
  /** The jail's readiness (its guest signal). Only a running jail can become ready
   * (JY_ERR_INVALID_TRANSITION otherwise). A change bumps the jail's revision and appends
   * one MODIFIED event; setting the value it already has changes nothing. */
  setReady(name: string, ready: boolean): JailRecord;
  /** The supervisor's write (health, restarts): `update` sees the current record inside the
   * write transaction and returns the new supervision, or undefined to change nothing. A
   * change bumps the revision and appends one MODIFIED event. Absent in stores without it
   * (the cluster's). */
  supervise?(name: string, update: (cur: JailRecord) => JailSupervision | null | undefined): JailRecord;
  /** Record progress (runtime facts) without changing state: bumps the revision, one MODIFIED
   * event (watchers see every revision, as in Kubernetes). `undo`: the progress of an undo (a
   * failed start unwinding, a recovery): like a stop's steps it needs no room beyond the
   * reserve, so a start that met a full disk can still take back what it made. */
  recordRuntime(name: string, runtime: RuntimeFacts | null, opts?: { undo?: boolean }): void;
  removeJail(name: string, opts?: WriteOptions): void;

  /** For long-running processes (the daemon): keep the store's housekeeping (SQLite's WAL
   * checkpoints) off the write path, in the background, until stopped. */
  checkpointInBackground?(): { stop(): Promise<void> };

  currentRevision(): number;
  /** Events with revision > since, oldest first. Throws JY_ERR_REVISION_GONE when events
   * after `since` have already been compacted away (the client must re-list). */
  eventsSince(since: number, limit?: number): JailEvent[];

  getSettings(): Settings;
  setSetting<K extends keyof Settings>(name: K, value: Settings[K]): void;
}
