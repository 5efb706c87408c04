// A cluster's state in etcd: one etcd3 client, a mirror (an informer: a range read of the
// prefix at revision R, then a watch from R+1 with the previous values) that keeps every
// node and jail in memory with a ring of recent jail events, and the writes, each one etcd
// transaction that compares the key's mod_revision (compare-and-swap).
//
// The mirror is the synchronous EventLog the API's watch hub and routes read, as they read
// the SQLite store on one host. A jail's revision is its key's mod_revision; the global
// revision is the last etcd revision the mirror has applied. Every record read from etcd is
// validated (records.ts); a bad one is reported and skipped, never trusted.

import { randomUUID } from 'node:crypto';
import { Etcd3, type IKeyValue, type IOptions, type IRangeResponse, type Lease, type Watcher } from 'etcd3';
import { JailyardError, describeError, isJailyardError } from '../errors.ts';
import { labelsOf } from '../meta/labels.ts';
import { parseSelector } from '../meta/selector.ts';
import { checkRevision } from '../store/revision.ts';
import { DEFAULT_SETTINGS } from '../store/settings.ts';
import type { EventLog, EventType, JailEvent, JailRecord, Settings } from '../store/types.ts';
import { type EtcdAccess, etcdClientOptions } from './etcd-access.ts';
import { type ClusterKeys, clusterKeys } from './keys.ts';
import {
  type ClusterJail,
  type NodeRecord,
  encodeRecord,
  parseCidr,
  parseClusterJail,
  parseNodeRecord,
  parseSettings,
  SKELETON_REF_RE,
  DIGEST_RE,
  toJailRecord,
} from './records.ts';

export interface ClusterStateOptions {
  /** etcd client URLs (http://HOST:PORT); the client fails over between them. */
  endpoints: string[];
  /** Client TLS and etcd user (etcd-access.ts); none: plain http, no authentication. */
  access?: EtcdAccess;
  /** Key prefix (default /jailyard/). */
  prefix?: string;
  /** Jail events kept in memory for watchers that resume (default 10000). */
  ringSize?: number;
  /** Bytes of those events (their records' JSON as etcd holds it, plus a fixed overhead per
   * event) kept at most (default 64 MiB): a ring of large records stays bounded. A watcher
   * asking for events older than the ring gets JY_ERR_REVISION_GONE, as after a compaction. */
  ringBytes?: number;
  /** Keys per range call of the listing (default 500: each reply stays far below gRPC's
   * 4 MiB message limit). */
  listPageSize?: number;
  /** Deadline of each etcd call, ms (default 5000). */
  callTimeoutMs?: number;
  /** How long open() tries to reach etcd, ms (default 10000). */
  connectTimeoutMs?: number;
  /** Compact etcd's history every this many ms (compactHistory with the settings'
   * event_history); off by default. */
  compactEveryMs?: number;
  /** A record in etcd failed validation (it is skipped; the mirror keeps going). */
  onInvalid?: (key: string, error: JailyardError) => void;
  /** The watch was lost and the mirror re-listed (after a compaction or a long outage). */
  onResync?: (revision: number) => void;
}

/** A jail as the mirror holds it: the record and its key's mod_revision. */
export interface JailEntry {
  jail: ClusterJail;
  revision: number;
}

/** A live node (its key exists, so its lease is alive). */
export interface NodeEntry {
  record: NodeRecord;
  revision: number;
  /** The lease the key is attached to (decimal string; '0' if none). */
  lease: string;
}

/** What changed in the mirror; listeners run synchronously after the mirror is updated. */
export type MirrorChange =
  | {
      kind: 'jail';
      type: EventType;
      name: string;
      entry: JailEntry | undefined;
      prev: JailEntry | undefined;
      revision: number;
    }
  | {
      kind: 'node';
      type: EventType;
      name: string;
      entry: NodeEntry | undefined;
      prev: NodeEntry | undefined;
      revision: number;
    }
  | { kind: 'settings'; settings: Settings; revision: number }
  /** The mirror re-listed everything: listeners must re-read the whole state. */
  | { kind: 'resync'; revision: number };

export interface UpdateOptions {
  /** Compare-and-swap against the caller's revision: JY_ERR_REVISION_CONFLICT unless the
   * jail is at it (no retry). Without it, a conflicting write is re-read and retried. */
  ifRevision?: number;
  /** Attempts before giving up under contention (default 100). */
  maxAttempts?: number;
  /** Keys that must not exist in etcd for the write to be made, compared in the same
   * transaction (create_revision 0): e.g. fail-over's `nodes/<lost>`, so an agent whose mirror lags
   * the lost node's re-registration cannot move a jail that node is starting. When one
   * exists, nothing is written: JY_ERR_CLUSTER with the key as its place. */
  requireAbsent?: readonly string[];
}

/** A node's registration: its key lives as long as the lease (kept alive by etcd3). */
export interface NodeRegistration {
  readonly name: string;
  readonly leaseId: string;
  /** etcd3's lease, for its events: 'lost' (expired or revoked by etcd, or never reached),
   * 'keepaliveFailed', 'keepaliveSucceeded'. */
  readonly lease: Lease;
  /** Ends the lease: the node's key goes away at once. */
  revoke(): Promise<void>;
}

const DEFAULT_RING = 10_000;
const DEFAULT_RING_BYTES = 64 * 1024 * 1024;
/** What one event costs beyond its record's JSON (its object, name, revision, time). */
const EVENT_OVERHEAD = 256;
/** Keys per range call of the initial listing: every call stays far below gRPC's 4 MiB. */
const LIST_PAGE = 500;
const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** An etcd call that failed for another reason than a compare: JY_ERR_CLUSTER. */
function clusterError(what: string, e: unknown): JailyardError {
  if (isJailyardError(e)) return e;
  return new JailyardError(
    'JY_ERR_CLUSTER',
    `etcd: ${what} failed: ${describeError(e)}`,
    { step: 'etcd' },
    { cause: e },
  );
}

/** Why etcd refused this client for good (TLS, authentication, permission), from an error
 * and its causes; undefined when it is worth trying again (unreachable, no leader). */
export function accessRefusal(e: unknown): string | undefined {
  let c: unknown = e;
  for (let depth = 0; c instanceof Error && depth < 6; depth++, c = c.cause) {
    const name = c.constructor?.name ?? c.name;
    if (
      /^Etcd(AuthenticationFailed|UserNotFound|PermissionDenied|InvalidAuthToken|RoleNotGranted|RoleNotFound)Error$/.test(
        name,
      )
    )
      return `etcd refused the user: ${grpcReason(c.message)}${
        /PermissionDenied/.test(name)
          ? ' (no --etcd-user, or the user has no readwrite role on the prefix; a client certificate alone acts as the user its CN names)'
          : ''
      }`;
    // a connection cut during the handshake (a member restarting) is worth another try
    if (
      /certificate|handshake|\bSSL\b|\bTLS\b|tlsv1|alert/i.test(c.message) &&
      !/disconnected before secure TLS connection/i.test(c.message)
    )
      return `TLS failed: ${tlsReason(c.message)}`;
  }
  return undefined;
}

const firstLine = (m: string): string => m.split('\n')[0]!.trim();
/** A gRPC error's text without its status ("3 INVALID_ARGUMENT: ") nor etcd's "etcdserver: ". */
const grpcReason = (m: string): string =>
  firstLine(m)
    .replace(/^\d+ [A-Z_]+: /, '')
    .replace(/^etcdserver: /, '');

/** The TLS layer's reason out of a gRPC error's text, with what it means for the flags. */
function tlsReason(message: string): string {
  const text = firstLine(message);
  // OpenSSL's "...:SSL routines:FUNCTION:REASON:FILE:LINE:..."; else Node's own wording
  const raw =
    /SSL routines:[^:]*:([^:]+):/.exec(text)?.[1] ??
    /Last error: (?:Error: )?(.+)$/.exec(text)?.[1] ??
    grpcReason(text.replace(/^.*?UNAVAILABLE: /, ''));
  // Node's advice (--use-system-ca) does not apply: the system's CAs are already trusted
  const reason = raw.replace(/; if the root CA is installed locally.*$/, '').replace(/\s*Resolution note:.*$/, '');
  if (/alert (bad certificate|certificate required|unknown ca|certificate unknown|handshake failure)/i.test(reason))
    return `${reason}: the member refused this node's client certificate (none given, or not signed by a CA the member trusts; --etcd-cert, --etcd-key)`;
  if (/self[- ]signed|unable to (get local issuer|verify)|unknown authority|certificate verify failed/i.test(reason))
    return `${reason}: the member's certificate is not signed by a trusted CA (--etcd-cacert; without it the system's CAs)`;
  if (/altname|Hostname\/IP does not match|not in the cert/i.test(reason))
    return `${reason}: the member's certificate does not name the host of the URL`;
  return reason;
}

function rev(v: string | number | undefined): number {
  return v === undefined ? 0 : Number(v);
}

/** Two IPv4 ranges overlap. */
export function rangesOverlap(a: string, b: string): boolean {
  const x = parseCidr(a);
  const y = parseCidr(b);
  if (!x || !y) return false;
  return x.first <= y.last && y.first <= x.last;
}

export class ClusterState implements EventLog {
  readonly keys: ClusterKeys;
  readonly client: Etcd3;
  /** How this process reaches etcd (TLS, user): the agent's keepalive thread and /health
   * probes use the same. */
  readonly access: EtcdAccess | undefined;
  readonly #opts: ClusterStateOptions;
  readonly #ringSize: number;
  readonly #ringBytes: number;
  #jails = new Map<string, JailEntry>();
  #nodes = new Map<string, NodeEntry>();
  #settings: Settings = { ...DEFAULT_SETTINGS };
  /** Jail events after #floor, oldest first. */
  #ring: JailEvent[] = [];
  /** What each event of #ring costs, in bytes, and their sum. */
  #ringCost: number[] = [];
  #ringTotal = 0;
  #floor = 0;
  #revision = 0;
  #watcher: Watcher | undefined;
  #listeners = new Set<(c: MirrorChange) => void>();
  #invalid = new Map<string, string>();
  #skeletonRefs = new Map<string, string>();
  /** Records as the API shows them, built once per entry (and per set of live nodes). */
  #records = new WeakMap<JailEntry, { gen: number; record: JailRecord }>();
  /** Labels (env then meta) of each entry, for selectors: parsed once per revision. */
  #labels = new WeakMap<JailEntry, Record<string, string>>();
  #nodesGen = 0;
  /** Jail names in order, until a jail is added or removed. */
  #sortedNames: string[] | undefined;
  /** The whole list as last built, valid while #listVersion is unchanged. */
  #listCache: { version: number; records: JailRecord[] } | undefined;
  /** Bumped by every change of a jail or of the live nodes. */
  #listVersion = 0;
  /** Leases this client keeps alive (released, not revoked, on close). */
  #leases = new Set<Lease>();
  #compactor: NodeJS.Timeout | undefined;
  /** The last write queued per jail (updateJail's turns). */
  #writing = new Map<string, Promise<unknown>>();
  #closed = false;
  #resyncing: Promise<void> | undefined;

  private constructor(opts: ClusterStateOptions) {
    this.#opts = opts;
    this.keys = clusterKeys(opts.prefix);
    this.access = opts.access;
    this.#ringSize = opts.ringSize ?? DEFAULT_RING;
    this.#ringBytes = opts.ringBytes ?? DEFAULT_RING_BYTES;
    const callMs = opts.callTimeoutMs ?? 5000;
    const options: IOptions = {
      hosts: opts.endpoints,
      dialTimeout: callMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callMs }),
      ...etcdClientOptions(opts.access),
    };
    this.client = new Etcd3(options);
  }

  /** Connects, lists the prefix and starts the watch. JY_ERR_CLUSTER when etcd cannot be
   * reached within connectTimeoutMs. */
  static async open(opts: ClusterStateOptions): Promise<ClusterState> {
    if (opts.endpoints.length === 0)
      throw new JailyardError('JY_ERR_USAGE', 'no etcd endpoint given', { param: '--etcd' });
    const s = new ClusterState(opts);
    if (opts.compactEveryMs) {
      s.#compactor = setInterval(() => void s.compactHistory().catch(() => {}), opts.compactEveryMs);
      s.#compactor.unref();
    }
    const until = Date.now() + (opts.connectTimeoutMs ?? 10_000);
    for (;;) {
      try {
        await s.#sync();
        return s;
      } catch (e) {
        // a certificate or a password does not get better by trying again
        const refused = accessRefusal(e);
        if (refused) {
          s.client.close();
          throw new JailyardError(
            'JY_ERR_CLUSTER',
            `etcd: connecting to ${opts.endpoints.join(',')} failed: ${refused}`,
            { step: 'etcd' },
            { cause: e },
          );
        }
        if (Date.now() >= until || (isJailyardError(e) && e.code !== 'JY_ERR_CLUSTER')) {
          s.client.close();
          throw clusterError(`connecting to ${opts.endpoints.join(',')}`, e);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#compactor);
    this.#listeners.clear();
    // their keepalive timers would outlive the client; the keys expire with their TTL
    for (const l of this.#leases) l.release();
    this.#leases.clear();
    const w = this.#watcher;
    this.#watcher = undefined;
    if (w) await w.cancel().catch(() => {});
    this.client.close();
  }

  // ------------------------------------------------------------------ the mirror (reads)

  currentRevision(): number {
    return this.#revision;
  }

  eventsSince(since: number, limit?: number): JailEvent[] {
    if (since < this.#floor) {
      throw new JailyardError(
        'JY_ERR_REVISION_GONE',
        `events after revision ${since} are no longer kept (this node's history starts at ${this.#floor}): list again`,
        { step: 'watch' },
      );
    }
    // the ring is sorted by revision: find the first event after `since`
    let lo = 0;
    let hi = this.#ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#ring[mid]!.revision <= since) lo = mid + 1;
      else hi = mid;
    }
    return this.#ring.slice(lo, limit === undefined ? undefined : lo + limit);
  }

  listJails(filter?: { selector?: string }): JailRecord[] {
    const selector = filter?.selector ? parseSelector(filter.selector) : undefined;
    const whole = !selector || selector.isEverything();
    if (whole && this.#listCache?.version === this.#listVersion) return this.#listCache.records.slice();
    this.#sortedNames ??= [...this.#jails.keys()].sort(byName);
    const out: JailRecord[] = [];
    for (const name of this.#sortedNames) {
      const e = this.#jails.get(name)!;
      if (selector && !selector.matches(this.#labelsOf(e))) continue;
      out.push(this.recordOf(e));
    }
    if (whole) this.#listCache = { version: this.#listVersion, records: out.slice() };
    return out;
  }

  #labelsOf(e: JailEntry): Record<string, string> {
    let l = this.#labels.get(e);
    if (!l) this.#labels.set(e, (l = labelsOf(e.jail.meta, e.jail.env)));
    return l;
  }

  getJail(name: string): JailRecord | undefined {
    const e = this.#jails.get(name);
    return e ? this.recordOf(e) : undefined;
  }

  /** The jail as the API shows it; a jail placed on a node that is gone shows stopped. */
  recordOf(e: JailEntry): JailRecord {
    const cached = this.#records.get(e);
    if (cached?.gen === this.#nodesGen) return cached.record;
    let r = toJailRecord(e.jail, e.revision);
    const node = e.jail.placement?.node;
    if (node !== undefined && !this.#nodes.has(node) && r.state !== 'stopped') {
      r = { ...r, state: 'stopped', jid: 0, ready: false, lastError: `node ${node} lost` };
    }
    this.#records.set(e, { gen: this.#nodesGen, record: r });
    return r;
  }

  jailEntry(name: string): JailEntry | undefined {
    return this.#jails.get(name);
  }

  jailEntries(): JailEntry[] {
    return [...this.#jails.values()];
  }

  nodeEntry(name: string): NodeEntry | undefined {
    return this.#nodes.get(name);
  }

  /** Live nodes, by name. */
  nodeEntries(): NodeEntry[] {
    return [...this.#nodes.values()].sort((a, b) => byName(a.record.name, b.record.name));
  }

  settings(): Settings {
    return this.#settings;
  }

  /** Keys whose record failed validation, with the reason (until a valid write or delete). */
  invalidRecords(): ReadonlyMap<string, string> {
    return this.#invalid;
  }

  /** Calls `listener` after every change the mirror applies; returns the unsubscribe. */
  subscribe(listener: (c: MirrorChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves true once `pred()` holds (checked now and after every mirror change), false
   * after timeoutMs; rejects with JY_ERR_INTERRUPTED when the signal aborts. */
  waitUntil(pred: () => boolean, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean> {
    if (pred()) return Promise.resolve(true);
    return new Promise((resolve, reject) => {
      const done = (f: () => void): void => {
        clearTimeout(timer);
        unsubscribe();
        opts.signal?.removeEventListener('abort', onAbort);
        f();
      };
      const onAbort = (): void =>
        done(() => reject(new JailyardError('JY_ERR_INTERRUPTED', 'interrupted while waiting for the cluster')));
      const timer = setTimeout(() => done(() => resolve(pred())), opts.timeoutMs);
      const unsubscribe = this.subscribe(() => {
        let ok = false;
        try {
          ok = pred();
        } catch (e) {
          done(() => reject(e));
          return;
        }
        if (ok) done(() => resolve(true));
      });
      if (opts.signal?.aborted) onAbort();
      else opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Waits until the mirror has applied revision `r` (a write's own revision: reads through
   * this client then see it). A watch that does not deliver it in time is not trusted any
   * more: the mirror re-lists. The write itself is done either way: false, not an error (a
   * caller retrying a write that was made would make it twice).
   */
  async caughtUp(r: number, timeoutMs = 10_000): Promise<boolean> {
    if (this.#revision >= r) return true;
    const ok = await this.waitUntil(() => this.#revision >= r, { timeoutMs });
    if (!ok && !this.#closed) this.#resync();
    return ok;
  }

  /**
   * Compacts etcd's history, keeping the last `keep` revisions (the settings' event_history
   * by default): watchers further behind must re-list, as with the SQLite store's log. Any
   * node may run it; a revision already compacted is no error. Returns the revision
   * compacted to, or 0 when there was nothing to do.
   */
  async compactHistory(keep: number = this.#settings.event_history): Promise<number> {
    const target = this.#revision - keep;
    if (target <= 0) return 0;
    try {
      await this.client.kv.compact({ revision: target });
    } catch (e) {
      if (/compacted/i.test(describeError(e))) return 0;
      throw clusterError('compacting the history', e);
    }
    return target;
  }

  #emit(c: MirrorChange): void {
    for (const l of [...this.#listeners]) {
      try {
        l(c);
      } catch {
        // a listener's failure is its own; the mirror goes on
      }
    }
  }

  #invalidRecord(key: string, e: unknown): void {
    const err = isJailyardError(e)
      ? e
      : new JailyardError('JY_ERR_CLUSTER_RECORD', `invalid record at etcd key "${key}": ${describeError(e)}`, { key });
    this.#invalid.set(key, err.message);
    this.#opts.onInvalid?.(key, err);
  }

  /** Lists the whole prefix at one revision and (re)starts the watch after it. */
  async #sync(): Promise<void> {
    const p = Buffer.from(this.keys.prefix);
    const end = endOfPrefix(p);
    // page by page, all at the revision of the first page: one consistent picture
    const kvs: IKeyValue[] = [];
    let r = 0;
    for (let from = p; ; ) {
      let res: IRangeResponse;
      try {
        res = await this.client.kv.range({
          key: from,
          range_end: end,
          limit: this.#opts.listPageSize ?? LIST_PAGE,
          ...(r ? { revision: r } : {}),
        });
      } catch (e) {
        throw clusterError('listing the cluster state', e);
      }
      if (!r) r = rev(res.header.revision);
      kvs.push(...res.kvs);
      if (!res.more || res.kvs.length === 0) break;
      from = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    const res = { kvs };
    const jails = new Map<string, JailEntry>();
    const nodes = new Map<string, NodeEntry>();
    let settings: Settings = { ...DEFAULT_SETTINGS };
    this.#invalid.clear();
    this.#skeletonRefs.clear();
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      this.#skeletonRef('put', key, kv.value.toString());
      try {
        const j = this.#parseJail(kv);
        if (j) jails.set(j.jail.name, j);
        const n = this.#parseNode(kv);
        if (n) nodes.set(n.record.name, n);
        if (key === this.keys.settings) settings = parseSettings(key, kv.value.toString());
      } catch (e) {
        this.#invalidRecord(key, e);
      }
    }
    const first = this.#revision === 0;
    this.#jails = jails;
    this.#nodes = nodes;
    this.#nodesGen++;
    this.#listVersion++;
    this.#sortedNames = undefined;
    this.#settings = settings;
    this.#revision = r;
    // events before the listing cannot be served: watchers further behind must re-list
    this.#ring = [];
    this.#ringCost = [];
    this.#ringTotal = 0;
    this.#floor = r;
    await this.#watch(r);
    if (!first) {
      this.#opts.onResync?.(r);
      this.#emit({ kind: 'resync', revision: r });
    }
  }

  async #watch(from: number): Promise<void> {
    const old = this.#watcher;
    this.#watcher = undefined;
    if (old) await old.cancel().catch(() => {});
    if (this.#closed) return;
    let w: Watcher;
    try {
      w = await this.client
        .watch()
        .prefix(this.keys.prefix)
        .startRevision(String(from + 1))
        .withPreviousKV()
        .create();
    } catch (e) {
      throw clusterError('starting the watch', e);
    }
    if (this.#closed) {
      await w.cancel().catch(() => {});
      return;
    }
    this.#watcher = w;
    w.on('data', (res) => {
      if (this.#watcher !== w) return;
      for (const ev of res.events) this.#apply(ev.type === 'Delete' ? 'delete' : 'put', ev.kv, ev.prev_kv);
      const hr = rev(res.header.revision);
      // a response's header revision also covers events of other prefixes: nothing of ours
      // happened up to it
      if (res.events.length === 0 && hr > this.#revision && !res.compact_revision) this.#advance(hr);
    });
    // etcd cancels a watch whose start was compacted; etcd3 reports that as an error: the
    // events in between are gone, so re-list
    w.on('error', () => {
      if (this.#watcher === w) this.#resync();
    });
  }

  /** Stops the watch, as a lost connection does (the mirror then stays at its revision). */
  async dropWatch(): Promise<void> {
    const w = this.#watcher;
    this.#watcher = undefined;
    if (w) await w.cancel().catch(() => {});
  }

  /** Watches again from the last revision the mirror applied, as etcd3 does after a lost
   * connection; when etcd compacted past it, the mirror re-lists (a resync). */
  async resumeWatch(): Promise<void> {
    try {
      await this.#watch(this.#revision);
    } catch {
      this.#resync();
      await this.#resyncing;
    }
  }

  #resync(): void {
    if (this.#closed || this.#resyncing) return;
    this.#resyncing = (async () => {
      for (let delay = 100; !this.#closed; delay = Math.min(delay * 2, 2000)) {
        try {
          await this.#sync();
          return;
        } catch {
          await new Promise((r) => setTimeout(r, delay));
        }
      }
    })().finally(() => {
      this.#resyncing = undefined;
    });
  }

  #advance(r: number): void {
    this.#revision = r;
  }

  /** `P skeletons/NAME@VERSION` -> the cluster's reference digest (the first published);
   * true when `key` is one (a malformed value is no reference). */
  #skeletonRef(type: 'put' | 'delete', key: string, value: string): boolean {
    const base = `${this.keys.prefix}skeletons/`;
    if (!key.startsWith(base)) return false;
    const ref = key.slice(base.length);
    if (type === 'delete' || !SKELETON_REF_RE.test(ref) || !DIGEST_RE.test(value)) this.#skeletonRefs.delete(ref);
    else this.#skeletonRefs.set(ref, value);
    return true;
  }

  /** The cluster's reference digest of each skeleton version ("NAME@VERSION" -> sha256). */
  skeletonRefs(): ReadonlyMap<string, string> {
    return this.#skeletonRefs;
  }

  /** Records `digests` as references where none is yet (create-if-absent, one txn per
   * version); returns the references as etcd has them after that. */
  async publishSkeletonRefs(digests: Record<string, string>): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const [ref, digest] of Object.entries(digests)) {
      if (!SKELETON_REF_RE.test(ref) || !DIGEST_RE.test(digest)) continue;
      const key = Buffer.from(`${this.keys.prefix}skeletons/${ref}`);
      const t = await this.#txn(`recording skeleton ${ref}'s digest`, {
        compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key, value: Buffer.from(digest) } }],
        failure: [{ request_range: { key } }],
      });
      const have = t.succeeded ? digest : t.responses[0]?.response_range?.kvs[0]?.value.toString();
      if (have !== undefined && DIGEST_RE.test(have)) {
        out.set(ref, have);
        this.#skeletonRefs.set(ref, have);
      }
    }
    return out;
  }

  /** Rewrites this node's own record (same lease), e.g. when its skeletons changed. */
  async updateNode(reg: NodeRegistration, node: NodeRecord): Promise<void> {
    const key = Buffer.from(this.keys.node(node.name));
    const t = await this.#txn(`updating node ${node.name}`, {
      compare: [{ key, target: 'Lease', result: 'Equal', lease: reg.leaseId }],
      success: [{ request_put: { key, value: Buffer.from(encodeRecord(node)), lease: reg.leaseId } }],
    });
    if (!t.succeeded)
      throw new JailyardError('JY_ERR_CLUSTER', `node "${node.name}"'s key is no longer held by its lease`, {
        step: 'etcd',
      });
  }

  #parseJail(kv: IKeyValue): JailEntry | undefined {
    const key = kv.key.toString();
    const name = this.keys.jailName(key);
    if (name === undefined) return undefined;
    return { jail: parseClusterJail(key, kv.value.toString(), name), revision: rev(kv.mod_revision) };
  }

  #parseNode(kv: IKeyValue): NodeEntry | undefined {
    const key = kv.key.toString();
    const name = this.keys.nodeName(key);
    if (name === undefined) return undefined;
    const record = parseNodeRecord(key, kv.value.toString());
    if (record.name !== name) {
      throw new JailyardError(
        'JY_ERR_CLUSTER_RECORD',
        `invalid node record at etcd key "${key}": names node "${record.name}"`,
        { key },
      );
    }
    return { record, revision: rev(kv.mod_revision), lease: String(kv.lease ?? '0') };
  }

  #apply(type: 'put' | 'delete', kv: IKeyValue, prevKv: IKeyValue | undefined): void {
    const key = kv.key.toString();
    const r = rev(kv.mod_revision);
    const at = new Date().toISOString();
    if (r > this.#revision) this.#revision = r;
    if (this.#skeletonRef(type, key, kv.value?.toString() ?? '')) return;
    const jailName = this.keys.jailName(key);
    if (jailName !== undefined) {
      const prev = this.#jails.get(jailName);
      if (type === 'delete') {
        this.#invalid.delete(key);
        let gone = prev;
        if (!gone && prevKv) {
          try {
            gone = this.#parseJail(prevKv);
          } catch {
            // the removed record was not valid either: nothing to report
          }
        }
        if (this.#jails.delete(jailName)) this.#sortedNames = undefined;
        this.#listVersion++;
        if (!gone) return;
        const last = { ...this.recordOf(gone), revision: r };
        this.#push({ revision: r, type: 'DELETED', name: jailName, jail: last, at }, prevKv?.value.length ?? 0);
        this.#emit({ kind: 'jail', type: 'DELETED', name: jailName, entry: undefined, prev, revision: r });
        return;
      }
      let entry: JailEntry | undefined;
      try {
        entry = this.#parseJail(kv);
      } catch (e) {
        // the last valid value stays: a bad write is reported, never acted on
        this.#invalidRecord(key, e);
        return;
      }
      if (!entry) return;
      this.#invalid.delete(key);
      if (!prev) this.#sortedNames = undefined;
      this.#jails.set(jailName, entry);
      this.#listVersion++;
      const t: EventType = prev ? 'MODIFIED' : 'ADDED';
      this.#push({ revision: r, type: t, name: jailName, jail: this.recordOf(entry), at }, kv.value.length);
      this.#emit({ kind: 'jail', type: t, name: jailName, entry, prev, revision: r });
      return;
    }
    const nodeName = this.keys.nodeName(key);
    if (nodeName !== undefined) {
      const prev = this.#nodes.get(nodeName);
      if (type === 'delete') {
        this.#invalid.delete(key);
        if (this.#nodes.delete(nodeName)) {
          this.#nodesGen++;
          this.#listVersion++;
        }
        if (prev) this.#emit({ kind: 'node', type: 'DELETED', name: nodeName, entry: undefined, prev, revision: r });
        return;
      }
      let entry: NodeEntry | undefined;
      try {
        entry = this.#parseNode(kv);
      } catch (e) {
        this.#invalidRecord(key, e);
        return;
      }
      if (!entry) return;
      this.#invalid.delete(key);
      this.#nodes.set(nodeName, entry);
      this.#nodesGen++;
      this.#listVersion++;
      this.#emit({ kind: 'node', type: prev ? 'MODIFIED' : 'ADDED', name: nodeName, entry, prev, revision: r });
      return;
    }
    if (key === this.keys.settings) {
      if (type === 'delete') this.#settings = { ...DEFAULT_SETTINGS };
      else {
        try {
          this.#settings = parseSettings(key, kv.value.toString());
          this.#invalid.delete(key);
        } catch (e) {
          this.#invalidRecord(key, e);
          return;
        }
      }
      this.#emit({ kind: 'settings', settings: this.#settings, revision: r });
    }
  }

  /** Appends an event (its record `bytes` long in etcd). Bounded in count (between ringSize
   * and twice that) and in bytes (at most ringBytes; trimmed to half of it): the oldest
   * events go, and the floor (the oldest revision a watcher may resume after) rises. The
   * newest event always stays, so a live watcher never misses it. */
  #push(e: JailEvent, bytes: number): void {
    const cost = bytes + e.name.length + EVENT_OVERHEAD;
    this.#ring.push(e);
    this.#ringCost.push(cost);
    this.#ringTotal += cost;
    if (this.#ring.length <= 2 * this.#ringSize && this.#ringTotal <= this.#ringBytes) return;
    let n = 0;
    let total = this.#ringTotal;
    const keep = this.#ring.length;
    while (keep - n > 1 && (keep - n > this.#ringSize || total > this.#ringBytes / 2)) total -= this.#ringCost[n++]!;
    const dropped = this.#ring.splice(0, n);
    this.#ringCost.splice(0, n);
    this.#ringTotal = total;
    if (dropped.length) this.#floor = dropped[dropped.length - 1]!.revision;
  }

  /** The events the mirror holds for watchers that resume: how many, their bytes (as
   * counted against ringBytes), and the revision after which they start. */
  ringStats(): { events: number; bytes: number; floor: number } {
    return { events: this.#ring.length, bytes: this.#ringTotal, floor: this.#floor };
  }

  // ------------------------------------------------------------------ writes

  /** The jail as etcd holds it now (not the mirror), or undefined. */
  async fetchJail(name: string): Promise<JailEntry | undefined> {
    const key = this.keys.jail(name);
    let res: IRangeResponse;
    try {
      res = await this.client.kv.range({ key: Buffer.from(key) });
    } catch (e) {
      throw clusterError(`reading ${key}`, e);
    }
    const kv = res.kvs[0];
    return kv ? this.#parseJail(kv) : undefined;
  }

  /** Creates the jail's key if absent (JY_ERR_JAIL_EXISTS otherwise); returns it once the
   * mirror has it. */
  async createJail(jail: ClusterJail): Promise<JailEntry> {
    const key = Buffer.from(this.keys.jail(jail.name));
    const res = await this.#txn(`creating jail ${jail.name}`, {
      compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [{ request_put: { key, value: Buffer.from(encodeRecord(jail)) } }],
    });
    if (!res.succeeded) {
      throw new JailyardError('JY_ERR_JAIL_EXISTS', `jail "${jail.name}" already exists`, { jail: jail.name });
    }
    const r = rev(res.header.revision);
    await this.caughtUp(r);
    return { jail, revision: r };
  }

  /**
   * Read-modify-write with compare-and-swap: `change` gets the CURRENT record (re-read from
   * etcd after a conflict) and returns the new one, or null for no change. A conflicting
   * writer makes it run again on the newer record, so writers of different fields (or keys
   * of meta) never lose each other's changes. JY_ERR_JAIL_NOT_FOUND when the jail is gone.
   */
  updateJail(
    name: string,
    change: (current: ClusterJail, revision: number) => ClusterJail | null,
    opts: UpdateOptions = {},
  ): Promise<JailEntry> {
    // writers of one key in this process take turns: they would only lose compares to each
    // other (etcd's compare still guards against every other client)
    const prev = this.#writing.get(name) ?? Promise.resolve();
    const mine = prev.then(() => this.#update(name, change, opts));
    const tail = mine.catch(() => {});
    this.#writing.set(name, tail);
    void tail.then(() => {
      if (this.#writing.get(name) === tail) this.#writing.delete(name);
    });
    return mine;
  }

  async #update(
    name: string,
    change: (current: ClusterJail, revision: number) => ClusterJail | null,
    opts: UpdateOptions,
  ): Promise<JailEntry> {
    const attempts = opts.maxAttempts ?? 100;
    const key = Buffer.from(this.keys.jail(name));
    // the mirror's copy first (one round trip when nobody races us); the compare in the
    // transaction catches a stale copy, and a failed compare returns etcd's current value
    let cur: JailEntry | undefined = this.#jails.get(name);
    let fromMirror = cur !== undefined;
    if (!cur) cur = await this.fetchJail(name);
    for (let i = 0; i < attempts; i++) {
      if (!cur) throw new JailyardError('JY_ERR_JAIL_NOT_FOUND', `jail "${name}" not found`, { jail: name });
      let next: ClusterJail | null = null;
      let refusal: { error: unknown } | undefined;
      try {
        checkRevision({ name, revision: cur.revision }, opts.ifRevision);
        next = change(cur.jail, cur.revision);
      } catch (e) {
        refusal = { error: e };
      }
      // a refusal or "nothing to change" is decided on etcd's value, never on a stale copy
      if (fromMirror && (refusal || next === null)) {
        fromMirror = false;
        cur = await this.fetchJail(name);
        i--;
        continue;
      }
      if (refusal) throw refusal.error;
      if (next === null) return cur;
      const absent = (opts.requireAbsent ?? []).map((k) => Buffer.from(k));
      const res = await this.#txn(`updating jail ${name}`, {
        compare: [
          { key, target: 'Mod', result: 'Equal', mod_revision: cur.revision },
          ...absent.map((k) => ({ key: k, target: 'Create' as const, result: 'Equal' as const, create_revision: 0 })),
        ],
        success: [{ request_put: { key, value: Buffer.from(encodeRecord(next)) } }],
        failure: [{ request_range: { key } }, ...absent.map((k) => ({ request_range: { key: k, count_only: true } }))],
      });
      if (res.succeeded) {
        const r = rev(res.header.revision);
        await this.caughtUp(r);
        return { jail: next, revision: r };
      }
      const present = absent.findIndex((_, j) => Number(res.responses[j + 1]?.response_range?.count ?? 0) > 0);
      if (present >= 0) {
        const k = opts.requireAbsent![present]!;
        throw new JailyardError(
          'JY_ERR_CLUSTER',
          `jail "${name}" was not changed: etcd key "${k}" exists (the change required it absent)`,
          { jail: name, key: k },
        );
      }
      // lost the race: go again on the value etcd returned (ifRevision then reports it)
      fromMirror = false;
      const kv = res.responses[0]?.response_range?.kvs[0];
      cur = kv ? this.#parseJail(kv) : undefined;
      // many writers on one key: exponential backoff with full jitter lets each through
      if (i > 0) await new Promise((res) => setTimeout(res, Math.random() * Math.min(500, 2 ** Math.min(i, 9))));
    }
    throw new JailyardError(
      'JY_ERR_CLUSTER',
      `jail "${name}" kept changing under ${attempts} attempts to update it; nothing was changed`,
      { jail: name },
    );
  }

  /** Deletes the jail's key when it is at `revision` (a compare-and-swap delete); false when
   * it changed (or is gone) meanwhile. */
  async deleteJailAt(name: string, revision: number): Promise<boolean> {
    const key = Buffer.from(this.keys.jail(name));
    const res = await this.#txn(`removing jail ${name}`, {
      compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: revision }],
      success: [{ request_delete_range: { key } }],
    });
    if (res.succeeded) await this.caughtUp(rev(res.header.revision));
    return res.succeeded;
  }

  /** Writes settings (read-modify-write with compare-and-swap on the settings key). */
  async updateSettings(patch: Partial<Settings>): Promise<Settings> {
    const key = Buffer.from(this.keys.settings);
    for (let i = 0; i < 100; i++) {
      let res: IRangeResponse;
      try {
        res = await this.client.kv.range({ key });
      } catch (e) {
        throw clusterError('reading the settings', e);
      }
      const kv = res.kvs[0];
      const cur = kv ? parseSettings(this.keys.settings, kv.value.toString()) : { ...DEFAULT_SETTINGS };
      const next = { ...cur, ...patch };
      const t = await this.#txn('writing the settings', {
        compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: kv ? rev(kv.mod_revision) : 0 }],
        success: [{ request_put: { key, value: Buffer.from(encodeRecord(next)) } }],
      });
      if (t.succeeded) {
        await this.caughtUp(rev(t.header.revision));
        return next;
      }
    }
    throw new JailyardError('JY_ERR_CLUSTER', 'the settings kept changing; nothing was changed', { step: 'etcd' });
  }

  /**
   * Registers a node under a new lease of `ttlSec`: refused (JY_ERR_NODE_CONFLICT, nothing
   * written, the lease revoked) when the name is held by another live node or the range
   * overlaps a live node's. The check and the put are one transaction: it compares that no
   * node key changed since the nodes were read, so two nodes registering at once cannot
   * both pass the overlap check.
   */
  async register(node: NodeRecord, opts: { ttlSec: number }): Promise<NodeRegistration> {
    if (!parseCidr(node.range)) {
      throw new JailyardError('JY_ERR_USAGE', `--range must be an IPv4 CIDR, got "${node.range}"`, {
        param: '--range',
      });
    }
    const nodesKey = Buffer.from(this.keys.nodes);
    const key = Buffer.from(this.keys.node(node.name));
    const lease = this.client.lease(opts.ttlSec, { autoKeepAlive: true });
    // a lease lost before the registration finished is reported by grant(); keep the
    // emitter from throwing for an unhandled 'error'
    lease.on('lost', () => {});
    let id: string;
    try {
      id = await lease.grant();
    } catch (e) {
      throw clusterError('granting the node lease', e);
    }
    const refuse = async (why: string): Promise<never> => {
      await lease.revoke().catch(() => {});
      throw new JailyardError('JY_ERR_NODE_CONFLICT', `node "${node.name}" cannot join: ${why}`, {
        param: '--node',
      });
    };
    try {
      for (let i = 0; i < 20; i++) {
        let res: IRangeResponse;
        try {
          res = await this.client.kv.range({ key: nodesKey, range_end: endOfPrefix(nodesKey) });
        } catch (e) {
          throw clusterError('reading the nodes', e);
        }
        const r = rev(res.header.revision);
        for (const kv of res.kvs) {
          const k = kv.key.toString();
          if (k === this.keys.node(node.name)) {
            return await refuse(
              `the name is held by a live node (lease ${kv.lease}); it is free once that node stops or its lease expires`,
            );
          }
          let other: NodeRecord;
          try {
            other = parseNodeRecord(k, kv.value.toString());
          } catch {
            continue; // an invalid record is no node
          }
          if (rangesOverlap(other.range, node.range))
            return await refuse(`its range ${node.range} overlaps node "${other.name}"'s range ${other.range}`);
        }
        const t = await this.#txn(`registering node ${node.name}`, {
          compare: [
            { key: nodesKey, range_end: endOfPrefix(nodesKey), target: 'Mod', result: 'Less', mod_revision: r + 1 },
            { key, target: 'Create', result: 'Equal', create_revision: 0 },
          ],
          success: [{ request_put: { key, value: Buffer.from(encodeRecord(node)), lease: id } }],
        });
        if (t.succeeded) {
          this.#leases.add(lease);
          lease.on('lost', () => this.#leases.delete(lease));
          await this.caughtUp(rev(t.header.revision));
          return {
            name: node.name,
            leaseId: id,
            lease,
            revoke: async () => {
              this.#leases.delete(lease);
              try {
                await lease.revoke();
              } catch (e) {
                throw clusterError('revoking the node lease', e);
              }
            },
          };
        }
      }
      return await refuse('the node list kept changing');
    } catch (e) {
      await lease.revoke().catch(() => {});
      throw e;
    }
  }

  /** Seconds left on a lease (-1 when it is gone). */
  async leaseTtl(leaseId: string, timeoutMs = 1000): Promise<number> {
    try {
      const res = await this.client.leaseClient.leaseTimeToLive({ ID: leaseId }, { deadline: Date.now() + timeoutMs });
      return Number(res.TTL);
    } catch (e) {
      throw clusterError('reading a lease', e);
    }
  }

  /** The cluster's voting members (learners do not count for a quorum) and their client URLs. */
  async members(timeoutMs = 2000): Promise<{ id: string; clientURLs: string[] }[]> {
    try {
      const res = await this.client.cluster.memberList({}, { deadline: Date.now() + timeoutMs });
      return res.members.filter((m) => !m.isLearner).map((m) => ({ id: m.ID, clientURLs: m.clientURLs }));
    } catch (e) {
      throw clusterError('listing the etcd members', e);
    }
  }

  async #txn(what: string, req: Parameters<Etcd3['kv']['txn']>[0]): Promise<Awaited<ReturnType<Etcd3['kv']['txn']>>> {
    try {
      return await this.client.kv.txn(req);
    } catch (e) {
      throw clusterError(what, e);
    }
  }
}

/** etcd's range end for every key starting with `prefix`. */
function endOfPrefix(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** A fresh placement token. */
export function newToken(): string {
  return randomUUID();
}
