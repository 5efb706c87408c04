// What the route files share: the store, the service, the event hub, readiness, open streams.

import type { ServerResponse } from 'node:http';
import type { JailService } from '../runtime/types.ts';
import type { JailRecord, Store } from '../store/types.ts';
import type { WatchHub } from './hub.ts';
import { toView, viewJson, type JailView } from './view.ts';

export interface ApiContext {
  store: Store;
  service: JailService;
  hub: WatchHub;
  /** Jails that said PUT /ready on their guest socket since they last started. */
  ready: Set<string>;
  /** Open watch streams, ended when the daemon closes. */
  streams: Set<ServerResponse>;
  bookmarkMs: number;
}

export function viewOf(ctx: ApiContext, record: JailRecord): JailView {
  return toView(record, ctx.ready.has(record.name));
}

export function viewJsonOf(ctx: ApiContext, record: JailRecord): string {
  return viewJson(record, ctx.ready.has(record.name));
}
