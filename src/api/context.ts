// What the route files share: the event log, the service, the event hub, open streams.

import type { ServerResponse } from 'node:http';
import type { JailService } from '../runtime/types.ts';
import type { EventLog } from '../store/types.ts';
import type { WatchHub } from './hub.ts';

/** A cluster node as GET /v1/nodes shows it. */
export interface NodeView {
  name: string;
  labels: Record<string, string>;
  range: string;
  capacity: number;
  /** Jails placed on the node. */
  jails: number;
  /** The node's lease: its id and the seconds left before it expires (-1: gone; null:
   * etcd did not answer). */
  lease: { id: string; ttl: number | null };
  api?: string;
  startedAt: string;
}

export interface ApiContext {
  /** What the API serves revisions and events from: the store on one host, the cluster's
   * etcd mirror in cluster mode. */
  events: EventLog;
  service: JailService;
  /** Cluster mode: the live nodes (GET /v1/nodes); absent on one host. */
  nodes?: () => Promise<NodeView[]>;
  hub: WatchHub;
  /** Open watch streams, ended when the daemon closes. */
  streams: Set<ServerResponse>;
  bookmarkMs: number;
}
