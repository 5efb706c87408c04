// The kernel jail: made with only kernel parameters (`jail -i -c ... persist`), so jail(8)
// runs none of its own hooks or mounts; removed with -R after its processes had
// stop.timeout to go; changed in place with jail -m and rctl.

import { JailyardError } from '../../errors.ts';
import type { CreateFacts, Driver, JailContext, Limits } from '../driver.ts';
import { hasLimits, rctlSubject } from './commands.ts';
import { applyMeta } from './meta.ts';
import { createArgs } from './params.ts';
import { addRules, removeRules } from './rctl.ts';
import { type FreeBSDHost, jidOf, must, outputOf, SYSTEM } from './system.ts';
import { TOOLS } from './tools.ts';

export async function create(host: FreeBSDHost, ctx: JailContext, limits: Limits): Promise<CreateFacts> {
  const withLimits = hasLimits(limits);
  // rules first: a jail is charged from its first process on (rctl binds by name)
  if (withLimits) await addRules(host, ctx.name, limits, 'create');
  const argv = [TOOLS.jail, '-i', '-c', ...createArgs(ctx.spec, ctx.path)];
  const r = await host.runner.run(argv, SYSTEM);
  const jid = r.stdout.trim();
  if (r.code !== 0 || !/^\d+$/.test(jid)) {
    const err = new JailyardError('JY_ERR_STEP_FAILED', `jail -c failed (exit ${r.code}): ${outputOf(r)}`, {
      jail: ctx.name,
      step: 'create',
      output: outputOf(r),
    });
    if (withLimits) await removeRules(host, ctx.name, 'create').catch(() => undefined);
    throw err;
  }
  return { initPid: 0, nsIds: { jid, name: ctx.name }, cgroups: withLimits ? [rctlSubject(ctx.name)] : [] };
}

/** Whether the jid still names this jail (a jid is reused after the jail is gone). */
export function isAlive(host: FreeBSDHost, facts: CreateFacts): boolean {
  const jid = jidOf(facts);
  if (!jid) return false;
  const r = host.runner.runSync([TOOLS.jls, '-j', jid, 'name']);
  return r.code === 0 && r.stdout.trim() === facts.nsIds?.name;
}

export async function destroy(
  host: FreeBSDHost,
  ctx: JailContext,
  facts: CreateFacts,
  timeoutMs: number,
): Promise<void> {
  const jid = jidOf(facts);
  if (jid && isAlive(host, facts)) {
    // jail -r cannot take stop.timeout on its command line and would run /etc/jail.conf's
    // hooks for a jail of the same name: signal ourselves, then remove with -R (no config)
    await host.runner.run([TOOLS.pkill, '-TERM', '-j', jid], SYSTEM);
    const deadline = host.now() + timeoutMs;
    let left = true;
    for (;;) {
      const r = await host.runner.run([TOOLS.pgrep, '-j', jid], SYSTEM);
      left = r.code === 0;
      if (!left || host.now() >= deadline) break;
      await host.sleep(host.pollMs);
    }
    if (left) await host.runner.run([TOOLS.pkill, '-KILL', '-j', jid], SYSTEM);
    await must(host, [TOOLS.jail, '-R', ctx.name], 'JY_ERR_STEP_FAILED', `jail -R ${ctx.name}`, {
      jail: ctx.name,
      step: 'remove',
    });
  }
  await removeRules(host, ctx.name, 'remove');
}

export async function modify(
  host: FreeBSDHost,
  ctx: JailContext,
  changes: Parameters<Driver['modify']>[2],
): Promise<void> {
  if (changes.hostname !== undefined) {
    await must(
      host,
      [TOOLS.jail, '-m', `name=${ctx.name}`, `host.hostname=${changes.hostname}`],
      'JY_ERR_STEP_FAILED',
      'jail -m',
      { jail: ctx.name, step: 'modify' },
    );
  }
  if (changes.limits) {
    // the new set replaces the old one whole (rctl -a would keep a rule the new set drops)
    await removeRules(host, ctx.name, 'modify');
    if (hasLimits(changes.limits)) await addRules(host, ctx.name, changes.limits, 'modify');
  }
  if (changes.meta !== undefined || changes.env !== undefined) {
    await applyMeta(host, ctx, {
      ...(changes.meta !== undefined ? { meta: [{ op: 'replace', value: changes.meta }] } : {}),
      ...(changes.env !== undefined ? { env: [{ op: 'replace', value: changes.env }] } : {}),
    });
  }
}
