// Row <-> JailRecord conversion (JSON columns parsed here and nowhere else).

import type { JailRecord, JailState } from './types.ts';

export interface JailRow {
  name: string;
  jid: number;
  state: string;
  params: string;
  meta: string;
  env: string;
  revision: number;
  /** 0 or 1 */
  ready: number;
  runtime: string | null;
  last_error: string | null;
  /** JSON or NULL (JailSupervision) */
  supervision: string | null;
  created_at: string;
  updated_at: string;
}

/** Jails by name, as every list of the store is ordered (JavaScript's string order: the
 * store's cache sorts so, and the CLI's fast `ls` too). */
export const byName = (a: { name: string }, b: { name: string }): number =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

export function rowToRecord(r: JailRow): JailRecord {
  return {
    name: r.name,
    jid: r.jid,
    state: r.state as JailState,
    params: JSON.parse(r.params) as JailRecord['params'],
    meta: r.meta,
    env: r.env,
    revision: r.revision,
    ready: r.ready === 1,
    runtime: r.runtime === null ? null : (JSON.parse(r.runtime) as JailRecord['runtime']),
    lastError: r.last_error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    ...(r.supervision ? { supervision: JSON.parse(r.supervision) as JailRecord['supervision'] } : {}),
  };
}

export function recordToRow(j: JailRecord): JailRow {
  return {
    name: j.name,
    jid: j.jid,
    state: j.state,
    params: JSON.stringify(j.params),
    meta: j.meta,
    env: j.env,
    revision: j.revision,
    ready: j.ready === true ? 1 : 0,
    runtime: j.runtime === null ? null : JSON.stringify(j.runtime),
    last_error: j.lastError,
    supervision: j.supervision ? JSON.stringify(j.supervision) : null,
    created_at: j.createdAt,
    updated_at: j.updatedAt,
  };
}
