// GET /v1/jails?watch=1: the event log as Server-Sent Events. Resumable with since (or
// Last-Event-ID); a label selector is applied like Kubernetes does: a jail that starts
// matching arrives as ADDED, one that stops matching leaves as DELETED.

import type { FastifyReply, FastifyRequest } from 'fastify';
import { JailyardError } from '../../errors.ts';
import { labelsOf } from '../../meta/labels.ts';
import { parseSelector, type Selector } from '../../meta/selector.ts';
import type { EventType, JailRecord } from '../../store/types.ts';
import type { ApiContext } from '../context.ts';
import { viewJson } from '../view.ts';
import type { HubEvent, HubSubscriber } from '../hub.ts';
import { sseFrame } from '../sse.ts';

export interface WatchQuery {
  labelSelector?: string;
  since?: number;
  initial: boolean;
}

const labelCache = new WeakMap<JailRecord, Record<string, string>>();
function labels(record: JailRecord): Record<string, string> {
  let l = labelCache.get(record);
  if (!l) labelCache.set(record, (l = labelsOf(record.meta, record.env)));
  return l;
}

const MAX_BUFFERED = 8 * 1024 * 1024;

/** What this watcher sees of an event: its type through the selector, or nothing. */
export function eventFor(e: HubEvent, selector: Selector | undefined): EventType | undefined {
  if (!selector) return e.type;
  const now = e.type !== 'DELETED' && selector.matches(labels(e.jail));
  // Unknown history (resumed from before the daemon's memory, log compacted): assume the
  // client may hold the jail, so it gets MODIFIED (an upsert) or DELETED (a no-op if absent).
  const before = e.prevKnown ? e.prev !== undefined && selector.matches(labels(e.prev)) : e.type !== 'ADDED';
  if (now) return before ? 'MODIFIED' : 'ADDED';
  return before ? 'DELETED' : undefined;
}

function lastEventId(request: FastifyRequest): number | undefined {
  const h = request.headers['last-event-id'];
  if (h === undefined || h === '') return undefined;
  const text = Array.isArray(h) ? (h[0] ?? '') : h;
  if (!/^\d+$/.test(text))
    throw new JailyardError('JY_ERR_USAGE', `Last-Event-ID must be a revision number, got "${text}"`, {
      param: 'Last-Event-ID',
    });
  return Number(text);
}

export function serveWatch(ctx: ApiContext, request: FastifyRequest, reply: FastifyReply, query: WatchQuery): void {
  const selector = query.labelSelector ? parseSelector(query.labelSelector) : undefined;
  const since = query.since ?? lastEventId(request);
  const frameOf = (e: HubEvent): string | undefined => {
    const type = eventFor(e, selector);
    if (!type) return undefined;
    // built once per record, shared by every watcher of the event
    const jail = viewJson(e.jail);
    return sseFrame(type, `{"type":"${type}","revision":${e.revision},"jail":${jail}}`, e.revision);
  };

  const res = reply.raw;
  let open = true;
  let timer: NodeJS.Timeout | undefined;
  const subscriber: HubSubscriber = {
    event(e) {
      const frame = frameOf(e);
      // (ended by endAllStreams but not yet closed: a write after end would throw)
      if (!frame || !open || res.writableEnded) return;
      res.write(frame);
      // A client that stopped reading is dropped rather than buffered without bound; it
      // resumes from its last id when it reconnects.
      if (res.writableLength > MAX_BUFFERED) end();
    },
    reset: () => end(),
  };
  // Throws JY_ERR_REVISION_GONE (410) before anything is written: a plain JSON error.
  const sub = ctx.hub.subscribe(since, subscriber);
  const end = (): void => {
    if (!open) return;
    open = false;
    sub.unsubscribe();
    if (timer) clearInterval(timer);
    ctx.streams.delete(res);
    res.end();
  };

  reply.hijack();
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  ctx.streams.add(res);
  res.on('close', end);
  let head = 'retry: 1000\n\n';
  if (since === undefined && query.initial) {
    // The hub's own state is exactly the state at sub.revision: no gap, no repeat.
    const names = [...ctx.hub.states().keys()].sort();
    for (const name of names) {
      const j = ctx.hub.states().get(name)!;
      if (selector && !selector.matches(labels(j))) continue;
      head += sseFrame('ADDED', `{"type":"ADDED","revision":${j.revision},"jail":${viewJson(j)}}`);
    }
  }
  for (const e of sub.backlog) head += frameOf(e) ?? '';
  // A bookmark right away tells the client where it stands even if nothing matched.
  head += sseFrame('BOOKMARK', JSON.stringify({ type: 'BOOKMARK', revision: sub.revision }), sub.revision);
  res.write(head);
  timer = setInterval(() => {
    const rev = ctx.hub.revision;
    if (open && !res.writableEnded)
      res.write(sseFrame('BOOKMARK', JSON.stringify({ type: 'BOOKMARK', revision: rev }), rev));
  }, ctx.bookmarkMs);
  timer.unref();
}

/** Ends every open stream (daemon shutdown): clients reconnect with their last id. */
export function endAllStreams(ctx: ApiContext): void {
  for (const res of [...ctx.streams]) res.end();
  ctx.streams.clear();
}
