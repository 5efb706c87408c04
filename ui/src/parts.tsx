// Small pieces the pages share: state badge, labels, confirmation, messages, the feed hook.

import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { JailView } from './api.ts';
import type { JailFeed } from './feed.ts';

/** Re-renders the caller whenever the feed changes. */
export function useFeed(feed: JailFeed): JailFeed {
  const [, setTick] = useState(0);
  // the version this render showed: a change between the render and the subscription below
  // (effects run after paint; the first list and the watch's first bookmark can land in
  // between) told nobody, and the view would wait for the next event, 30 s for an idle
  // feed's bookmark (the dashboard test's "live" that never came on a busy CI machine)
  const rendered = feed.version;
  useEffect(() => {
    const unsubscribe = feed.subscribe(() => setTick((n) => n + 1));
    if (feed.version !== rendered) setTick((n) => n + 1);
    return unsubscribe;
  }, [feed]);
  return feed;
}

export function StateBadge({ state }: { state: JailView['state'] }) {
  return <span class={`state state-${state}`}>{state}</span>;
}

export function Labels({ labels }: { labels: Record<string, string> }) {
  const keys = Object.keys(labels).sort();
  if (!keys.length) return <span class="muted">none</span>;
  return (
    <span class="labels">
      {keys.map((k) => (
        <span class="label" key={k}>
          {k}={labels[k]}
        </span>
      ))}
    </span>
  );
}

export function paramText(v: string | number | boolean | string[] | undefined): string {
  if (v === undefined) return '';
  return Array.isArray(v) ? v.join(',') : String(v);
}

/** ip4.addr and ip6.addr, as the table shows them. */
export function addresses(j: JailView): string {
  return [paramText(j.params['ip4.addr']), paramText(j.params['ip6.addr'])].filter(Boolean).join(', ');
}

/** A modal question; `onAnswer(true)` when confirmed. */
export function Confirm(props: { title: string; children: ComponentChildren; onAnswer(yes: boolean): void }) {
  useEffect(() => {
    const key = (e: KeyboardEvent) => {
      if (e.key === 'Escape') props.onAnswer(false);
    };
    window.addEventListener('keydown', key);
    return () => window.removeEventListener('keydown', key);
  }, [props.onAnswer]);
  return (
    <div class="overlay">
      <div class="dialog" role="dialog" aria-modal="true" aria-label={props.title}>
        <h3>{props.title}</h3>
        <div>{props.children}</div>
        <div class="buttons">
          <button type="button" onClick={() => props.onAnswer(false)}>
            Cancel
          </button>
          <button type="button" class="danger" data-testid="confirm" onClick={() => props.onAnswer(true)}>
            Confirm
          </button>
        </div>
      </div>
    </div>
  );
}

export interface Notice {
  kind: 'ok' | 'error';
  text: string;
}

export function NoticeLine({ notice }: { notice: Notice | undefined }) {
  if (!notice) return null;
  return (
    <p class={`notice notice-${notice.kind}`} role={notice.kind === 'error' ? 'alert' : 'status'}>
      {notice.text}
    </p>
  );
}
