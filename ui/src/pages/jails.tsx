// The jails table: follows the watch stream (JailFeed), filtered by a label selector typed as
// on the CLI (`-l`), parsed by the same parser as the daemon's (src/meta/selector.ts), so an
// error names the column the daemon would. Start, stop, restart and remove ask first.

import { useRef, useState } from 'preact/hooks';
import { parseSelector, type Selector } from '../../../src/meta/selector.ts';
import { request, type BatchResult, type JailView } from '../api.ts';
import type { JailFeed } from '../feed.ts';
import { addresses, Confirm, Labels, type Notice, NoticeLine, paramText, StateBadge, useFeed } from '../parts.tsx';

type Verb = 'start' | 'stop' | 'restart' | 'remove';

/** What a batch answer says, in one line. */
export function describeBatch(verb: Verb, name: string, r: BatchResult): Notice {
  const bad = r.outcomes.filter((o) => o.status !== 'ok');
  if (r.ok) return { kind: 'ok', text: `${name}: ${verb} done` };
  return { kind: 'error', text: bad.map((o) => `${o.name}: ${o.status}: ${o.message ?? o.code ?? ''}`).join('; ') };
}

export async function runVerb(verb: Verb, name: string): Promise<Notice> {
  try {
    const path = `/v1/jails/${encodeURIComponent(name)}`;
    const { data } =
      verb === 'remove'
        ? await request<BatchResult>('DELETE', path, { batch: true })
        : await request<BatchResult>('POST', `${path}/${verb}`, { batch: true });
    return describeBatch(verb, name, data);
  } catch (e) {
    return { kind: 'error', text: `${name}: ${verb}: ${(e as Error).message}` };
  }
}

function verbsFor(j: JailView): Verb[] {
  if (j.state === 'running') return ['stop', 'restart', 'remove'];
  if (j.state === 'stopped') return ['start', 'remove'];
  return [];
}

/** The health check's verdict where the jail has one, else whether its last step failed. */
function healthText(j: JailView): string {
  if (j.health) return j.health;
  return j.lastError ? 'error' : '';
}

function healthTitle(j: JailView): string {
  return [j.lastError, j.supervision?.health?.output].filter(Boolean).join('\n');
}

function skeletonText(j: JailView): string {
  return paramText(j.params.skeleton);
}

export function JailsPage({ feed, initialSelector }: { feed: JailFeed; initialSelector: string }) {
  useFeed(feed);
  const [text, setText] = useState(initialSelector);
  const lastGood = useRef<Selector | undefined>(undefined);
  const [pending, setPending] = useState<{ verb: Verb; name: string } | undefined>(undefined);
  const [notice, setNotice] = useState<Notice | undefined>(undefined);

  let error: { message: string; excerpt?: string } | undefined;
  if (text.trim() === '') lastGood.current = undefined;
  else {
    try {
      lastGood.current = parseSelector(text);
    } catch (e) {
      const place = (e as { place?: { excerpt?: string } }).place;
      error = { message: (e as Error).message, ...(place?.excerpt ? { excerpt: place.excerpt } : {}) };
    }
  }
  const selector = lastGood.current;
  const rows = [...feed.jails.values()]
    .filter((j) => !selector || selector.matches(j.labels))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const cluster = rows.some((j) => j.node !== undefined);

  const onInput = (value: string) => {
    setText(value);
    const hash = value.trim() ? `#/jails?l=${encodeURIComponent(value)}` : '#/jails';
    history.replaceState(null, '', hash);
  };

  const answer = async (yes: boolean) => {
    const p = pending;
    setPending(undefined);
    if (!yes || !p) return;
    setNotice({ kind: 'ok', text: `${p.name}: ${p.verb}...` });
    setNotice(await runVerb(p.verb, p.name));
  };

  return (
    <section>
      <div class="toolbar">
        <label class="field">
          <span>Label selector</span>
          <input
            name="selector"
            value={text}
            spellcheck={false}
            placeholder="app=www,version in (v1,v2),!canary"
            aria-invalid={error ? 'true' : 'false'}
            aria-describedby="selector-error"
            onInput={(e) => onInput((e.target as HTMLInputElement).value)}
          />
          {error ? (
            <span id="selector-error" class="field-error" role="alert" data-testid="selector-error">
              {error.message}
              {error.excerpt ? <pre>{error.excerpt}</pre> : null}
            </span>
          ) : null}
        </label>
        <span class="count" data-testid="count">
          {rows.length} of {feed.jails.size} jails · revision {feed.revision}
        </span>
      </div>
      <NoticeLine notice={notice} />
      <table class="jails">
        <thead>
          <tr>
            <th>name</th>
            <th>state</th>
            {cluster ? <th>node</th> : null}
            <th>addresses</th>
            <th>skeleton</th>
            <th>strategy</th>
            <th>labels</th>
            <th>ready</th>
            <th>health</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {rows.map((j) => (
            <tr key={j.name} data-jail={j.name} data-state={j.state}>
              <td>
                <a href={`#/jail/${encodeURIComponent(j.name)}`}>{j.name}</a>
              </td>
              <td>
                <StateBadge state={j.state} />
              </td>
              {cluster ? <td>{j.node ?? ''}</td> : null}
              <td class="mono">{addresses(j)}</td>
              <td class="mono">{skeletonText(j)}</td>
              <td>
                {j.params['skeleton.strategy'] !== undefined ? (
                  paramText(j.params['skeleton.strategy'])
                ) : j.params.skeleton !== undefined ? (
                  <span class="muted">default</span>
                ) : null}
              </td>
              <td>
                <Labels labels={j.labels} />
              </td>
              <td>{j.state === 'running' ? (j.ready ? 'ready' : 'not ready') : ''}</td>
              <td class={`health health-${healthText(j)}`} title={healthTitle(j)}>
                {healthText(j)}
                {j.supervision?.restarts ? <span class="muted"> · {j.supervision.restarts} restarts</span> : null}
              </td>
              <td class="actions">
                {verbsFor(j).map((verb) => (
                  <button
                    type="button"
                    key={verb}
                    class={verb === 'remove' || verb === 'stop' ? 'danger' : ''}
                    data-action={verb}
                    onClick={() => setPending({ verb, name: j.name })}
                  >
                    {verb}
                  </button>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 ? <p class="muted">No jail matches.</p> : null}
      {pending ? (
        <Confirm title={`${pending.verb} ${pending.name}?`} onAnswer={answer}>
          {pending.verb === 'remove'
            ? `Stop (if running) and forget the jail "${pending.name}".`
            : `${pending.verb} the jail "${pending.name}".`}
        </Confirm>
      ) : null}
    </section>
  );
}
