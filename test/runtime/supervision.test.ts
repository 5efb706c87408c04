// Health checks and restart.policy as data (src/runtime/supervision.ts, the parameters in
// src/conf/params.ts): validation with the parameter named, Docker's health state machine,
// which deaths each policy restarts, the bounded back-off and its reset. No root needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseParamAssignment } from '../../src/conf/params.ts';
import { parseDuration } from '../../src/conf/duration.ts';
import { parseProbeUrl } from '../../src/conf/probe-url.ts';
import { JailyardError } from '../../src/errors.ts';
import {
  afterCheck,
  checkSupervisionParams,
  cleanOutput,
  healthSpecOf,
  pendingRestart,
  probeTarget,
  RESTART_RESET_MS,
  restartDelay,
  restartSpecOf,
  restartWanted,
  startedForRestart,
} from '../../src/runtime/supervision.ts';
import { supervisionAfter } from '../../src/store/sqlite.ts';

const refused = (param: string, text: RegExp) => (e: unknown) =>
  e instanceof JailyardError && e.code === 'JY_ERR_PARAM_VALUE' && e.place.param === param && text.test(e.message);

test('parameter words: durations, URLs and policies checked where they are typed', () => {
  assert.deepEqual(parseParamAssignment('health.interval=500ms'), {
    kind: 'param',
    name: 'health.interval',
    value: '500ms',
  });
  assert.throws(() => parseParamAssignment('health.interval=3x', 'j'), refused('health.interval', /not a duration/));
  assert.throws(
    () => parseParamAssignment('health.timeout=10ms', 'j'),
    refused('health.timeout', /shorter than 100ms/),
  );
  assert.throws(() => parseParamAssignment('health.retries=0', 'j'), refused('health.retries', /out of range/));
  assert.throws(() => parseParamAssignment('health.http=https://198.51.100.5/', 'j'), refused('health.http', /https/));
  assert.throws(
    () => parseParamAssignment('health.http=http://www.example/', 'j'),
    refused('health.http', /not an IP/),
  );
  assert.throws(() => parseParamAssignment('health.http=/a b', 'j'), refused('health.http', /not a URL path/));
  assert.throws(
    () => parseParamAssignment('restart.policy=sometimes', 'j'),
    refused('restart.policy', /unknown value/),
  );
  assert.throws(() => parseParamAssignment('restart.delay=2d', 'j'), refused('restart.delay', /not a duration/));
  assert.equal(parseDuration('1.5m'), 90_000);
  assert.equal(parseDuration('30'), 30_000);
  assert.deepEqual(parseProbeUrl('http://[2001:db8:4a59::5]:8080/h?x=1'), {
    host: '2001:db8:4a59::5',
    port: 8080,
    path: '/h?x=1',
  });
  assert.ok('problem' in parseProbeUrl('http://198.51.100.5:70000/'));
});

test('the parameters together: what a create refuses, naming the parameter', () => {
  const ok = { 'ip4.addr': ['198.51.100.5/24'], 'health.http': '/healthz', 'health.interval': '2s' };
  checkSupervisionParams(ok, 'j');
  const spec = healthSpecOf(ok, 'j')!;
  assert.deepEqual(spec, {
    http: { port: 80, path: '/healthz' },
    intervalMs: 2000,
    timeoutMs: 30_000,
    retries: 3,
    startPeriodMs: 0,
  });
  assert.deepEqual(probeTarget(spec.http!, ok, 'j'), { host: '198.51.100.5', port: 80, path: '/healthz' });
  assert.throws(
    () => checkSupervisionParams({ 'health.http': '/healthz' }, 'j'),
    refused('health.http', /needs an ip4.addr/),
  );
  assert.throws(
    () => checkSupervisionParams({ 'ip4.addr': ['198.51.100.5'], 'health.http': 'http://198.51.100.6/' }, 'j'),
    refused('health.http', /not one of the jail's addresses \(198\.51\.100\.5\)/),
  );
  assert.throws(() => checkSupervisionParams({ 'health.cmd': 'true', 'health.http': '/' }, 'j'), /not both/);
  assert.throws(
    () => checkSupervisionParams({ 'health.retries': 2 }, 'j'),
    refused('health.retries', /needs health.cmd or health.http/),
  );
  assert.throws(
    () => checkSupervisionParams({ 'restart.delay': '10s', 'restart.delay_max': '1s' }, 'j'),
    refused('restart.delay_max', /shorter/),
  );
  assert.equal(healthSpecOf({}, 'j'), undefined);
  assert.deepEqual(restartSpecOf({}, 'j'), { policy: 'no', delayMs: 1000, delayMaxMs: 60_000 });
});

test("health: Docker's state machine (retries in a row, start period, a success heals)", () => {
  const spec = { retries: 3, startPeriodMs: 1000 };
  let h = { status: 'starting' as const, failingStreak: 0 } as ReturnType<typeof afterCheck>;
  // failures in the start period do not count while never healthy
  h = afterCheck(h, false, spec, 500);
  assert.deepEqual(h, { status: 'starting', failingStreak: 0 });
  h = afterCheck(h, false, spec, 1500);
  h = afterCheck(h, false, spec, 1600);
  assert.deepEqual(h, { status: 'starting', failingStreak: 2 });
  h = afterCheck(h, false, spec, 1700);
  assert.deepEqual(h, { status: 'unhealthy', failingStreak: 3 });
  h = afterCheck(h, true, spec, 1800);
  assert.deepEqual(h, { status: 'healthy', failingStreak: 0 });
  // once healthy, the start period no longer hides failures
  h = afterCheck({ status: 'healthy', failingStreak: 0 }, false, spec, 10);
  assert.deepEqual(h, { status: 'healthy', failingStreak: 1 });
  h = afterCheck(afterCheck(h, false, spec, 20), false, spec, 30);
  assert.equal(h.status, 'unhealthy');
});

test('restart.policy: which endings each restarts', () => {
  const table = (['no', 'on-failure', 'always'] as const).map((p) =>
    (['died', 'exited', 'unhealthy'] as const).map((r) => restartWanted(p, r)),
  );
  assert.deepEqual(table, [
    [false, false, false],
    [true, false, true],
    [true, true, true],
  ]);
});

test('back-off: doubled per restart in a row, bounded, reset after the jail stayed up', () => {
  const spec = { delayMs: 500, delayMaxMs: 3000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 40].map((a) => restartDelay(a, spec)),
    [500, 1000, 2000, 3000, 3000, 3000],
  );
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  // a first death, or one long after the jail came up: attempt 1
  let p = pendingRestart(null, 'died', spec, t0, undefined);
  assert.deepEqual(p, { reason: 'died', attempt: 1, at: new Date(t0 + 500).toISOString() });
  let sup = startedForRestart({ restarts: 0, pending: p }, p, t0 + 500);
  assert.deepEqual(sup, { restarts: 1, streak: 1, lastStart: new Date(t0 + 500).toISOString(), lastReason: 'died' });
  // dies again 1 s after it came up: attempt 2, twice the delay
  p = pendingRestart(sup, 'died', spec, t0 + 1500, t0 + 500);
  assert.equal(p.attempt, 2);
  assert.equal(Date.parse(p.at) - (t0 + 1500), 1000);
  sup = startedForRestart({ ...sup, pending: p }, p, t0 + 2500);
  assert.equal(sup.restarts, 2);
  // up for RESTART_RESET_MS: back to the first delay
  p = pendingRestart(sup, 'unhealthy', spec, t0 + 2500 + RESTART_RESET_MS, t0 + 2500);
  assert.deepEqual([p.attempt, Date.parse(p.at) - (t0 + 2500 + RESTART_RESET_MS)], [1, 500]);
});

test("the store's transition rules: an operator's start or stop cancels a pending restart", () => {
  const pending = { reason: 'died' as const, at: '2026-01-01T00:00:01.000Z', attempt: 1 };
  const health = { status: 'healthy' as const, failingStreak: 0, since: '2026-01-01T00:00:00.000Z' };
  const sup = { restarts: 2, pending, health };
  assert.deepEqual(supervisionAfter(sup, 'stopping'), { restarts: 2, health });
  assert.deepEqual(supervisionAfter(sup, 'starting'), { restarts: 2 });
  assert.deepEqual(supervisionAfter(sup, 'stopped'), { restarts: 2, pending });
  // the supervisor's own stop writes the restart in the same transaction
  assert.deepEqual(
    supervisionAfter({ restarts: 0, health }, 'stopping', (c) => ({ ...c!, pending })),
    { restarts: 0, health, pending },
  );
  // nothing worth keeping: no value at all
  assert.equal(supervisionAfter({ restarts: 0, health }, 'stopped'), null);
});

test('check output kept in the record: printable and bounded', () => {
  assert.equal(cleanOutput('a\u001b[31mb\u0007c\n'), 'a[31mbc');
  assert.equal(cleanOutput('x'.repeat(2000)).length, 515);
});
