import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { request } from 'undici';
import { Agent } from 'undici';
import { createRemoteService, watch } from '../../src/api/client.ts';
import { JailyardError } from '../../src/errors.ts';
import { Collector, stopCollectors, startTestDaemon, tempState, type TestDaemon } from './helpers.ts';

const writerScript = new URL('./fixtures/writer.ts', import.meta.url).pathname;

/** A second process writing the same store (what the CLI does while the daemon runs); one
 * long-lived child so the test does not pay a process start per write. */
class OtherProcess {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;
  constructor(dir: string) {
    this.#child = spawn(process.execPath, [writerScript, dir]);
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]();
  }
  async do(...args: string[]): Promise<number> {
    this.#child.stdin.write(`${args.join(' ')}\n`);
    const { value } = await this.#lines.next();
    assert.match(String(value), /^\d+$/, `writer: ${value}`);
    return Number(value);
  }
  async close(): Promise<void> {
    this.#child.stdin.end();
    await once(this.#child, 'exit');
  }
}

describe('watch over a unix socket', () => {
  const state = tempState();
  let d: TestDaemon;
  let other: OtherProcess;

  before(async () => {
    d = await startTestDaemon(state.dir, { bookmarkIntervalSec: 0.1 });
    other = new OtherProcess(state.dir);
  });
  after(async () => {
    await other.close();
    await stopCollectors(d.url);
    await d.close();
    state.cleanup();
  });

  test('writes through the API and from another process arrive in revision order, once', async () => {
    const remote = createRemoteService(d.url);
    const from = d.store.currentRevision();
    const c = new Collector(d.url, { since: from });
    await remote.create({
      spec: { name: 'w-a', params: { name: 'w-a', path: '/x' } },
      meta: [{ op: 'set', key: 'app', value: 'www' }],
    });
    await other.do('create', 'w-b');
    await remote.modify('w-a', { meta: [{ op: 'set', key: 'v', value: '2' }] });
    const last = await other.do('set', 'w-b', 'app=www');
    await c.until((ev) => ev.some((e) => e.revision === last));
    await c.stop();
    assert.deepEqual(c.pairs(), [
      ['ADDED', 'w-a'],
      ['ADDED', 'w-b'],
      ['MODIFIED', 'w-a'],
      ['MODIFIED', 'w-b'],
    ]);
    const revs = c.events.map((e) => e.revision);
    assert.deepEqual(
      revs,
      d.store.eventsSince(from).map((e) => e.revision),
    );
    assert.equal(c.events[3]!.jail!.labels.app, 'www');
  });

  test('resume with since (and with Last-Event-ID) gives exactly the missed events', async () => {
    const first = new Collector(d.url, { bookmarks: true });
    await first.live();
    await other.do('create', 'r-1');
    await first.until((ev) => ev.some((e) => e.jail?.name === 'r-1'));
    await first.stop();
    const seen = first.events.filter((e) => e.type !== 'BOOKMARK').at(-1)!.revision;
    // missed while disconnected
    await other.do('set', 'r-1', 'k=1');
    await other.do('create', 'r-2');
    const last = await other.do('remove', 'r-1');
    const second = new Collector(d.url, { since: seen });
    await second.until((ev) => ev.some((e) => e.revision === last));
    await second.stop();
    assert.deepEqual(second.pairs(), [
      ['MODIFIED', 'r-1'],
      ['ADDED', 'r-2'],
      ['DELETED', 'r-1'],
    ]);
    // The raw stream, resumed by header: the ids are exactly the log's revisions after `seen`.
    const agent = new Agent({ connect: { socketPath: d.daemon.socketPath } });
    const ac = new AbortController();
    const res = await request('http://localhost/v1/jails?watch=1', {
      dispatcher: agent,
      headers: { 'last-event-id': String(seen) },
      signal: ac.signal,
    });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /text\/event-stream/);
    let text = '';
    for await (const chunk of res.body) {
      text += chunk.toString();
      if (text.includes('event: BOOKMARK')) break;
    }
    ac.abort();
    await agent.close();
    const ids = [...text.matchAll(/event: (ADDED|MODIFIED|DELETED)\nid: (\d+)/g)].map((m) => Number(m[2]));
    assert.deepEqual(
      ids,
      d.store.eventsSince(seen).map((e) => e.revision),
    );
  });

  test('label selector: starting to match is ADDED, stopping is DELETED, others unseen', async () => {
    const c = new Collector(d.url, { selector: 'tier=web', bookmarks: true });
    await c.live();
    await other.do('create', 's-1');
    await other.do('set', 's-1', 'tier=web');
    await other.do('set', 's-1', 'v=2');
    await other.do('set', 's-1', 'tier=db');
    await other.do('set', 's-1', 'v=3');
    await other.do('set', 's-1', 'tier=web');
    const last = await other.do('remove', 's-1');
    await c.until((ev) => ev.some((e) => e.revision === last));
    await c.stop();
    assert.deepEqual(c.pairs(), [
      ['ADDED', 's-1'],
      ['MODIFIED', 's-1'],
      ['DELETED', 's-1'],
      ['ADDED', 's-1'],
      ['DELETED', 's-1'],
    ]);
  });

  test('initial=1 sends the matching jails as ADDED, then streams', async () => {
    await other.do('create', 'i-1');
    await other.do('set', 'i-1', 'team=x');
    const c = new Collector(d.url, { selector: 'team=x', initial: true, bookmarks: true });
    await c.until((ev) => ev.some((e) => e.type === 'BOOKMARK'));
    await other.do('set', 'i-1', 'more=1');
    await c.until((ev) => ev.some((e) => e.type === 'MODIFIED'));
    await c.stop();
    assert.deepEqual(c.pairs(), [
      ['ADDED', 'i-1'],
      ['MODIFIED', 'i-1'],
    ]);
  });

  test('idle streams get BOOKMARK events carrying the current revision', async () => {
    const c = new Collector(d.url, { bookmarks: true });
    await c.until((ev) => ev.filter((e) => e.type === 'BOOKMARK').length >= 3, 3000);
    await c.stop();
    for (const b of c.events) assert.equal(b.revision, d.store.currentRevision());
  });

  test('subscribers are cleaned up on disconnect (metrics gauge)', async () => {
    const gauge = async () => {
      const r = await d.daemon.app.inject({ url: '/metrics' });
      return Number(/jailyard_watch_subscribers (\d+)/.exec(r.body)![1]);
    };
    const waitFor = async (n: number) => {
      const t0 = Date.now();
      while ((await gauge()) !== n && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await gauge(), n);
    };
    // earlier tests' streams are gone too (no internal subscribers without guest sockets)
    await waitFor(0);
    const cs = [new Collector(d.url), new Collector(d.url), new Collector(d.url)];
    await waitFor(3);
    await Promise.all(cs.map((c) => c.stop()));
    await waitFor(0);
  });

  test('a revision older than the kept history: 410 JY_ERR_REVISION_GONE', async () => {
    const before = d.store.currentRevision();
    d.store.setSetting('event_history', 3);
    for (let i = 0; i < 5; i++) await other.do('set', 'w-a', `n=${i}`);
    const res = await d.daemon.app.inject({ url: `/v1/jails?watch=1&since=${before}` });
    assert.equal(res.statusCode, 410);
    assert.equal(res.json().code, 'JY_ERR_REVISION_GONE');
    await assert.rejects(
      async () => {
        for await (const _ of watch(d.url, { since: before })) break;
      },
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_REVISION_GONE',
    );
    d.store.setSetting('event_history', 100_000);
  });
});

describe('watch across a daemon restart', () => {
  test('a watcher reconnects with its last revision and gets exactly the missed events', async () => {
    const state = tempState();
    let d = await startTestDaemon(state.dir);
    const other = new OtherProcess(state.dir);
    const from = d.store.currentRevision();
    const c = new Collector(d.url, { since: from, retryMs: 20 });
    await other.do('create', 'x-1');
    await c.until((ev) => ev.length === 1);
    await d.close();
    // while the daemon is down, the CLI keeps writing
    await other.do('set', 'x-1', 'a=1');
    await other.do('create', 'x-2');
    d = await startTestDaemon(state.dir);
    const last = await other.do('remove', 'x-2');
    await c.until((ev) => ev.some((e) => e.revision === last));
    await c.stop();
    await other.close();
    await d.close();
    assert.deepEqual(c.pairs(), [
      ['ADDED', 'x-1'],
      ['MODIFIED', 'x-1'],
      ['ADDED', 'x-2'],
      ['DELETED', 'x-2'],
    ]);
    assert.deepEqual(
      c.events.map((e) => e.revision),
      [from + 1, from + 2, from + 3, from + 4],
    );
    state.cleanup();
  });
});
