// Health checks and restart.policy as data (docs/health.md): what a jail's parameters ask
// for, the health state machine (Docker's: starting -> healthy / unhealthy after `retries`
// failures in a row, failures in the start period not counted), which deaths a policy
// restarts, and the restart back-off. Pure: parameters and times in, decisions out; the
// daemon's supervisor (supervisor.ts) acts on them.

import { isIP } from 'node:net';
import { JailyardError } from '../errors.ts';
import { paramInt, paramList, paramString, type Params } from '../conf/spec.ts';
import { parseDuration } from '../conf/duration.ts';
import { parseProbeUrl, type ProbeUrl } from '../conf/probe-url.ts';
import type { HealthStatus, JailSupervision, RestartReason } from '../store/types.ts';

export type RestartPolicy = 'no' | 'on-failure' | 'always';

export interface HealthSpec {
  /** health.cmd: run in the jail with /bin/sh -c. */
  cmd?: string;
  /** health.http, parsed. */
  http?: ProbeUrl;
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export interface RestartSpec {
  policy: RestartPolicy;
  delayMs: number;
  delayMaxMs: number;
}

/** Docker's defaults (HEALTHCHECK: interval 30s, timeout 30s, retries 3, start period 0). */
export const HEALTH_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 };
/** The back-off: 1 s doubled per restart in a row, at most 60 s (Docker: 100 ms .. 1 min). */
export const RESTART_DEFAULTS = { delayMs: 1000, delayMaxMs: 60_000 };
/** A jail up this long after a restart starts over at the first delay (Docker: 10 s). */
export const RESTART_RESET_MS = 10_000;
/** A check's output kept in the record (the rest is cut). */
export const OUTPUT_MAX = 512;

const POLICIES: readonly RestartPolicy[] = ['no', 'on-failure', 'always'];

function durationParam(params: Params, name: string, fallback: number, jail: string): number {
  const text = paramString(params, name);
  if (text === undefined || text === '') return fallback;
  const ms = parseDuration(text);
  if (typeof ms !== 'number')
    throw new JailyardError('JY_ERR_PARAM_VALUE', `${name}: ${ms.problem}`, { jail, param: name });
  return ms;
}

/** The jail's health check, or undefined without health.cmd and health.http. */
export function healthSpecOf(params: Params, jail: string): HealthSpec | undefined {
  const cmd = paramString(params, 'health.cmd')?.trim() || undefined;
  const httpText = paramString(params, 'health.http') || undefined;
  if (cmd === undefined && httpText === undefined) {
    for (const p of ['health.interval', 'health.timeout', 'health.retries', 'health.start_period']) {
      const v = params[p];
      if (v !== undefined && v !== '')
        throw new JailyardError('JY_ERR_PARAM_VALUE', `${p} needs health.cmd or health.http`, { jail, param: p });
    }
    return undefined;
  }
  if (cmd !== undefined && httpText !== undefined)
    throw new JailyardError('JY_ERR_PARAM_VALUE', 'give health.cmd or health.http, not both', {
      jail,
      param: 'health.http',
    });
  let http: ProbeUrl | undefined;
  if (httpText !== undefined) {
    const u = parseProbeUrl(httpText);
    if ('problem' in u)
      throw new JailyardError('JY_ERR_PARAM_VALUE', `health.http: ${u.problem}`, { jail, param: 'health.http' });
    http = u;
  }
  const retries = paramInt(params, 'health.retries') ?? HEALTH_DEFAULTS.retries;
  if (!(retries >= 1))
    throw new JailyardError('JY_ERR_PARAM_VALUE', `health.retries must be at least 1, got ${retries}`, {
      jail,
      param: 'health.retries',
    });
  const spec: HealthSpec = {
    ...(cmd !== undefined ? { cmd } : {}),
    ...(http ? { http } : {}),
    intervalMs: durationParam(params, 'health.interval', HEALTH_DEFAULTS.intervalMs, jail),
    timeoutMs: durationParam(params, 'health.timeout', HEALTH_DEFAULTS.timeoutMs, jail),
    retries,
    startPeriodMs: durationParam(params, 'health.start_period', HEALTH_DEFAULTS.startPeriodMs, jail),
  };
  for (const [p, ms] of [
    ['health.interval', spec.intervalMs],
    ['health.timeout', spec.timeoutMs],
  ] as const) {
    if (ms < 100) throw new JailyardError('JY_ERR_PARAM_VALUE', `${p} must be at least 100ms`, { jail, param: p });
  }
  return spec;
}

/** The jail's restart.policy and back-off. */
export function restartSpecOf(params: Params, jail: string): RestartSpec {
  const text = paramString(params, 'restart.policy') || 'no';
  if (!POLICIES.includes(text as RestartPolicy))
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      `restart.policy: unknown value "${text}" (expected ${POLICIES.join(', ')})`,
      {
        jail,
        param: 'restart.policy',
      },
    );
  const delayMs = durationParam(params, 'restart.delay', RESTART_DEFAULTS.delayMs, jail);
  const delayMaxMs = durationParam(params, 'restart.delay_max', Math.max(delayMs, RESTART_DEFAULTS.delayMaxMs), jail);
  if (delayMaxMs < delayMs)
    throw new JailyardError('JY_ERR_PARAM_VALUE', 'restart.delay_max is shorter than restart.delay', {
      jail,
      param: 'restart.delay_max',
    });
  return { policy: text as RestartPolicy, delayMs, delayMaxMs };
}

/** The jail's own addresses (ip4.addr, ip6.addr without interface and mask), in order. */
export function jailAddresses(params: Params): string[] {
  return [...paramList(params, 'ip4.addr'), ...paramList(params, 'ip6.addr')]
    .map((a) => {
      const bar = a.indexOf('|');
      return (bar >= 0 ? a.slice(bar + 1) : a).split(/[/ ]/, 1)[0] ?? '';
    })
    .filter((a) => isIP(a) !== 0);
}

/** Where health.http connects: the named address (one of the jail's) or the jail's first. */
export function probeTarget(
  spec: ProbeUrl,
  params: Params,
  jail: string,
): { host: string; port: number; path: string } {
  const own = jailAddresses(params);
  if (spec.host === undefined) {
    const first = own[0];
    if (first === undefined)
      throw new JailyardError(
        'JY_ERR_PARAM_VALUE',
        'health.http with a path needs an ip4.addr or ip6.addr to check (or http://ADDRESS:PORT/path)',
        { jail, param: 'health.http' },
      );
    return { host: first, port: spec.port, path: spec.path };
  }
  if (!own.includes(spec.host))
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      `health.http names ${spec.host}, which is not one of the jail's addresses (${own.join(', ') || 'none'})`,
      { jail, param: 'health.http' },
    );
  return { host: spec.host, port: spec.port, path: spec.path };
}

/** Every check a create or a change makes of these parameters (JY_ERR_PARAM_VALUE naming
 * the parameter): nothing is written when one fails. */
export function checkSupervisionParams(params: Params, jail: string): void {
  const spec = healthSpecOf(params, jail);
  if (spec?.http) probeTarget(spec.http, params, jail);
  restartSpecOf(params, jail);
}

// ----------------------------------------------------------------- health state machine

export interface HealthState {
  status: HealthStatus;
  failingStreak: number;
}

/**
 * The health after one check (Docker's rules): a success is healthy at once; a failure
 * counts toward `retries` unless it falls in the start period while the jail has never been
 * healthy; `retries` failures in a row are unhealthy.
 */
export function afterCheck(
  cur: HealthState,
  ok: boolean,
  spec: Pick<HealthSpec, 'retries' | 'startPeriodMs'>,
  sinceStartMs: number,
): HealthState {
  if (ok) return { status: 'healthy', failingStreak: 0 };
  if (cur.status === 'starting' && sinceStartMs < spec.startPeriodMs) return cur;
  const failingStreak = cur.failingStreak + 1;
  return { status: failingStreak >= spec.retries ? 'unhealthy' : cur.status, failingStreak };
}

// ----------------------------------------------------------------- restarts

/**
 * Whether a policy restarts a jail that ended this way (docs/health.md):
 * - died: pid 1 (tini) or the holder is gone while the jail runs: on-failure and always;
 * - exited: a jail without persist whose last process ended (jail(8) removes it): always only
 *   (jailyard sees no exit status, so this is a clean end, Docker's exit 0);
 * - unhealthy: on-failure and always (Podman's --health-on-failure=restart).
 */
export function restartWanted(policy: RestartPolicy, reason: RestartReason): boolean {
  if (policy === 'always') return true;
  if (policy === 'on-failure') return reason !== 'exited';
  return false;
}

/** The delay before restart number `attempt` (1, 2, ...) in a row: delay * 2^(attempt-1),
 * at most delay_max. */
export function restartDelay(attempt: number, spec: Pick<RestartSpec, 'delayMs' | 'delayMaxMs'>): number {
  const exp = Math.min(Math.max(attempt - 1, 0), 30);
  return Math.min(spec.delayMs * 2 ** exp, spec.delayMaxMs);
}

/**
 * The pending restart for a jail that ended at `now` for `reason`: the attempt counts on
 * from the last one unless the jail stayed up RESTART_RESET_MS since the supervisor last
 * started it (or an operator started it since: no lastStart of this life).
 */
export function pendingRestart(
  sup: JailSupervision | null,
  reason: RestartReason,
  spec: Pick<RestartSpec, 'delayMs' | 'delayMaxMs'>,
  now: number,
  upSince: number | undefined,
): NonNullable<JailSupervision['pending']> {
  const quick = upSince !== undefined && now - upSince < RESTART_RESET_MS;
  const attempt = quick ? (sup?.streak ?? 0) + 1 : 1;
  return { reason, attempt, at: new Date(now + restartDelay(attempt, spec)).toISOString() };
}

/** The supervision once the supervisor starts the jail for its pending restart. */
export function startedForRestart(
  sup: JailSupervision | null,
  pending: NonNullable<JailSupervision['pending']>,
  now: number,
): JailSupervision {
  const { pending: _p, health: _h, ...rest } = sup ?? { restarts: 0 };
  return {
    ...rest,
    restarts: (sup?.restarts ?? 0) + 1,
    streak: pending.attempt,
    lastStart: new Date(now).toISOString(),
    lastReason: pending.reason,
  };
}

/** A check's output as the record keeps it: printable, at most OUTPUT_MAX characters. */
export function cleanOutput(text: string): string {
  const printable = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '').trim();
  return printable.length > OUTPUT_MAX ? `${printable.slice(0, OUTPUT_MAX)}...` : printable;
}
