// The load balancer's health gate (label jailyard.lb/readiness=health, docs/lb.md and
// docs/health.md): a jail gets traffic only once HAProxy's check passed AND the daemon's
// health check says healthy; both sources carry the verdict. Pure, no HAProxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { desiredServers } from '../../src/lb/controller.ts';
import { lbJailOf, type LbJail } from '../../src/lb/source.ts';

const jail = (name: string, health: string | null, readiness = 'health'): LbJail => ({
  name,
  state: 'running',
  labels: { app: 'www', 'jailyard.lb/readiness': readiness },
  params: { 'ip4.addr': ['198.51.100.40/24'] },
  ready: true,
  health,
});

test('readiness=health: only a healthy jail leaves maintenance; guest still gates on ready', () => {
  const { servers, skipped } = desiredServers(
    [jail('a', 'healthy'), jail('b', 'starting'), jail('c', 'unhealthy'), jail('d', null), jail('e', null, 'guest')],
    'app=www',
    80,
  );
  assert.deepEqual(skipped, []);
  assert.deepEqual(
    [...servers.values()].map((s) => [s.jail, s.gated, s.awaitingReady]),
    [
      ['a', true, false],
      ['b', true, true],
      ['c', true, true],
      ['d', true, true],
      ['e', true, false],
    ],
  );
  const bad = desiredServers([jail('f', 'healthy', 'sometimes')], 'app=www', 80);
  assert.match(bad.skipped[0]!.reason, /\(guest, health, or no label\)/);
});

test('the polling source reads the verdict from the record, only while running', () => {
  const base = { name: 'a', meta: 'app=www', env: '', params: {}, ready: false };
  const health = { status: 'healthy' as const, failingStreak: 0, since: 't' };
  assert.equal(lbJailOf({ ...base, state: 'running', supervision: { restarts: 0, health } }).health, 'healthy');
  assert.equal(lbJailOf({ ...base, state: 'stopping', supervision: { restarts: 0, health } }).health, null);
  assert.equal(lbJailOf({ ...base, state: 'running' }).health, null);
});
