// POST /v1/rollouts/ID/abort and GET /v1/rollouts/ID/pool through inject(), over a store-only
// service (no driver: the jails are records; real jails and a real HAProxy are
// test/ui/rollout.test.ts). One writer per rollout: a rollout another live process runs is
// asked (an abort request it honours between steps), one nobody runs is aborted by the
// daemon holding the owner file, one this process runs (runRollout) stops in its health wait
// and goes back itself.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app.ts';
import { newRolloutState, readRolloutState, rolloutFileFor, runRollout } from '../../src/lb/rollout.ts';
import { abortFileOf, claimRollout, ownerFileOf } from '../../src/lb/rollout-owner.ts';
import { rolloutControl } from '../../src/lb/rollout-control.ts';
import { openStore } from '../../src/store/sqlite.ts';
import type { Store } from '../../src/store/types.ts';
import type { JailService } from '../../src/runtime/types.ts';
import { storeOnlyService, tempState } from './helpers.ts';

const until = async (what: string, ok: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('POST /v1/rollouts/ID/abort, GET /v1/rollouts/ID/pool', () => {
  const state = tempState('jy-api-rollout-');
  let store: Store;
  let service: JailService;
  let app: FastifyInstance;
  const bearer = { authorization: 'Bearer sesame' };
  const post = (id: string) => app.inject({ method: 'POST', url: `/v1/rollouts/${id}/abort`, headers: bearer });
  const items = async () =>
    (await app.inject({ url: '/v1/rollouts', headers: bearer })).json().items as {
      id: string;
      phase: string;
      active: boolean;
      abortRequested: boolean;
    }[];

  /** Old jails t-v1-N running; a saved rollout of app=SEL that made `created` (v2, running). */
  const seed = async (sel: string, phase: string, created: string[]) => {
    for (const name of [`${sel}-v1-1`, ...created]) {
      const v = name.includes('-v1-') ? 'v1' : 'v2';
      await service.create({
        spec: { name, params: { name, persist: true } },
        meta: [
          { op: 'set', key: 'app', value: sel },
          { op: 'set', key: 'version', value: v },
        ],
      });
      await service.start([name]);
    }
    // the old one half way out: drained
    await service.modify(`${sel}-v1-1`, { meta: [{ op: 'set', key: 'jailyard.lb/drain', value: '1' }] });
    const s = newRolloutState({
      selector: `app=${sel}`,
      from: 'version=v1',
      to: 'version=v2',
      replicas: 1,
      maxSurge: 1,
      maxUnavailable: 0,
      port: 8080,
      healthPath: '/',
      prefix: sel,
    });
    const file = rolloutFileFor(state.dir, `app=${sel}`);
    mkdirSync(join(state.dir, 'rollouts'), { recursive: true });
    writeFileSync(file, JSON.stringify({ ...s, phase, created }));
    return { id: `app_${sel}`, file };
  };

  before(async () => {
    store = openStore(state.dir);
    service = storeOnlyService(store);
    app = buildApp({ store, service, rollouts: rolloutControl, auth: { token: 'sesame', required: () => true } });
    await app.ready();
  });
  after(async () => {
    await app.close();
    store.close();
    state.cleanup();
  });

  test('unknown or malformed ids are 404; done and aborted rollouts are refused (409)', async () => {
    for (const id of ['nope', '..', '.hidden', 'a%2F..%2Fb']) {
      const r = await post(id);
      assert.equal(r.statusCode, 404, id);
      // `..` never reaches the route (the path is normalised): the API's own 404
      assert.match(r.json().code, id === '..' ? /^JY_ERR_(ROUTE|ROLLOUT)_NOT_FOUND$/ : /^JY_ERR_ROLLOUT_NOT_FOUND$/);
      assert.equal((await app.inject({ url: `/v1/rollouts/${id}/pool`, headers: bearer })).statusCode, 404, id);
    }
    const { id } = await seed('d', 'done', []);
    const r = await post(id);
    assert.equal(r.statusCode, 409);
    assert.match(r.json().message, /is done: nothing to abort/);
    assert.equal((await app.inject({ method: 'POST', url: `/v1/rollouts/${id}/abort` })).statusCode, 401);
  });

  test('a rollout another live process runs is asked to abort (202 requested); nothing is changed here', async () => {
    const { id, file } = await seed('a', 'running', ['a-v2-1']);
    // another process owns it: a child's pid and start time in the owner file
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const startTime = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
      writeFileSync(ownerFileOf(file), JSON.stringify({ pid: child.pid, startTime }));
      assert.throws(() => claimRollout(file, 'app=a'), new RegExp(`being run by process ${child.pid}`));
      const r = await post(id);
      assert.equal(r.statusCode, 202);
      assert.deepEqual(r.json(), { id, how: 'requested' });
      assert.ok(existsSync(abortFileOf(file)));
      const it = (await items()).find((x) => x.id === id)!;
      assert.equal(it.active, true);
      assert.equal(it.abortRequested, true);
      // the daemon did not touch the jails: that is the owner's job
      assert.equal((await service.list({ selector: 'app=a' })).length, 2);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    // its process gone: nobody runs it, and the daemon aborts it itself
    assert.equal((await items()).find((x) => x.id === id)!.active, false);
    const r = await post(id);
    assert.deepEqual(r.json(), { id, how: 'started' });
    await until('aborted', () => readRolloutState(file)?.phase === 'aborted');
    assert.deepEqual(
      (await service.list({ selector: 'app=a' })).map((j) => j.name),
      ['a-v1-1'],
    );
    // the owner file and the stale request are gone
    await until('released', () => !existsSync(ownerFileOf(file)) && !existsSync(abortFileOf(file)));
  });

  test('an interrupted rollout nobody runs: the daemon aborts it (old jail undrained, new ones removed)', async () => {
    const { id, file } = await seed('i', 'interrupted', ['i-v2-1', 'i-v2-2']);
    const r = await post(id);
    assert.equal(r.statusCode, 202);
    assert.equal(r.json().how, 'started');
    await until('aborted', () => readRolloutState(file)?.phase === 'aborted');
    const left = await service.list({ selector: 'app=i' });
    assert.deepEqual(
      left.map((j) => j.name),
      ['i-v1-1'],
    );
    assert.equal(left[0]!.state, 'running');
    assert.doesNotMatch(left[0]!.meta, /jailyard\.lb\/drain/);
    const saved = readRolloutState(file)!;
    assert.deepEqual(saved.created, []);
    assert.match(saved.log.at(-1)!.text, /^aborted: old jails serve/);
    await until('released', () => !existsSync(ownerFileOf(file)));
    assert.equal((await post(id)).statusCode, 409);
  });

  test('a rollout this process runs stops in its health wait on an abort request and goes back itself', async () => {
    await service.create({
      spec: { name: 'w-v1-1', params: { name: 'w-v1-1', persist: true } },
      meta: [
        { op: 'set', key: 'app', value: 'w' },
        { op: 'set', key: 'version', value: 'v1' },
      ],
    });
    await service.start(['w-v1-1']);
    const file = rolloutFileFor(state.dir, 'app=w');
    const s = newRolloutState({
      selector: 'app=w',
      from: 'version=v1',
      to: 'version=v2',
      replicas: 1,
      maxSurge: 1,
      maxUnavailable: 0,
      // nothing answers there: the new jail stays in its health wait until the abort
      port: 9,
      healthPath: '/',
      prefix: 'w',
      addressRange: [250, 251],
    });
    const started = Date.now();
    const run = runRollout(s, {
      service,
      template: { name: 'w', params: { name: 'w', persist: true } },
      stateFile: file,
      healthTimeoutMs: 60_000,
    });
    await until('the new jail', async () => (await service.list({ selector: 'app=w,version=v2' })).length === 1);
    // a second writer is refused while it runs
    assert.throws(() => claimRollout(file, 'app=w'), /being run by process/);
    const it = (await items()).find((x) => x.id === 'app_w')!;
    assert.equal(it.active, true);
    const r = await post('app_w');
    assert.deepEqual(r.json(), { id: 'app_w', how: 'requested' });
    const end = await run;
    assert.ok(Date.now() - started < 20_000, 'the abort did not wait for the health timeout');
    assert.equal(end.phase, 'aborted');
    assert.deepEqual(
      (await service.list({ selector: 'app=w' })).map((j) => j.name),
      ['w-v1-1'],
    );
    const texts = readRolloutState(file)!.log.map((l) => l.text);
    assert.ok(
      texts.some((t) => t.startsWith('abort requested')),
      texts.join('\n'),
    );
    assert.ok(!existsSync(ownerFileOf(file)) && !existsSync(abortFileOf(file)));
  });

  test('the first rollout of a state folder (no rollouts/ yet) takes its owner file, and gives it back', () => {
    const fresh = tempState('jy-api-rollout-fresh-');
    try {
      const file = rolloutFileFor(fresh.dir, 'app=first');
      const release = claimRollout(file, 'app=first');
      assert.ok(existsSync(ownerFileOf(file)));
      assert.equal(JSON.parse(readFileSync(ownerFileOf(file), 'utf8')).pid, process.pid);
      release();
      assert.ok(!existsSync(ownerFileOf(file)));
    } finally {
      fresh.cleanup();
    }
  });

  test('GET /v1/rollouts/watch: the rollouts now, again on a change (no polling), ended when the daemon closes', async () => {
    const fresh = tempState('jy-api-rollout-watch-');
    const st = openStore(fresh.dir);
    const app2 = buildApp({
      store: st,
      service: storeOnlyService(st),
      rollouts: rolloutControl,
      auth: { token: 'sesame', required: () => true },
    });
    try {
      await app2.listen({ host: '127.0.0.1', port: 0 });
      const { port } = app2.server.address() as { port: number };
      const url = `http://127.0.0.1:${port}/v1/rollouts/watch`;
      assert.equal((await fetch(url)).status, 401);
      const res = await fetch(url, { headers: bearer });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      const nextEvent = async (): Promise<{ items: { id: string; phase: string; active: boolean }[] }> => {
        for (;;) {
          const end = buf.indexOf('\n\n');
          if (end >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            const data = block.split('\n').find((l) => l.startsWith('data: '));
            if (data) return JSON.parse(data.slice(6));
            continue;
          }
          const { value, done } = await reader.read();
          if (done) throw new Error('stream ended');
          buf += value;
        }
      };
      assert.deepEqual((await nextEvent()).items, []);
      // a step saved by a rollout (temp file, rename) and its owner file: events, not a poll
      const file = rolloutFileFor(fresh.dir, 'app=s');
      const s = newRolloutState({
        selector: 'app=s',
        from: 'version=v1',
        to: 'version=v2',
        replicas: 1,
        maxSurge: 1,
        maxUnavailable: 0,
        port: 80,
        healthPath: '/',
        prefix: 's',
      });
      const t0 = Date.now();
      writeFileSync(`${file}.1.tmp`, JSON.stringify(s));
      renameSync(`${file}.1.tmp`, file);
      let ev = await nextEvent();
      assert.deepEqual(
        ev.items.map((i) => [i.id, i.phase, i.active]),
        [['app_s', 'running', false]],
      );
      // pushed at once (inotify, a 50 ms debounce): bounded with room for a loaded machine
      assert.ok(Date.now() - t0 < 1900, `${Date.now() - t0} ms`);
      const release = claimRollout(file, 'app=s');
      ev = await nextEvent();
      assert.equal(ev.items[0]!.active, true);
      release();
      ev = await nextEvent();
      assert.equal(ev.items[0]!.active, false);
      // the daemon closing ends the stream (it does not wait for the client)
      const closed = app2.close();
      await assert.rejects(nextEvent(), /stream ended|terminated/);
      await Promise.race([
        closed,
        new Promise((_, no) => setTimeout(() => no(new Error('close waited for the stream')), 5000)),
      ]);
    } finally {
      await app2.close();
      st.close();
      fresh.cleanup();
    }
  });

  test('the pool: HAProxy not named or not reachable says so (source jails, with the reason)', async () => {
    const { id, file } = await seed('p', 'running', []);
    let r = await app.inject({ url: `/v1/rollouts/${id}/pool`, headers: bearer });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().source, 'jails');
    assert.match(r.json().reason, /without HAProxy/);
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(
      file,
      JSON.stringify({ ...saved, lb: { adminSocket: join(state.dir, 'no-such.sock'), backend: 'www' } }),
    );
    r = await app.inject({ url: `/v1/rollouts/${id}/pool`, headers: bearer });
    assert.equal(r.json().source, 'jails');
    assert.match(r.json().reason, /HAProxy not reachable: .*no-such\.sock|ENOENT/);
    const it = (await app.inject({ url: '/v1/rollouts', headers: bearer }))
      .json()
      .items.find((x: { id: string }) => x.id === id);
    assert.deepEqual(it.haproxy, { adminSocket: join(state.dir, 'no-such.sock'), backend: 'www' });
  });
});
