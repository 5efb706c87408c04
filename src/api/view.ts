// The API's picture of a jail: the store record plus what the daemon derives (labels).
// One shape for GET, LIST, watch events and the client.

import { labelsOf } from '../meta/labels.ts';
import type { Params } from '../conf/spec.ts';
import type { HealthStatus, JailRecord, JailState, JailSupervision } from '../store/types.ts';

export interface JailView {
  name: string;
  state: JailState;
  jid: number;
  /** key=value lines of env then meta (meta wins): what label selectors match. */
  labels: Record<string, string>;
  meta: string;
  env: string;
  revision: number;
  params: Params;
  /** Set by the jail itself through its guest socket (PUT /ready), kept in the store;
   * false again once the jail stops or restarts. */
  ready: boolean;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
  /** Cluster mode: the node the jail is placed on (absent on one host). */
  node?: string;
  /** The health check's verdict while the jail runs (docs/health.md); null without one. */
  health: HealthStatus | null;
  /** Health detail and restarts (restart.policy); null when nothing was recorded. */
  supervision: JailSupervision | null;
}

export const VIEW_FIELDS = [
  'name',
  'state',
  'jid',
  'labels',
  'meta',
  'env',
  'revision',
  'params',
  'ready',
  'lastError',
  'createdAt',
  'updatedAt',
  'node',
  'health',
  'supervision',
] as const;
export type ViewField = (typeof VIEW_FIELDS)[number];

export function toView(record: JailRecord): JailView {
  return {
    name: record.name,
    state: record.state,
    jid: record.jid,
    labels: labelsOf(record.meta, record.env),
    meta: record.meta,
    env: record.env,
    revision: record.revision,
    params: record.params,
    ready: record.ready === true,
    lastError: record.lastError,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    ...(record.node !== undefined ? { node: record.node } : {}),
    health: (record.state === 'running' && record.supervision?.health?.status) || null,
    supervision: record.supervision ?? null,
  };
}

// The store hands out the same record object until the jail changes (readiness included):
// its JSON can be kept.
const jsonCache = new WeakMap<JailRecord, string>();

/** toView as JSON text, built once per record. */
export function viewJson(record: JailRecord): string {
  let json = jsonCache.get(record);
  if (json === undefined) jsonCache.set(record, (json = JSON.stringify(toView(record))));
  return json;
}

/** Keeps only the requested fields (jls-style parameter selection); name always stays. */
export function pickFields(view: JailView, fields: readonly ViewField[] | undefined): Partial<JailView> {
  if (!fields) return view;
  const out: Record<string, unknown> = { name: view.name };
  for (const f of fields) out[f] = view[f];
  return out as Partial<JailView>;
}
