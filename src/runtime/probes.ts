// One health check of a running jail (docs/health.md). health.cmd runs inside the jail the
// way exec.start does (the driver's runInJail: its namespaces, cgroups, filter, dropped
// capabilities, exec.jail_user), its output going to a bounded log in the jail's host-only
// state folder (health.log, rotated like the console log), never into the daemon's memory.
// health.http is a GET from the host to one of the jail's own addresses: the answer is the
// jail's, so it is read with a deadline, at most READ_MAX bytes, no redirect followed.

import { request } from 'node:http';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { paramString } from '../conf/spec.ts';
import { describeError } from '../errors.ts';
import type { CreateFacts, Driver, JailContext } from '../platform/driver.ts';
import { cleanOutput, probeTarget, type HealthSpec } from './supervision.ts';

export interface CheckResult {
  ok: boolean;
  /** What the check said (bounded, printable). */
  output: string;
}

/** Bytes of an HTTP answer read at most (the status line and headers are Node's own limit). */
const READ_MAX = 4096;

/** The health log of a jail: STATE/jails/NAME/health.log. */
export const healthLog = (ctx: JailContext): string => join(ctx.stateDir, 'health.log');

function tail(file: string, from: number): string {
  try {
    const all = readFileSync(file);
    const start = all.length < from ? 0 : from;
    return all.subarray(Math.max(start, all.length - 2048)).toString('utf8');
  } catch {
    return '';
  }
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

async function checkCmd(driver: Driver, ctx: JailContext, facts: CreateFacts, spec: HealthSpec): Promise<CheckResult> {
  const log = healthLog(ctx);
  const before = sizeOf(log);
  const user = paramString(ctx.spec.params, 'exec.jail_user');
  const r = await driver.runInJail(ctx, facts, ['/bin/sh', '-c', spec.cmd!], {
    consoleLog: log,
    timeoutMs: spec.timeoutMs,
    ...(user ? { user } : {}),
  });
  const said = cleanOutput(tail(log, before));
  if (r.code === 0) return { ok: true, output: said };
  const why = r.signal === 'SIGKILL' ? `timed out after ${spec.timeoutMs}ms` : `exited ${r.code}`;
  return { ok: false, output: cleanOutput(`${why}${said ? `: ${said}` : ''}`) };
}

function checkHttp(ctx: JailContext, spec: HealthSpec): Promise<CheckResult> {
  const target = probeTarget(spec.http!, ctx.spec.params, ctx.name);
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: CheckResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ ok: r.ok, output: cleanOutput(r.output) });
    };
    const req = request({
      host: target.host,
      port: target.port,
      path: target.path,
      method: 'GET',
      agent: false,
      headers: { 'user-agent': 'jailyard-health', connection: 'close' },
    });
    const timer = setTimeout(() => done({ ok: false, output: `no answer in ${spec.timeoutMs}ms` }), spec.timeoutMs);
    req.on('error', (e) => done({ ok: false, output: describeError(e) }));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const ok = status >= 200 && status < 400;
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (chunk: string) => {
        body += chunk;
        // enough said: the rest of a (perhaps endless) answer is not read
        if (body.length >= READ_MAX) done({ ok, output: `HTTP ${status}: ${body.slice(0, READ_MAX)}` });
      });
      res.on('end', () => done({ ok, output: `HTTP ${status}${body ? `: ${body}` : ''}` }));
      res.on('error', (e) => done({ ok: false, output: describeError(e) }));
    });
    req.end();
  });
}

/** Runs the jail's check once; never throws (a check that cannot run failed). */
export async function runCheck(
  driver: Driver,
  ctx: JailContext,
  facts: CreateFacts,
  spec: HealthSpec,
): Promise<CheckResult> {
  try {
    return spec.cmd !== undefined ? await checkCmd(driver, ctx, facts, spec) : await checkHttp(ctx, spec);
  } catch (e) {
    return { ok: false, output: cleanOutput(describeError(e)) };
  }
}
