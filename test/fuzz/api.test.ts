// Issue 12 "Fuzzing": API bodies and query strings at a real daemon in this process
// (startDaemon over the local JailService and a SQLite store in a fresh state folder).
// Generated create, modify (params, unset, meta and env operations, If-Match), remove and
// batch bodies, list and watch query strings (selectors from the selector grammar, since=,
// fields=, flags) and raw bodies. Oracle per request: an answer within the bound, 2xx or 4xx,
// never 5xx; a 4xx is a JSON error with a JY_ERR_ code (never JY_ERR_INTERNAL) and its place
// (param, key, jail or step); a refused request changes nothing (the store's revision, every
// jail record and the state folder's jail folders are as before). Afterwards the daemon
// answers on its socket and logged no failed handler. Jails are never started: the service's
// start would run real jails with generated parameters (the lifecycle has suites of its own).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { InjectOptions } from 'fastify';
import { startDaemon, type Daemon } from '../../src/api/daemon.ts';
import { PARAMS } from '../../src/conf/params.ts';
import { createLocalService } from '../../src/runtime/service.ts';
import { openStore } from '../../src/store/sqlite.ts';
import type { Store } from '../../src/store/types.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';
import { budget, report, shares } from './harness.ts';
import { mutated } from './targets/corpus.ts';

/** One request may take this long on a loaded machine before it counts as a hang. */
const BOUND_MS = Number(process.env.JAILYARD_FUZZ_API_BOUND_MS ?? '5000');

let dir: string;
let store: Store;
let daemon: Daemon;
let baseline: SystemSnapshot;
const logged: string[] = [];

before(async () => {
  baseline = snapshot();
  dir = mkdtempSync(join(tmpdir(), 'jy-fuzz-api-'));
  store = openStore(dir);
  daemon = await startDaemon({
    store,
    service: createLocalService({ store, stateDir: dir }),
    socketPath: join(dir, 'jailyard.sock'),
    logger: { level: 'error', stream: { write: (line: string) => void logged.push(line) } },
  });
});

after(async () => {
  await daemon?.close();
  store?.close();
  assertNoLeaks(baseline, dir);
  rmSync(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ generators

const names = ['fa', 'fb', 'fc', 'fa.x'];
const name = fc.oneof(
  { arbitrary: fc.constantFrom(...names), weight: 10 },
  fc.constantFrom('', ' ', '.', '..', 'a/b', 'x\ny', '%', '%00', 'é', '-', '0', 'a.b.c', 'fa.x.y', 'a'.repeat(300)),
  fc.string({ maxLength: 10 }),
);
const paramNames = [...PARAMS.keys()];
const paramName = fc.oneof(
  { arbitrary: fc.constantFrom(...paramNames), weight: 8 },
  fc.constantFrom('__proto__', 'constructor', 'name', 'jid', 'nosuch', 'meta.k', 'env.k', 'nopersist', ''),
  fc.string({ maxLength: 10 }),
);
const valueFor = (p: string): fc.Arbitrary<unknown> => {
  const t = PARAMS.get(p)?.type;
  const generic = fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
    fc.constantFrom(null, {}, [], [1], { a: 1 }),
  );
  const typed: Record<string, fc.Arbitrary<unknown>> = {
    int: fc.oneof(fc.integer({ min: -2, max: 70000 }), fc.constantFrom('5', '1e3', 2 ** 53, -0, 1.5)),
    bool: fc.oneof(fc.boolean(), fc.constantFrom('true', 'false', 1, 0, '1')),
    size: fc.constantFrom('1G', '512M', '0', '-1K', '1.5G', 'x', 1024, '99999999999999999999T'),
    addrlist: fc.array(fc.constantFrom('198.51.100.120/24', 'lo|198.51.100.121', '198.51.100.999', '::1', 'x'), {
      maxLength: 3,
    }),
    jailsys: fc.constantFrom('new', 'inherit', 'disable', 'x', 1),
    list: fc.array(fc.constantFrom('/bin/true', 'sh -c x', '', 'fa', 'fb'), { maxLength: 3 }),
    string: fc.oneof(
      fc.constantFrom('/nonexistent/fuzz-root', '/', '../..', 'relative', '', 'x'.repeat(5000)),
      fc.string({ maxLength: 12 }),
    ),
  };
  return t ? fc.oneof({ arbitrary: typed[t]!, weight: 4 }, generic) : generic;
};
const params = fc
  .array(
    paramName.chain((p) => valueFor(p).map((v) => [p, v] as const)),
    { maxLength: 4 },
  )
  .map((kv) => {
    // like JSON.parse would build it: a "__proto__" key is an own property
    const o: Record<string, unknown> = {};
    for (const [k, v] of kv) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true });
    return o;
  });
const metaKey = fc.oneof(
  { arbitrary: fc.constantFrom('app', 'version', 'tier', 'example.com/team', 'k'), weight: 5 },
  fc.constantFrom('', '=', 'a=b', 'a\nb', 'a\0', ' ', 'é', 'x'.repeat(300)),
  fc.string({ maxLength: 8 }),
);
const metaValue = fc.oneof(
  { arbitrary: fc.constantFrom('www', 'v1', 'v2', '', 'db'), weight: 5 },
  fc.constantFrom('a\nb=c', '\0', 'x'.repeat(70_000)),
  fc.string({ maxLength: 10 }),
);
const metaOp = fc.oneof(
  metaKey.chain((k) => metaValue.map((v) => `${k}=${v}`)),
  metaKey,
  metaKey
    .chain((k) =>
      metaValue.map((v) => fc.constantFrom(`meta.${k}=${v}`, `env.${k}=${v}`, `meta.${k}`, 'meta', `meta=${v}`)),
    )
    .chain((x) => x),
  fc.record({ op: fc.constant('set'), key: metaKey, value: metaValue }),
  fc.record({ op: fc.constant('remove'), key: metaKey }),
  fc.record({ op: fc.constant('replace'), value: metaValue }),
  fc.constantFrom({ op: 'set' }, { op: 'nope', key: 'k' }, { op: 'set', key: 'k', value: 1 }, null, 5, []),
);
const metaInput = fc.oneof(
  fc.array(metaOp, { maxLength: 4 }),
  metaValue,
  fc.constantFrom('app=www\nversion=v1\n', 'a=b\n\n=c\n', 5, null, {}),
);
const ifMatch = fc.option(
  fc.oneof(fc.nat({ max: 400 }).map(String), fc.constantFrom('"3"', 'W/"3"', 'x', '-1', '99999999999999999999', '')),
  { nil: undefined },
);

/** A selector text: mostly from the selector grammar, sometimes broken. */
const selector = fc.oneof(
  { arbitrary: fc.constantFrom('app=www', 'app in (www,db),!legacy', 'version!=v1', 'tier', 'n>3', ''), weight: 3 },
  fc
    .array(
      fc.oneof(
        fc.tuple(metaKey, fc.constantFrom('=', '==', '!='), metaValue).map((p) => p.join('')),
        fc
          .tuple(metaKey, fc.constantFrom(' in ', ' notin '), fc.array(metaValue, { maxLength: 3 }))
          .map(([k, op, vs]) => `${k}${op}(${vs.join(',')})`),
        metaKey.map((k) => `!${k}`),
      ),
      { maxLength: 3 },
    )
    .map((r) => r.join(',')),
  fc.constantFrom('a in (', '!!', '==', ',', 'a,'.repeat(200), '%', 'x=y=z'),
);
const queryValue = (v: fc.Arbitrary<string>) =>
  v.chain((s) => fc.constantFrom(encodeURIComponent(s), s.replace(/[&#\s]/g, ''), `${encodeURIComponent(s)}%`));
const listQuery = fc
  .record(
    {
      labelSelector: queryValue(selector),
      fields: queryValue(
        fc.oneof(fc.constantFrom('name', 'name,state', 'name,labels,revision', 'name,,', 'nosuch', ''), fc.string()),
      ),
      watch: fc.constantFrom('0', 'false', '0', 'false', '', 'x', '2'),
      since: fc.constantFrom('0', '1', '5', '0', '-1', 'x', '99999999999999999999999', ''),
      initial: fc.constantFrom('1', 'true', '0', 'false', 'x'),
      junk: fc.constantFrom('a[b]=c', '__proto__=1', '%=%', '&&&', 'constructor[prototype]=1', 'labelSelector=x'),
    },
    { requiredKeys: [] },
  )
  .map((q) =>
    Object.entries(q)
      .map(([k, v]) => (k === 'junk' ? v : `${k}=${v}`))
      .join('&'),
  );

interface Call {
  kind: string;
  req: InjectOptions;
}
const json = (kind: string, method: 'POST' | 'PATCH' | 'DELETE', url: string, body: unknown, im?: string): Call => ({
  kind,
  req: {
    method,
    url,
    payload: body === undefined ? undefined : JSON.stringify(body),
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(im !== undefined ? { 'if-match': im } : {}),
    },
  } as InjectOptions,
});
const path = (n: string) => `/v1/jails/${encodeURIComponent(n)}`;

// mostly a jail that can be made (a path, typed parameters, valid meta), so creates are
// accepted as well as refused and later modifies find jails
const goodParams = fc
  .tuple(
    fc.constantFrom('/nonexistent/fuzz-root', '/nonexistent/other'),
    fc.array(
      fc.constantFrom(...paramNames).chain((p) => valueFor(p).map((v) => [p, v] as const)),
      { maxLength: 2 },
    ),
  )
  .map(([path, kv]) => ({
    path,
    ...Object.fromEntries(kv.filter(([k]) => k !== 'name' && k !== 'jid' && k !== 'skeleton')),
  }));
const goodMeta = fc.array(
  fc
    .tuple(fc.constantFrom('app', 'version', 'tier'), fc.constantFrom('www', 'v1', 'v2', 'db'))
    .map(([k, v]) => `${k}=${v}`),
  { maxLength: 3 },
);
const create = fc
  .oneof(
    {
      arbitrary: fc.record(
        { name: fc.constantFrom(...names), params: goodParams, meta: goodMeta, env: goodMeta },
        { requiredKeys: ['name', 'params'] },
      ),
      weight: 2,
    },
    fc.record(
      { name, params, meta: metaInput, env: metaInput, extra: fc.constantFrom('parms', 'names', '') },
      {
        requiredKeys: ['name'],
      },
    ),
  )
  .map(({ extra, ...b }: Record<string, unknown>) =>
    json('create', 'POST', '/v1/jails', typeof extra === 'string' && extra ? { ...b, [extra]: 1 } : b),
  );
const modify = fc
  .tuple(
    name,
    fc.record(
      { params, unset: fc.array(paramName, { maxLength: 3 }), meta: metaInput, env: metaInput },
      {
        requiredKeys: [],
      },
    ),
    ifMatch,
  )
  .map(([n, b, im]) => json('modify', 'PATCH', path(n), b, im));
const remove = fc.tuple(name, ifMatch).map(([n, im]) => json('remove', 'DELETE', path(n), undefined, im));
// start and restart only for names that are never created (nothing may really start)
const batch = fc.oneof(
  fc
    .record(
      {
        names: fc.array(name, { maxLength: 3 }),
        parallel: fc.constantFrom(1, 2, 0, -1, 1.5, '2'),
        dryRun: fc.boolean(),
      },
      { requiredKeys: ['names'] },
    )
    .chain((b) => fc.constantFrom('stop', 'remove').map((v) => json('batch', 'POST', `/v1/batch/${v}`, b))),
  fc
    .array(fc.constantFrom('nx1', 'nx2', '', 'n/x'), { maxLength: 3 })
    .chain((ns) =>
      fc.constantFrom('start', 'restart').map((v) => json('batch', 'POST', `/v1/batch/${v}`, { names: ns })),
    ),
  fc
    .constantFrom('nx1', 'n%2Fx', '%')
    .chain((n) =>
      fc.constantFrom('start', 'restart', 'stop').map((v) => json('batch', 'POST', `/v1/jails/${n}/${v}`, undefined)),
    ),
);
// half of the lists well-formed (a valid selector and fields), so filtering is reached too
const validList = fc
  .tuple(
    fc.constantFrom('app=www', 'app in (www,db),!legacy', 'version!=v1', 'tier', ''),
    fc.constantFrom('', 'name', 'name,labels,revision'),
  )
  .map(([sel, f]) => `labelSelector=${encodeURIComponent(sel)}${f ? `&fields=${f}` : ''}`);
const list = fc
  .oneof(validList, listQuery)
  .map((q): Call => ({ kind: 'list', req: { method: 'GET', url: `/v1/jails?${q}` } }));
const get = fc.tuple(name, fc.option(queryValue(fc.constantFrom('name', 'meta,env', 'x', '')), { nil: undefined })).map(
  ([n, f]): Call => ({
    kind: 'get',
    req: { method: 'GET', url: `${path(n)}${f === undefined ? '' : `?fields=${f}`}` },
  }),
);
const validBodies = [
  '{"name":"fa","params":{"path":"/nonexistent/fuzz-root","persist":true},"meta":["app=www","version=v1"],"env":["k=v"]}',
  '{"params":{"host.hostname":"h"},"unset":["persist"],"meta":[{"op":"set","key":"tier","value":"db"}]}',
  '{"name":"fb","params":{"path":"/nonexistent/fuzz-root","ip4.addr":["198.51.100.120/24"]},"meta":"app=db\\n"}',
  '{"env":[{"op":"remove","key":"k"}],"meta":["meta.app=www"]}',
];
const rawBody = fc
  .tuple(
    fc.oneof(
      mutated(validBodies, ['{', '}', '[', ']', '"', ',', ':', '\\u0000', 'null', '__proto__', '1e999', '-0'], 4),
      fc.string({ maxLength: 60 }),
    ),
    fc.constantFrom('POST /v1/jails', 'PATCH /v1/jails/fa', 'PATCH /v1/jails/fb'),
    fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'text/plain',
      'application/x-www-form-urlencoded',
      '',
    ),
  )
  .map(([body, target, type]): Call => {
    const [method, url] = target.split(' ') as ['POST' | 'PATCH', string];
    return { kind: 'raw', req: { method, url, payload: body, headers: type ? { 'content-type': type } : {} } };
  });

const call = fc.oneof(
  { arbitrary: create, weight: 6 },
  { arbitrary: modify, weight: 6 },
  { arbitrary: remove, weight: 2 },
  { arbitrary: batch, weight: 2 },
  { arbitrary: list, weight: 4 },
  { arbitrary: get, weight: 2 },
  { arbitrary: rawBody, weight: 4 },
);

// ------------------------------------------------------------------ oracle

/** Everything a refused request must leave alone. */
function stateNow(): string {
  const jails = store.listJails().map((j) => ({
    name: j.name,
    state: j.state,
    revision: j.revision,
    params: j.params,
    meta: j.meta,
    env: j.env,
    ready: j.ready,
  }));
  let folders: string[] = [];
  try {
    folders = readdirSync(join(dir, 'jails')).sort();
  } catch {
    // no jail made yet
  }
  return JSON.stringify({ revision: store.currentRevision(), jails, folders });
}

function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${BOUND_MS} ms (a hang): ${what}`)), BOUND_MS);
  });
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

const show = (c: Call) => JSON.stringify({ ...c.req, payload: String(c.req.payload ?? '').slice(0, 400) });

async function checkCall(c: Call, statuses: Map<string, number>): Promise<void> {
  const before = stateNow();
  const res = await within(daemon.app.inject(c.req), show(c));
  const key = `${c.kind} ${res.statusCode}`;
  statuses.set(key, (statuses.get(key) ?? 0) + 1);
  assert.ok(
    (res.statusCode >= 200 && res.statusCode < 300) || (res.statusCode >= 400 && res.statusCode < 500),
    `${res.statusCode} for ${show(c)}: ${res.body.slice(0, 300)}`,
  );
  if (res.statusCode < 400) {
    if (c.req.method === 'GET') assert.equal(stateNow(), before, `a read changed state: ${show(c)}`);
    return;
  }
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    throw new Error(`a ${res.statusCode} without a JSON body for ${show(c)}: ${res.body.slice(0, 200)}`);
  }
  if (Array.isArray(body.outcomes)) {
    // a failed batch: its outcomes name the jails and their codes
    for (const o of body.outcomes as Array<{ name: string; status: string; code?: string }>)
      if (o.status === 'failed') assert.match(o.code ?? '', /^JY_ERR_/, `outcome without a code: ${res.body}`);
  } else {
    assert.match(String(body.code), /^JY_ERR_/, `error body ${res.body}`);
    assert.notEqual(body.code, 'JY_ERR_INTERNAL', `${show(c)}: ${res.body}`);
    assert.ok(
      ['param', 'key', 'jail', 'step'].some((k) => typeof body[k] === 'string' && body[k] !== ''),
      `an error without its place for ${show(c)}: ${res.body}`,
    );
  }
  assert.equal(stateNow(), before, `a refused request (${res.statusCode}) changed state: ${show(c)}`);
}

/** A watch request through the real socket: the head of the answer, then hang up. */
function watchHead(query: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const sock = connect({ path: daemon.socketPath });
    let text = '';
    const done = (status?: number) => {
      sock.destroy();
      resolve(status);
    };
    sock.on('data', (d) => {
      text += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m && text.includes('\r\n\r\n')) done(Number(m[1]));
    });
    sock.on('error', () => done(undefined));
    sock.on('close', () => done(/^HTTP\/1\.1 (\d{3})/.exec(text) ? Number(text.slice(9, 12)) : undefined));
    sock.write(`GET /v1/jails?watch=1&${query} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

// ------------------------------------------------------------------ the run

test('fuzz api: generated bodies and query strings; 2xx or placed 4xx, refused requests change nothing', {
  timeout: 600_000,
}, async (t) => {
  const started = performance.now();
  const runs = budget(800, 30_000);
  const [nCalls, nWatch] = shares(runs, [19, 1]) as [number, number];
  const statuses = new Map<string, number>();
  const per: Record<string, number> = { requests: 0, watch: 0 };
  await fc.assert(
    fc.asyncProperty(call, async (c) => {
      await checkCall(c, statuses);
      per.requests!++;
    }),
    { numRuns: nCalls },
  );
  await fc.assert(
    fc.asyncProperty(listQuery, async (q) => {
      const before = stateNow();
      const status = await within(watchHead(q), `watch ?watch=1&${q}`);
      assert.ok(status !== undefined && (status === 200 || (status >= 400 && status < 500)), `watch ${q}: ${status}`);
      assert.equal(stateNow(), before);
      per.watch!++;
    }),
    { numRuns: nWatch },
  );
  t.diagnostic(`statuses: ${JSON.stringify([...statuses].sort())}`);
  // the generators reached the handlers: creates and modifies were accepted, and refused
  const seen = (k: string) => [...statuses.keys()].some((s) => s.startsWith(k));
  for (const k of ['create 201', 'create 4', 'modify 200', 'modify 4', 'list 200', 'list 4'])
    assert.ok(seen(k), `no "${k}" in ${JSON.stringify([...statuses].sort())}`);
  // still serving on its socket, and no handler failed
  assert.equal(await within(watchHead('since=0'), 'alive'), 200);
  assert.deepEqual(logged, [], 'no handler failed');
  report(t, {
    target: 'api',
    inputs: per.requests! + per.watch!,
    failures: 0,
    per,
    seconds: (performance.now() - started) / 1000,
  });
});
