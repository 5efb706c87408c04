// One jail: its parameters, meta and env as key/value rows edited in place and saved with
// the revision they were read at (PATCH with If-Match): when another writer came first the
// daemon answers 412 and the page says so, keeping the edits; nothing is overwritten. Its
// recent events come from the watch stream (replayed from the log, then live).

import { useEffect, useState } from 'preact/hooks';
import { parseParamAssignment } from '../../../src/conf/params.ts';
import { ApiError, request, textStream, watchStream, type JailView } from '../api.ts';
import type { FeedEvent, JailFeed } from '../feed.ts';
import { Confirm, Labels, type Notice, NoticeLine, paramText, StateBadge, useFeed } from '../parts.tsx';
import { runVerb } from './jails.tsx';

type Section = 'params' | 'meta' | 'env';

interface Row {
  key: string;
  value: string;
  /** The value as read; undefined for a row added here. */
  orig?: string;
  removed?: boolean;
  error?: string;
}

type Rows = Record<Section, Row[]>;

/** A meta/env buffer's key=value lines as rows; other lines are text the rows leave alone. */
function bufferRows(buffer: string): { rows: Row[]; text: string[] } {
  const rows: Row[] = [];
  const text: string[] = [];
  if (buffer === '') return { rows, text };
  for (const line of buffer.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) rows.push({ key: line.slice(0, eq), value: line.slice(eq + 1), orig: line.slice(eq + 1) });
    else text.push(line);
  }
  return { rows, text };
}

function rowsOf(j: JailView): { rows: Rows; text: { meta: string[]; env: string[] } } {
  const params = Object.keys(j.params)
    .filter((k) => k !== 'name')
    .sort()
    .map((k) => ({ key: k, value: paramText(j.params[k]), orig: paramText(j.params[k]) }));
  const meta = bufferRows(j.meta);
  const env = bufferRows(j.env);
  return { rows: { params, meta: meta.rows, env: env.rows }, text: { meta: meta.text, env: env.text } };
}

const dirtyRow = (r: Row): boolean =>
  r.orig === undefined ? r.key !== '' && !r.removed : r.removed || r.value !== r.orig;

type MetaOp = { op: 'set'; key: string; value: string } | { op: 'remove'; key: string };

/** The PATCH body for the edited rows, or the rows with their errors. */
function patchOf(rows: Rows): { body: Record<string, unknown> } | { rows: Rows } {
  let bad = false;
  const params: Record<string, unknown> = {};
  const unset: string[] = [];
  const next: Rows = { params: [], meta: [], env: [] };
  for (const r of rows.params) {
    const row: Row = { ...r };
    delete row.error;
    if (dirtyRow(r)) {
      if (r.removed) unset.push(r.key);
      else {
        try {
          // typed as the CLI types `jailyard set NAME key=value`
          const a = parseParamAssignment(`${r.key}=${r.value}`);
          if (a.kind !== 'param') throw new Error('meta and env have rows of their own');
          params[a.name] = a.value;
        } catch (e) {
          row.error = (e as Error).message;
          bad = true;
        }
      }
    }
    next.params.push(row);
  }
  const ops: Record<'meta' | 'env', MetaOp[]> = { meta: [], env: [] };
  for (const section of ['meta', 'env'] as const) {
    for (const r of rows[section]) {
      const row: Row = { ...r };
      delete row.error;
      if (dirtyRow(r)) {
        if (r.key === '' || r.key.includes('=') || r.key.includes('\n')) {
          row.error = 'a key is one or more characters, without "=" or a newline';
          bad = true;
        } else if (r.removed) ops[section].push({ op: 'remove', key: r.key });
        else ops[section].push({ op: 'set', key: r.key, value: r.value });
      }
      next[section].push(row);
    }
  }
  if (bad) return { rows: next };
  return {
    body: {
      ...(Object.keys(params).length ? { params } : {}),
      ...(unset.length ? { unset } : {}),
      ...(ops.meta.length ? { meta: ops.meta } : {}),
      ...(ops.env.length ? { env: ops.env } : {}),
    },
  };
}

/** The events of the log's last `depth` revisions for one jail (one replay of the stream). */
async function recentEvents(name: string, revision: number, depth = 500): Promise<FeedEvent[]> {
  const ac = new AbortController();
  const out: FeedEvent[] = [];
  try {
    for await (const e of watchStream(Math.max(0, revision - depth), ac.signal)) {
      if (e.type === 'BOOKMARK') break;
      if (e.jail?.name === name)
        out.push({ revision: e.revision, type: e.type, name, state: e.jail.state, at: e.jail.updatedAt });
    }
  } catch (e) {
    // compacted history: only what happens from now on
    if (!(e instanceof ApiError && e.status === 410)) throw e;
  } finally {
    ac.abort();
  }
  return out;
}

type MountStep =
  | { kind: 'bind'; source: string; target: string; readonly: boolean; origin: string }
  | { kind: 'overlay'; lower: string[]; upper: string; target: string; origin: string }
  | { kind: 'fs'; fstype: string; source: string; target: string; options: string[]; origin: string }
  | { kind: 'tmpfs' | 'proc' | 'devfs'; target: string; origin: string };

interface MountPlan {
  root: string;
  mkdirs: string[];
  symlinks: { path: string; target: string }[];
  mounts: MountStep[];
  notes?: string[];
}

/** One line per step, in execution order, as `jailyard apply --dry-run` prints a plan. */
export function planLines(plan: MountPlan): string[] {
  const lines = [`root ${plan.root}`];
  for (const d of plan.mkdirs) lines.push(`mkdir ${d}`);
  for (const l of plan.symlinks) lines.push(`symlink ${l.path} -> ${l.target}`);
  for (const m of plan.mounts) {
    if (m.kind === 'bind') lines.push(`mount ${m.readonly ? 'ro' : 'rw'} bind ${m.source} ${m.target} (${m.origin})`);
    else if (m.kind === 'overlay')
      lines.push(`mount overlay lower=${m.lower.join(':')} upper=${m.upper} ${m.target} (${m.origin})`);
    else if (m.kind === 'fs')
      lines.push(`mount ${m.fstype} ${m.source} ${m.target} ${m.options.join(',')} (${m.origin})`);
    else lines.push(`mount ${m.kind} ${m.target} (${m.origin})`);
  }
  for (const n of plan.notes ?? []) lines.push(`note: ${n}`);
  return lines;
}

/** The mount plan a start would execute now (GET /v1/jails/NAME/plan), read at `revision`. */
function MountPlanView({ name, revision }: { name: string; revision: number }) {
  const [lines, setLines] = useState<string[] | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => {
    let gone = false;
    request<{ plan: MountPlan }>('GET', `/v1/jails/${encodeURIComponent(name)}/plan`).then(
      ({ data }) => {
        if (gone) return;
        setLines(planLines(data.plan));
        setError(undefined);
      },
      (e: Error) => !gone && setError(e.message),
    );
    return () => {
      gone = true;
    };
  }, [name, revision]);
  if (error) return <p class="notice notice-error">{error}</p>;
  if (!lines) return <p class="muted">Loading the plan...</p>;
  return (
    <pre class="plan" data-testid="mount-plan">
      {lines.join('\n')}
    </pre>
  );
}

const LOG_KEEP = 64 * 1024;

/** The jail's console log: its last 200 lines, then what it writes, as it writes it
 * (GET /v1/jails/NAME/logs?follow=1). Shown as text: its bytes are the jail's. */
function ConsoleLog({ name }: { name: string }) {
  const [text, setText] = useState('');
  const [status, setStatus] = useState<string>('loading');
  useEffect(() => {
    const ac = new AbortController();
    let all = '';
    void (async () => {
      try {
        setStatus('following');
        for await (const chunk of textStream(
          `/v1/jails/${encodeURIComponent(name)}/logs?lines=200&follow=1`,
          ac.signal,
        )) {
          all = (all + chunk).slice(-LOG_KEEP);
          setText(all);
        }
        setStatus('ended');
      } catch (e) {
        if (!ac.signal.aborted) setStatus((e as Error).message);
      }
    })();
    return () => ac.abort();
  }, [name]);
  return (
    <div>
      <p class="muted" data-testid="log-status">
        {status === 'following' ? 'following (last 200 lines, then live)' : status}
      </p>
      <pre class="console-log" data-testid="console-log">
        {text || (status === 'following' ? '(nothing written yet)' : '')}
      </pre>
    </div>
  );
}

function RowsEditor(props: { section: Section; rows: Row[]; onChange(rows: Row[]): void; keyEditable: boolean }) {
  const set = (i: number, patch: Partial<Row>) =>
    props.onChange(props.rows.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  return (
    <table class={`kv kv-${props.section}`}>
      <tbody>
        {props.rows.map((r, i) => (
          <tr
            key={`${r.orig === undefined ? 'new' : 'old'}-${i}`}
            data-key={r.key}
            class={r.removed ? 'removed' : dirtyRow(r) ? 'dirty' : ''}
          >
            <td>
              {r.orig === undefined && props.keyEditable ? (
                <input
                  class="key"
                  aria-label={`${props.section} key`}
                  value={r.key}
                  onInput={(e) => set(i, { key: (e.target as HTMLInputElement).value })}
                />
              ) : (
                <span class="mono">{r.key}</span>
              )}
            </td>
            <td>
              <input
                class="value"
                aria-label={`${props.section} ${r.key}`}
                data-field={`${props.section}.${r.key}`}
                value={r.value}
                disabled={r.removed}
                onInput={(e) => set(i, { value: (e.target as HTMLInputElement).value })}
              />
              {r.error ? (
                <span class="field-error" role="alert">
                  {r.error}
                </span>
              ) : null}
            </td>
            <td>
              <button type="button" class="small" onClick={() => set(i, { removed: !r.removed })}>
                {r.removed ? 'keep' : 'remove'}
              </button>
            </td>
          </tr>
        ))}
      </tbody>
      <tfoot>
        <tr>
          <td colSpan={3}>
            <button
              type="button"
              class="small"
              data-add={props.section}
              onClick={() => props.onChange([...props.rows, { key: '', value: '' }])}
            >
              add {props.section === 'params' ? 'parameter' : `${props.section} key`}
            </button>
          </td>
        </tr>
      </tfoot>
    </table>
  );
}

export function JailPage({ feed, name }: { feed: JailFeed; name: string }) {
  useFeed(feed);
  const [read, setRead] = useState<JailView | undefined>(undefined);
  const [loadError, setLoadError] = useState<string | undefined>(undefined);
  const [rows, setRows] = useState<Rows>({ params: [], meta: [], env: [] });
  const [text, setText] = useState<{ meta: string[]; env: string[] }>({ meta: [], env: [] });
  const [notice, setNotice] = useState<Notice | undefined>(undefined);
  const [conflict, setConflict] = useState<string | undefined>(undefined);
  const [history, setHistory] = useState<FeedEvent[]>([]);
  const [pending, setPending] = useState<'start' | 'stop' | 'restart' | 'remove' | undefined>(undefined);
  const [saving, setSaving] = useState(false);

  const take = (j: JailView) => {
    setRead(j);
    const r = rowsOf(j);
    setRows(r.rows);
    setText(r.text);
    setConflict(undefined);
  };

  const load = async () => {
    try {
      const { data } = await request<JailView>('GET', `/v1/jails/${encodeURIComponent(name)}`);
      take(data);
      setLoadError(undefined);
      return data;
    } catch (e) {
      setLoadError((e as Error).message);
      return undefined;
    }
  };

  useEffect(() => {
    let gone = false;
    void load().then(async (j) => {
      if (!j || gone) return;
      const past = await recentEvents(name, j.revision).catch(() => []);
      if (!gone) setHistory(past);
    });
    return () => {
      gone = true;
    };
  }, [name]);

  if (loadError && !read)
    return (
      <section>
        <h2>{name}</h2>
        <p class="notice notice-error" role="alert">
          {loadError}
        </p>
      </section>
    );
  if (!read) return <p class="muted">Loading {name}...</p>;

  const live = feed.jails.get(name);
  const changedSince = live && live.revision > read.revision ? live.revision : undefined;
  const dirty = (['params', 'meta', 'env'] as const).some((s) => rows[s].some(dirtyRow));
  const seen = new Set(history.map((e) => e.revision));
  const events = [...history, ...feed.events.filter((e) => e.name === name && !seen.has(e.revision))].slice(-30);

  const save = async () => {
    const p = patchOf(rows);
    if ('rows' in p) {
      setRows(p.rows);
      setNotice({ kind: 'error', text: 'Some rows are not valid: nothing was saved.' });
      return;
    }
    if (Object.keys(p.body).length === 0) {
      setNotice({ kind: 'ok', text: 'Nothing to save.' });
      return;
    }
    setSaving(true);
    try {
      const { data } = await request<JailView>('PATCH', `/v1/jails/${encodeURIComponent(name)}`, {
        body: p.body,
        ifMatch: read.revision,
      });
      take(data);
      setNotice({ kind: 'ok', text: `Saved: revision ${data.revision}.` });
    } catch (e) {
      if (e instanceof ApiError && e.status === 412) {
        setConflict(
          `Not saved: the jail changed since you read it at revision ${read.revision}` +
            `${live ? ` (now ${live.revision})` : ''}. ${e.message}. Your edits are kept below; ` +
            'reload to see the current values and edit again.',
        );
        setNotice(undefined);
      } else {
        const ae = e as ApiError;
        setNotice({ kind: 'error', text: `${ae.param ? `${ae.param}: ` : ''}${ae.message}` });
      }
    } finally {
      setSaving(false);
    }
  };

  const answer = async (yes: boolean) => {
    const verb = pending;
    setPending(undefined);
    if (!yes || !verb) return;
    setNotice({ kind: 'ok', text: `${name}: ${verb}...` });
    const n = await runVerb(verb, name);
    setNotice(n);
    if (verb === 'remove' && n.kind === 'ok') location.hash = '#/jails';
  };

  const state = live?.state ?? read.state;
  return (
    <section>
      <h2>
        {name} <StateBadge state={state} />
      </h2>
      <p class="muted">
        jid {live?.jid ?? read.jid} · {live?.ready ? 'ready' : 'not ready'}
        {(live?.node ?? read.node) ? ` · node ${live?.node ?? read.node}` : ''} · read at revision{' '}
        <span data-testid="read-revision">{read.revision}</span>
      </p>
      {(live?.lastError ?? read.lastError) ? (
        <p class="notice notice-error">last error: {live?.lastError ?? read.lastError}</p>
      ) : null}
      <div class="toolbar">
        {state === 'stopped' ? (
          <button type="button" data-action="start" onClick={() => setPending('start')}>
            start
          </button>
        ) : null}
        {state === 'running' ? (
          <>
            <button type="button" class="danger" data-action="stop" onClick={() => setPending('stop')}>
              stop
            </button>
            <button type="button" data-action="restart" onClick={() => setPending('restart')}>
              restart
            </button>
          </>
        ) : null}
        <button type="button" class="danger" data-action="remove" onClick={() => setPending('remove')}>
          remove
        </button>
      </div>
      <NoticeLine notice={notice} />
      {changedSince !== undefined ? (
        <p class="notice notice-warn" data-testid="changed-since">
          Changed since you read it: revision {changedSince}.{' '}
          <button type="button" class="small" onClick={() => void load()}>
            {dirty ? 'reload (discard my edits)' : 'reload'}
          </button>
        </p>
      ) : null}
      {conflict ? (
        <p class="notice notice-error" role="alert" data-testid="conflict">
          {conflict}{' '}
          <button type="button" class="small" onClick={() => void load()}>
            reload
          </button>
        </p>
      ) : null}
      <p>
        Labels: <Labels labels={(live ?? read).labels} />
      </p>
      <div class="editor">
        <h3>Parameters</h3>
        <RowsEditor section="params" rows={rows.params} keyEditable onChange={(r) => setRows({ ...rows, params: r })} />
        <h3>meta (host only)</h3>
        <RowsEditor section="meta" rows={rows.meta} keyEditable onChange={(r) => setRows({ ...rows, meta: r })} />
        {text.meta.length ? <pre class="buffer-text">{text.meta.join('\n')}</pre> : null}
        <h3>env (readable inside the jail)</h3>
        <RowsEditor section="env" rows={rows.env} keyEditable onChange={(r) => setRows({ ...rows, env: r })} />
        {text.env.length ? <pre class="buffer-text">{text.env.join('\n')}</pre> : null}
        <div class="toolbar">
          <button type="button" class="primary" data-testid="save" disabled={!dirty || saving} onClick={save}>
            Save (if still at revision {read.revision})
          </button>
          <button type="button" disabled={!dirty} onClick={() => take(read)}>
            Undo edits
          </button>
        </div>
      </div>
      <h3>Recent events</h3>
      <table class="events" data-testid="events">
        <thead>
          <tr>
            <th>revision</th>
            <th>event</th>
            <th>state</th>
            <th>at</th>
          </tr>
        </thead>
        <tbody>
          {events
            .slice()
            .reverse()
            .map((e) => (
              <tr key={e.revision}>
                <td>{e.revision}</td>
                <td>{e.type}</td>
                <td>{e.state}</td>
                <td>{e.at}</td>
              </tr>
            ))}
        </tbody>
      </table>
      <h3>Console log</h3>
      <ConsoleLog name={name} />
      <h3>Mount plan</h3>
      <p class="muted">What a start would mount now (as read at revision {read.revision}; teardown is the reverse).</p>
      <MountPlanView name={name} revision={read.revision} />
      {pending ? (
        <Confirm title={`${pending} ${name}?`} onAnswer={answer}>
          {pending === 'remove' ? `Stop (if running) and forget the jail "${name}".` : `${pending} the jail "${name}".`}
        </Confirm>
      ) : null}
    </section>
  );
}
