// What the route files share: the store, the service, the event hub, open streams.

import type { ServerResponse } from 'node:http';
import type { JailService } from '../runtime/types.ts';
import type { Store } from '../store/types.ts';
import type { WatchHub } from './hub.ts';

export interface ApiContext {
  store: Store;
  service: JailService;
  hub: WatchHub;
  /** Open watch streams, ended when the daemon closes. */
  streams: Set<ServerResponse>;
  bookmarkMs: number;
}
