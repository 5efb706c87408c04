// The JSON records a cluster keeps in etcd (docs/cluster.md): nodes, jails, settings. Anything
// read from etcd is hostile input (another program, an older version, a corrupted write may
// have put it there): every record is checked field by field before it is used, and a bad
// one is refused with JY_ERR_CLUSTER_RECORD naming its key.

import { JailyardError } from '../errors.ts';
import type { ParamValue, Params } from '../conf/spec.ts';
import { ipv4Number, parseCidr } from '../conf/ipv4.ts';
import { isLabelKey, labelValueErrors } from '../meta/selector.ts';
import { DEFAULT_SETTINGS, checkSetting } from '../store/settings.ts';
import { validateJailName, wantedJid } from '../store/names.ts';
import type { JailRecord, JailState, Settings } from '../store/types.ts';

export { ipv4Number, parseCidr };

export type Desired = 'running' | 'stopped';

/** `P nodes/<name>`, attached to the node's lease. */
export interface NodeRecord {
  name: string;
  labels: Record<string, string>;
  /** The node's jail address range, "198.51.100.32/28" (IPv4 CIDR). */
  range: string;
  /** Maximum number of jails placed on the node. */
  capacity: number;
  /** The node's API URL when it listens on TCP. */
  api?: string;
  /** The skeleton versions the node has: "NAME@VERSION" -> sha256 of its manifest.tsv. */
  skeletons?: Record<string, string>;
  startedAt: string;
  version: 1;
}

/** Where a jail is placed; `token` changes with every placement (fail-over, re-placement). */
export interface Placement {
  node: string;
  token: string;
  at: string;
}

/** What the agent of the placed node reports for the jail. */
export interface JailStatus {
  state: JailState;
  jid: number;
  ready: boolean;
  lastError: string | null;
  addresses: string[];
  /** The placement token the report is for (a report for an older placement is stale). */
  token: string;
  at: string;
}

/** `P jails/<name>`. */
export interface ClusterJail {
  name: string;
  /** Parameters without meta and env. */
  params: Params;
  meta: string;
  env: string;
  desired: Desired;
  placement: Placement | null;
  status: JailStatus | null;
  createdAt: string;
  updatedAt: string;
  version: 1;
}

/** Longest record text accepted from etcd (etcd's own request limit is 1.5 MiB). */
const MAX_RECORD = 2 * 1024 * 1024;
const JAIL_STATES: readonly JailState[] = ['stopped', 'starting', 'running', 'stopping'];

class Bad extends Error {}

function fail(why: string): never {
  throw new Bad(why);
}
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
function str(o: Record<string, unknown>, f: string, max = 4096): string {
  const v = o[f];
  if (typeof v !== 'string') fail(`field "${f}" must be a string`);
  if (v.length > max) fail(`field "${f}" is longer than ${max} characters`);
  return v;
}
function int(o: Record<string, unknown>, f: string, min = 0): number {
  const v = o[f];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(`field "${f}" must be an integer >= ${min}`);
  return v;
}
function bool(o: Record<string, unknown>, f: string): boolean {
  const v = o[f];
  if (typeof v !== 'boolean') fail(`field "${f}" must be true or false`);
  return v;
}
function version(o: Record<string, unknown>): 1 {
  if (o.version !== 1) fail(`unsupported record version ${JSON.stringify(o.version)} (this jailyard reads 1)`);
  return 1;
}
function nameOk(n: string, what: string): string {
  if (n === '' || n.includes('/') || n.includes('\0') || /[\s]/.test(n))
    fail(`${what} ${JSON.stringify(n)} is not a valid name`);
  return n;
}

/** What `serve --node` accepts: a node name is printed by `jailyard nodes` and `ls`, so a record
 * written by anything else must not carry terminal control sequences or odd characters. */
export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
function nodeNameOk(n: string): string {
  if (!NODE_NAME.test(n)) fail(`node name ${JSON.stringify(n)} is not a valid name`);
  return n;
}

/** A node's API address as the agent writes it (http(s)://HOST:PORT/ or unix:///PATH), printable. */
function apiOk(a: string): string {
  if (!/^(https?:\/\/[A-Za-z0-9.:[\]-]+\/?|unix:\/\/\/[!-~]+)$/.test(a))
    fail(`field "api" ${JSON.stringify(a)} is not an http(s):// or unix:// address`);
  return a;
}

function parseParams(v: unknown): Params {
  if (!isObject(v)) fail('field "params" must be an object');
  const out: Params = {};
  for (const [k, p] of Object.entries(v)) {
    if (k === 'meta' || k === 'env' || k === '__proto__') fail(`parameter "${k}" does not belong in "params"`);
    const ok =
      typeof p === 'string' ||
      typeof p === 'boolean' ||
      (typeof p === 'number' && Number.isFinite(p)) ||
      (Array.isArray(p) && p.every((x) => typeof x === 'string'));
    if (!ok) fail(`parameter "${k}" has a value of the wrong type`);
    out[k] = p as ParamValue;
  }
  return out;
}

function parseLabels(v: unknown): Record<string, string> {
  if (!isObject(v)) fail('field "labels" must be an object');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!isLabelKey(k)) fail(`label key ${JSON.stringify(k)} is not valid`);
    if (typeof val !== 'string' || labelValueErrors(val).length) fail(`label ${k} has an invalid value`);
    out[k] = val;
  }
  return out;
}

function parseJson(text: string): Record<string, unknown> {
  if (text.length > MAX_RECORD) fail(`record is larger than ${MAX_RECORD} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    fail(`not JSON (${(e as Error).message})`);
  }
  if (!isObject(v)) fail('not a JSON object');
  return v;
}

/** Runs a checker; a failure is JY_ERR_CLUSTER_RECORD naming the key. */
function checked<T>(key: string, what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof Bad)
      throw new JailyardError('JY_ERR_CLUSTER_RECORD', `invalid ${what} record at etcd key "${key}": ${e.message}`, {
        key,
      });
    throw e;
  }
}

export function checkNodeRecord(v: Record<string, unknown>): NodeRecord {
  const name = nodeNameOk(str(v, 'name', 63));
  const range = str(v, 'range', 32);
  if (!parseCidr(range)) fail(`range ${JSON.stringify(range)} is not an IPv4 CIDR`);
  const api = v.api === undefined ? undefined : apiOk(str(v, 'api', 2048));
  const skeletons = v.skeletons === undefined ? undefined : parseSkeletonDigests(v.skeletons);
  return {
    name,
    labels: parseLabels(v.labels),
    range,
    capacity: int(v, 'capacity', 0),
    ...(api !== undefined ? { api } : {}),
    ...(skeletons !== undefined ? { skeletons } : {}),
    startedAt: str(v, 'startedAt', 64),
    version: version(v),
  };
}

/** "NAME@VERSION" (a skeleton name as registry.ts allows it) -> 64 hex digits. */
export const SKELETON_REF_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}@[1-9]\d{0,9}$/;
export const DIGEST_RE = /^[0-9a-f]{64}$/;

function parseSkeletonDigests(v: unknown): Record<string, string> {
  if (!isObject(v)) fail('field "skeletons" must be an object');
  const out: Record<string, string> = Object.create(null);
  const entries = Object.entries(v);
  if (entries.length > 10_000) fail('field "skeletons" has more than 10000 entries');
  for (const [ref, d] of entries) {
    if (!SKELETON_REF_RE.test(ref) || ref.includes('..')) fail(`skeleton ${JSON.stringify(ref)} is not NAME@VERSION`);
    if (typeof d !== 'string' || !DIGEST_RE.test(d)) fail(`skeleton ${ref}'s digest must be 64 hex digits`);
    out[ref] = d;
  }
  return { ...out };
}

export function parseNodeRecord(key: string, text: string): NodeRecord {
  return checked(key, 'node', () => {
    const rec = checkNodeRecord(parseJson(text));
    return rec;
  });
}

function parsePlacement(v: unknown): Placement | null {
  if (v === null) return null;
  if (!isObject(v)) fail('field "placement" must be an object or null');
  return { node: nodeNameOk(str(v, 'node', 63)), token: str(v, 'token', 128), at: str(v, 'at', 64) };
}

function parseStatus(v: unknown): JailStatus | null {
  if (v === null) return null;
  if (!isObject(v)) fail('field "status" must be an object or null');
  const state = str(v, 'state', 16) as JailState;
  if (!JAIL_STATES.includes(state)) fail(`status state ${JSON.stringify(state)} is not a jail state`);
  const le = v.lastError;
  if (le !== null && typeof le !== 'string') fail('field "lastError" must be a string or null');
  const addresses = v.addresses;
  if (!Array.isArray(addresses) || !addresses.every((a) => typeof a === 'string'))
    fail('field "addresses" must be a list of strings');
  return {
    state,
    jid: int(v, 'jid', 0),
    ready: bool(v, 'ready'),
    lastError: le === null ? null : String(le).slice(0, 65536),
    addresses: addresses as string[],
    token: str(v, 'token', 128),
    at: str(v, 'at', 64),
  };
}

export function checkClusterJail(v: Record<string, unknown>): ClusterJail {
  const desired = v.desired;
  if (desired !== 'running' && desired !== 'stopped') fail('field "desired" must be "running" or "stopped"');
  const name = nameOk(str(v, 'name', 1024), 'jail name');
  const params = parseParams(v.params);
  // the node creates a local jail of that name: the single host's rules hold
  try {
    validateJailName(name, wantedJid(params, name));
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
  return {
    name,
    params,
    meta: str(v, 'meta', MAX_RECORD),
    env: str(v, 'env', MAX_RECORD),
    desired,
    placement: parsePlacement(v.placement),
    status: parseStatus(v.status),
    createdAt: str(v, 'createdAt', 64),
    updatedAt: str(v, 'updatedAt', 64),
    version: version(v),
  };
}

/** A jail record from etcd; its name must be the one its key names. */
export function parseClusterJail(key: string, text: string, name?: string): ClusterJail {
  return checked(key, 'jail', () => {
    const j = checkClusterJail(parseJson(text));
    if (name !== undefined && j.name !== name) fail(`names jail "${j.name}", its key names "${name}"`);
    return j;
  });
}

/** The settings record; a missing setting has its default. */
export function parseSettings(key: string, text: string): Settings {
  return checked(key, 'settings', () => {
    const v = parseJson(text);
    const out: Settings = { ...DEFAULT_SETTINGS };
    for (const [k, val] of Object.entries(v)) {
      try {
        (out as unknown as Record<string, number>)[k] = checkSetting(k, val);
      } catch (e) {
        fail(e instanceof Error ? e.message : String(e));
      }
    }
    return out;
  });
}

export function encodeRecord(r: NodeRecord | ClusterJail | Settings): string {
  return JSON.stringify(r);
}

/** The jail as the API shows it: state from the agent's status (none yet: stopped), the
 * revision of its etcd key, no runtime facts (those stay on the node). A status for an
 * older placement is not this placement's: the jail shows as stopped until the node reports. */
export function toJailRecord(j: ClusterJail, revision: number): JailRecord {
  const s = j.status && j.placement && j.status.token === j.placement.token ? j.status : null;
  return {
    name: j.name,
    jid: s?.jid ?? 0,
    state: s?.state ?? 'stopped',
    params: j.params,
    meta: j.meta,
    env: j.env,
    revision,
    ready: s?.ready ?? false,
    runtime: null,
    lastError: s?.lastError ?? j.status?.lastError ?? null,
    createdAt: j.createdAt,
    updatedAt: j.updatedAt,
    ...(j.placement ? { node: j.placement.node } : {}),
  };
}
