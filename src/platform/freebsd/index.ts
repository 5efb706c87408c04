// The FreeBSD driver: jail(8) / jls / jexec / ifconfig / mount_nullfs / rctl behind the
// Driver interface. The runtime owns the order of the steps, so the kernel jail is made with
// only kernel parameters (`jail -c ... persist`): jail(8) runs none of its own hooks or mounts.
// The jail's identity is its jid (CreateFacts.nsIds.jid) plus its name; there is no init pid.
// One file per concern, as in ../linux: create.ts (the kernel jail), network.ts (addresses),
// mounts.ts, rctl.ts (limits), exec.ts, meta.ts, leftovers.ts; system.ts is what they share.

import { paramString } from '../../conf/spec.ts';
import { JailyardError } from '../../errors.ts';
import type { MetaOp } from '../../meta/ops.ts';
import type { Driver, JailContext } from '../driver.ts';
import * as jail from './create.ts';
import { runHost, runInJail } from './exec.ts';
import { mountsBelow, removeLeftover, scanLeftovers } from './leftovers.ts';
import { applyMeta, listJails, readMeta } from './meta.ts';
import { executePlan, undoPlan } from './mounts.ts';
import { setupNetwork, teardownNetwork } from './network.ts';
import type { JlsJail } from './parse.ts';
import { createExecRunner, type CommandRunner } from './runner.ts';
import { type FreeBSDHost, outputOf, SYSTEM } from './system.ts';
import { TOOLS } from './tools.ts';

export { createExecRunner, type CommandRunner, type RunOptions } from './runner.ts';
export { createFakeRunner, type FakeRunner, type ExpectedCall, type RecordedCall } from './fake-runner.ts';
export { parseJlsJson, parseMountP, parseRctl, type JlsJail, type MountEntry, type RctlRule } from './parse.ts';

export interface FreeBSDDriverOptions {
  /** Defaults to the real runner (execFile-style spawning of argument arrays). */
  runner?: CommandRunner;
  /** Mount targets jailyard owns (for scanLeftovers); default: below stateRoot, if given. */
  isOwnMount?: (target: string) => boolean;
  /** jailyard's state folder: mounts below it are jailyard's. */
  stateRoot?: string;
  /** Jail names jailyard made (e.g. known to the store); other jails are never touched. */
  isOwnJail?: (name: string) => boolean;
  /** How often destroy polls for processes left in the jail. */
  pollMs?: number;
  /** Injected in tests: waiting and the clock (destroy's stop.timeout). */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  getuid?: () => number;
}

/** FreeBSD-only operations beyond the Driver contract (jail -m meta/env, jls reads). */
export interface FreeBSDDriver extends Driver {
  readonly platform: 'freebsd';
  /** `jail -m name=J meta.k=v env=...`: FreeBSD 15's native meta/env, in the order given. */
  applyMeta(ctx: JailContext, ops: { meta?: MetaOp[]; env?: MetaOp[] }): Promise<void>;
  /** `jls --libxo json -j J meta env`. */
  readMeta(name: string): Promise<{ meta: string; env: string }>;
  /** `jls --libxo json jid name path host.hostname`: every jail on the host. */
  listJails(): Promise<JlsJail[]>;
}

const DEFAULT_DEVFS_RULESET = '4'; // devfsrules_jail, as jail(8)

function hostOf(opts: FreeBSDDriverOptions): FreeBSDHost {
  const stateRoot = opts.stateRoot?.replace(/\/+$/, '');
  return {
    runner: opts.runner ?? createExecRunner(),
    sleep: opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms))),
    now: opts.now ?? Date.now,
    getuid: opts.getuid ?? (() => process.getuid?.() ?? -1),
    pollMs: opts.pollMs ?? 100,
    isOwnJail: opts.isOwnJail ?? (() => false),
    isOwnMount:
      opts.isOwnMount ?? ((t: string) => stateRoot !== undefined && (t === stateRoot || t.startsWith(`${stateRoot}/`))),
  };
}

async function preflight(host: FreeBSDHost): Promise<void> {
  const r = await host.runner.run([TOOLS.uname, '-s'], SYSTEM);
  if (r.code !== 0 || r.stdout.trim() !== 'FreeBSD') {
    throw new JailyardError(
      'JY_ERR_PLATFORM',
      `the FreeBSD driver needs FreeBSD (uname -s: ${r.stdout.trim() || outputOf(r)})`,
      { step: 'preflight' },
    );
  }
  if (host.getuid() !== 0)
    throw new JailyardError('JY_ERR_NOT_ROOT', 'jail(8), mount and ifconfig need root', { step: 'preflight' });
}

export function createFreeBSDDriver(opts: FreeBSDDriverOptions = {}): FreeBSDDriver {
  const host = hostOf(opts);
  return {
    platform: 'freebsd',
    preflight: () => preflight(host),
    setupNetwork: (ctx) => setupNetwork(host, ctx),
    teardownNetwork: (ctx, facts) => teardownNetwork(host, ctx, facts),
    mount(ctx, plan) {
      return executePlan(
        host.runner,
        ctx,
        plan,
        paramString(ctx.spec.params, 'devfs_ruleset') || DEFAULT_DEVFS_RULESET,
      );
    },
    unmount: (ctx, facts) => undoPlan(host.runner, ctx, facts),
    create: (ctx, _net, limits) => jail.create(host, ctx, limits),
    destroy: (ctx, facts, timeoutMs) => jail.destroy(host, ctx, facts, timeoutMs),
    isAlive: (facts) => jail.isAlive(host, facts),
    modify: (ctx, _facts, changes) => jail.modify(host, ctx, changes),
    runHost: (ctx, command, o) => runHost(host, ctx, command, o),
    runInJail: (ctx, _facts, argv, o) => runInJail(host, ctx, argv, o),
    mountsBelow: (dir) => mountsBelow(host, dir),
    scanLeftovers: () => scanLeftovers(host),
    // scanLeftovers reports only this state folder's jails, rules and mounts
    isOwnLeftover: () => true,
    removeLeftover: (kind, id) => removeLeftover(host, kind, id),
    applyMeta: (ctx, ops) => applyMeta(host, ctx, ops),
    readMeta: (name) => readMeta(host, name),
    listJails: () => listJails(host),
  };
}
