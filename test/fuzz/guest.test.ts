// Issue 12 "Fuzzing": guest-socket requests (src/api/guest.ts) at a real daemon in this
// process: two running jails (the store-only service of test/api/helpers.ts walks the state
// machine; the guest sockets are real unix sockets), generated requests to the first one's
// socket: well-formed ones (methods, paths, escapes, queries, headers, bodies) and raw bytes
// (mutated well-formed requests, random bytes). Oracle per request: an answer within the
// bound (the client half-closes after writing, so a partial request ends too) that is not a
// 5xx; no answer carries meta or the other jail's env; the jail's env never changes, its
// readiness only with a 204 to PUT/POST/DELETE /ready, and nothing of the other jail
// changes. Afterwards the socket still serves the jail's env and no handler failed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import { startTestDaemon, tempState, type TestDaemon } from '../api/helpers.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';
import { budget, report, shares } from './harness.ts';
import { mutated, rawText } from './targets/corpus.ts';

const BOUND_MS = Number(process.env.JAILYARD_FUZZ_API_BOUND_MS ?? '5000');
const META_SECRET = 'meta-secret-4711';
const OTHER_SECRET = 'other-env-0815';

const state = tempState('jy-fuzz-guest-');
let d: TestDaemon;
let baseline: SystemSnapshot;
const logged: string[] = [];
const sock = (name: string) => join(state.dir, 'guest', name, 'guest.sock');

before(async () => {
  baseline = snapshot();
  d = await startTestDaemon(state.dir, {
    guestRoot: join(state.dir, 'guest'),
    logger: { level: 'error', stream: { write: (line: string) => void logged.push(line) } },
    // the fuzzer opens one short connection per request; its /ready requests must be stored
    // at once (the oracle ties a change to its 204), so the readiness budget never runs out
    limits: { guestMaxConnections: 64, guestReadyBurst: 1_000_000 },
  });
  await d.service.create({
    spec: { name: 'gj', params: { name: 'gj', path: '/x' } },
    env: [
      { op: 'set', key: 'role', value: 'fuzz' },
      { op: 'set', key: 'app', value: 'www' },
    ],
    meta: [{ op: 'set', key: 'admin_only', value: META_SECRET }],
  });
  await d.service.create({
    spec: { name: 'gk', params: { name: 'gk', path: '/x' } },
    env: [{ op: 'set', key: 'role', value: OTHER_SECRET }],
  });
  await d.service.start(['gj', 'gk']);
  const t0 = Date.now();
  while ((await send(`GET /env HTTP/1.1\r\nHost: x\r\n\r\n`)).status !== 200) {
    if (Date.now() - t0 > 5000) throw new Error('guest socket did not appear');
    await new Promise((r) => setTimeout(r, 20));
  }
});

after(async () => {
  await d?.close();
  assertNoLeaks(baseline, state.dir);
  state.cleanup();
});

/** The answer without the interim 1xx heads before it (100 Continue to an Expect). */
const final = (text: string): string => text.replace(/^(HTTP\/1\.[01] 1\d\d[^\r]*\r\n(?:[^\r]+\r\n)*\r\n)+/, '');

/** Writes the bytes, half-closes, and reads the answer: its status once the head and the
 * announced body are in, else whatever came until the daemon closed. */
function send(bytes: string | Buffer): Promise<{ status?: number; text: string }> {
  return new Promise((resolve) => {
    const s = connect({ path: sock('gj') });
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      s.destroy();
      const text = final(buf.toString('latin1'));
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve(m ? { status: Number(m[1]), text } : { text });
    };
    s.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const text = final(buf.toString('latin1'));
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
      if (len && buf.length >= end + 4 + Number(len[1])) done();
    });
    s.on('error', done);
    s.on('close', done);
    s.on('connect', () => s.end(bytes));
  });
}

// ------------------------------------------------------------------ generators

const method = fc.oneof(
  { arbitrary: fc.constantFrom('GET', 'PUT', 'POST', 'DELETE'), weight: 8 },
  fc.constantFrom('HEAD', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT', 'get', 'M-SEARCH'),
  fc.stringMatching(/^[A-Z]{1,8}$/),
);
const path = fc.oneof(
  {
    arbitrary: fc.constantFrom('/env', '/env/role', '/env/app', '/ready', '/env/admin_only', '/env/', '/ready/'),
    weight: 8,
  },
  fc.constantFrom(
    '/env/%',
    '/env/%E0%A4%A',
    '/env/%00',
    '/env/..%2F..%2Fgk%2Fenv',
    '/env/../ready',
    '//env',
    '/ENV',
    '/env/role/x',
    '/env/role%00',
    '/env?x=1',
    '/ready?x',
    '/env#frag',
    '/v1/jails/gk',
    '/v1/jails',
    '/metrics',
    '*',
    'http://x/env',
    '/',
    `/env/${'a'.repeat(5000)}`,
    `/env/${'%41'.repeat(3000)}`,
  ),
  fc.string({ maxLength: 16 }).map((s) => `/env/${encodeURIComponent(s)}`),
  fc.string({ maxLength: 16 }).map((s) => `/${s.replace(/[\s]/g, '')}`),
);
const header = fc.oneof(
  fc.constantFrom(
    'Content-Type: application/json',
    'Content-Length: 0',
    'Content-Length: 5',
    'Content-Length: -1',
    'Content-Length: 99999999',
    'Transfer-Encoding: chunked',
    'Expect: 100-continue',
    'Connection: keep-alive',
    'Connection: upgrade',
    'Upgrade: websocket',
    'X-Jail: gk',
    'Host: gk',
    'Authorization: Bearer x',
    `X-Long: ${'a'.repeat(9000)}`,
  ),
  fc
    .tuple(fc.stringMatching(/^[A-Za-z-]{1,10}$/), fc.string({ maxLength: 20 }))
    .map(([k, v]) => `${k}: ${v.replace(/[\r\n]/g, '')}`),
);
const body = fc.option(
  fc.oneof(
    fc.constantFrom('hello', '{"ready":true}', '5\r\nhello\r\n0\r\n\r\n', 'zz\r\nx\r\n', 'x'.repeat(70_000)),
    fc.string({ maxLength: 40 }),
  ),
  { nil: undefined },
);
const wellFormed = fc
  .tuple(method, path, fc.array(header, { maxLength: 3 }), body, fc.boolean())
  .map(([m, p, hs, b, withLength]) => {
    const lines = [`${m} ${p} HTTP/1.1`, 'Host: x', ...hs];
    if (b !== undefined && withLength && !hs.some((h) => /^(content-length|transfer-encoding)/i.test(h)))
      lines.push(`Content-Length: ${Buffer.byteLength(b)}`);
    return `${lines.join('\r\n')}\r\n\r\n${b ?? ''}`;
  });
const seeds = [
  'GET /env HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /env/role HTTP/1.1\r\nHost: x\r\n\r\n',
  'PUT /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
  'DELETE /ready HTTP/1.1\r\nHost: x\r\n\r\n',
  'POST /ready HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
];
const tokens = [
  '\r\n',
  '\r',
  '\n',
  ' ',
  ':',
  '/',
  '%',
  '?',
  '#',
  'HTTP/1.0',
  'HTTP/2',
  '\x00',
  'é',
  '..',
  'gk',
  'env',
  'ready',
];
const raw = fc.oneof({ arbitrary: mutated(seeds, tokens, 4), weight: 3 }, rawText(120));

// ------------------------------------------------------------------ oracle

function jailsNow(): string {
  const j = d.store.getJail('gj')!;
  const k = d.store.getJail('gk')!;
  return JSON.stringify({ gj: { env: j.env, meta: j.meta, state: j.state, params: j.params }, gk: k });
}

function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${BOUND_MS} ms (a hang): ${what}`)), BOUND_MS);
  });
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

async function check(req: string, wellFormedRequest: boolean, statuses: Map<string, number>): Promise<void> {
  const before = jailsNow();
  const readyBefore = d.store.getJail('gj')!.ready;
  const shown = JSON.stringify(req.slice(0, 300));
  const r = await within(send(req), shown);
  const key = String(r.status ?? 'none');
  statuses.set(key, (statuses.get(key) ?? 0) + 1);
  // node drops a CONNECT without a listener for it (nothing was served)
  if (wellFormedRequest && !req.startsWith('CONNECT ')) assert.ok(r.status !== undefined, `no answer to ${shown}`);
  assert.ok(r.status === undefined || r.status < 500, `${r.status} for ${shown}: ${r.text.slice(0, 200)}`);
  assert.ok(!r.text.includes(META_SECRET), `meta served for ${shown}`);
  assert.ok(!r.text.includes(OTHER_SECRET), `the other jail's env served for ${shown}`);
  assert.equal(jailsNow(), before, `a request changed the jails: ${shown}`);
  const readyAfter = d.store.getJail('gj')!.ready;
  if (readyAfter !== readyBefore) {
    assert.equal(r.status, 204, `readiness changed without a 204: ${shown}`);
    // llhttp skips empty lines before the request line, takes more than one space after the
    // method ("DELETE  /ready") and a request line without a version ("POST /ready\n"); the
    // route is the target up to '?', exactly /ready, and the method says which way it goes
    const m = /^[\r\n]*(PUT|POST|DELETE)[ \t]+\/ready(?:[ \t?\r\n]|$)/.exec(req);
    assert.ok(m, `readiness changed by a request that is no PUT/POST/DELETE of /ready: ${shown}`);
    assert.equal(readyAfter, m[1] !== 'DELETE', `readiness went the wrong way: ${shown}`);
  }
}

// ------------------------------------------------------------------ the run

test('fuzz guest: generated requests at a guest socket; never 5xx, no leak, state only through /ready', {
  timeout: 600_000,
}, async (t) => {
  const started = performance.now();
  const [nWell, nRaw] = shares(budget(600, 20_000), [3, 1]) as [number, number];
  const statuses = new Map<string, number>();
  const per: Record<string, number> = { wellformed: 0, raw: 0 };
  // found by a CI run: two spaces after the method still reach /ready
  await check('DELETE  /ready HTTP/1.1\r\nHost: x\r\n\r\n', true, statuses);
  await check('PUT  /ready?x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n', true, statuses);
  await fc.assert(
    fc.asyncProperty(wellFormed, async (req) => {
      await check(req, true, statuses);
      per.wellformed!++;
    }),
    { numRuns: nWell },
  );
  await fc.assert(
    fc.asyncProperty(raw, async (req) => {
      await check(req, false, statuses);
      per.raw!++;
    }),
    { numRuns: nRaw },
  );
  t.diagnostic(`statuses: ${JSON.stringify([...statuses].sort())}`);
  for (const s of ['200', '204', '400', '404', '405'])
    assert.ok(statuses.has(s), `no ${s} in ${JSON.stringify([...statuses].sort())}`);
  const env = await send('GET /env/role HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(env.status, 200);
  assert.match(env.text, /fuzz$/);
  assert.deepEqual(logged, [], 'no handler failed');
  report(t, {
    target: 'guest',
    inputs: per.wellformed! + per.raw!,
    failures: 0,
    per,
    seconds: (performance.now() - started) / 1000,
  });
});
