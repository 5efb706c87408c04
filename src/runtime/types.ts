// The operations every front end (CLI, HTTP API, rollout) uses on jails. Implemented locally
// over the store + a driver (src/runtime/service.ts) and remotely over HTTP
// (src/api/client.ts), so `jailyard --host ...` prints exactly what the local CLI prints.

import type { JailSpec } from '../conf/spec.ts';
import type { MetaOp } from '../meta/ops.ts';
import type { JailChange, JailRecord, WriteOptions } from '../store/types.ts';

export interface BatchOptions {
  /** Run up to this many independent jails at once (jail -p). Default 1. */
  parallel?: number;
  /** Print the plan, change nothing. */
  dryRun?: boolean;
  /** Aborted (a signal to the CLI): jails not begun are skipped; a jail being started is
   * rolled back before its next step (JY_ERR_INTERRUPTED). */
  signal?: AbortSignal;
  /** Local service only: the output of the jails' exec.* commands, passed to the caller as
   * jail(8) passes it to its own stdout (src/runtime/lifecycle.ts, hookSink). Without it,
   * the output only goes to each jail's console log. */
  hookOutput?: (jail: string, stream: 'stdout' | 'stderr', text: string) => void;
  /** This call's progress lines (a local service's own `progress` otherwise; a daemon's
   * service asks the daemon for them and passes them on when it answers). */
  progress?: (jail: string, text: string) => void;
}

export interface JailOutcome {
  name: string;
  status: 'ok' | 'failed' | 'skipped';
  /** For failed: the error's describe(); for skipped: why (the failed dependency). */
  message?: string;
  code?: string;
}

export interface BatchResult {
  outcomes: JailOutcome[];
  /** True when every jail succeeded. */
  ok: boolean;
}

export interface JailService {
  list(filter?: { selector?: string }): Promise<JailRecord[]>;
  get(name: string): Promise<JailRecord>;
  create(input: { spec: JailSpec; meta?: MetaOp[]; env?: MetaOp[] }): Promise<JailRecord>;
  /** jail -m: parameters, meta and env key operations; applied in place when running. */
  modify(name: string, change: JailChange, opts?: WriteOptions): Promise<JailRecord>;
  start(names: string[], opts?: BatchOptions): Promise<BatchResult>;
  stop(names: string[], opts?: BatchOptions): Promise<BatchResult>;
  restart(names: string[], opts?: BatchOptions): Promise<BatchResult>;
  /** Stops the jail first if it runs, then forgets it. With `ifRevision` (one jail without
   * children): JY_ERR_REVISION_CONFLICT, and nothing changes, unless the jail is at that
   * revision when the removal makes its first change. */
  remove(names: string[], opts?: BatchOptions & WriteOptions): Promise<BatchResult>;
}
