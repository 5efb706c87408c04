// The FreeBSD driver: jail(8) / jls / jexec / ifconfig / mount_nullfs / rctl behind the
// Driver interface. The runtime owns the order of the steps, so the kernel jail is made with
// only kernel parameters (`jail -c ... persist`): jail(8) runs none of its own hooks or mounts.
// The jail's identity is its jid (CreateFacts.nsIds.jid) plus its name; there is no init pid.

import { JailyardError } from '../../errors.ts';
import type { MetaOp } from '../../meta/ops.ts';
import type {
  CreateFacts,
  Driver,
  ExecOptions,
  ExecResult,
  JailContext,
  Leftovers,
  Limits,
  NetworkFacts,
} from '../driver.ts';
import { hasLimits, ifconfigArgv, rctlRules, rctlSubject, umountArgv } from './commands.ts';
import { executePlan, undoPlan } from './mounts.ts';
import { createArgs, formatAddress, metaArgs, parseAddress, specAddresses } from './params.ts';
import { parseJlsJson, parseMountP, parseRctl, type JlsJail } from './parse.ts';
import { createExecRunner, type CommandRunner, type RunOptions } from './runner.ts';
import { HOST_PATH, TOOLS } from './tools.ts';

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
/** System tools run with a fixed PATH and nothing else of our environment. */
const SYSTEM: RunOptions = { env: { PATH: HOST_PATH } };

function outputOf(r: ExecResult): string {
  return (r.stderr || r.stdout).trim();
}

function jidOf(facts: CreateFacts): string | undefined {
  return facts.nsIds?.jid;
}

export function createFreeBSDDriver(opts: FreeBSDDriverOptions = {}): FreeBSDDriver {
  const runner = opts.runner ?? createExecRunner();
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = opts.now ?? Date.now;
  const getuid = opts.getuid ?? (() => process.getuid?.() ?? -1);
  const pollMs = opts.pollMs ?? 100;
  const isOwnJail = opts.isOwnJail ?? (() => false);
  const stateRoot = opts.stateRoot?.replace(/\/+$/, '');
  const isOwnMount =
    opts.isOwnMount ?? ((t: string) => stateRoot !== undefined && (t === stateRoot || t.startsWith(`${stateRoot}/`)));

  /** Runs a command that must succeed; failure is `code` naming the jail and step. */
  const must = async (
    argv: string[],
    code: 'JY_ERR_STEP_FAILED' | 'JY_ERR_PLATFORM' | 'JY_ERR_MOUNT',
    what: string,
    place: { jail?: string; step: string },
  ): Promise<ExecResult> => {
    const r = await runner.run(argv, SYSTEM);
    if (r.code !== 0)
      throw new JailyardError(code, `${what} failed (exit ${r.code}): ${outputOf(r)}`, {
        ...place,
        output: outputOf(r),
      });
    return r;
  };

  /**
   * `rctl -r jail:NAME`, idempotent: "no such rule" (ESRCH) and a kernel without RACCT (then
   * there can be no rules) are success. Run on every destroy, since limits added later by
   * modify are not in the facts the store holds.
   */
  const removeRules = async (jail: string, step: string): Promise<void> => {
    const r = await runner.run([TOOLS.rctl, '-r', rctlSubject(jail)], SYSTEM);
    if (r.code !== 0 && !/no such process|RACCT\/RCTL/i.test(r.stderr)) {
      throw new JailyardError('JY_ERR_STEP_FAILED', `removing the resource limits failed: ${outputOf(r)}`, {
        jail,
        step,
        output: outputOf(r),
      });
    }
  };

  const addRules = async (jail: string, limits: Limits, step: string): Promise<void> => {
    const racct = await runner.run([TOOLS.sysctl, '-n', 'kern.racct.enable'], SYSTEM);
    if (racct.code !== 0 || racct.stdout.trim() !== '1') {
      throw new JailyardError(
        'JY_ERR_PLATFORM',
        'resource limits need RACCT: set kern.racct.enable=1 in /boot/loader.conf and reboot',
        { jail, step, param: 'limits', output: outputOf(racct) },
      );
    }
    for (const rule of rctlRules(jail, limits)) {
      await must([TOOLS.rctl, '-a', rule], 'JY_ERR_STEP_FAILED', `rctl -a ${rule}`, { jail, step });
    }
  };

  const hostEnv = (ctx: JailContext, extra?: Record<string, string>): Record<string, string> => ({
    PATH: HOST_PATH,
    JID: String(ctx.jid),
    JNAME: ctx.name,
    JPATH: ctx.path,
    ...extra,
  });

  const runOptions = (o: ExecOptions | undefined, env: Record<string, string>): RunOptions => ({
    env,
    ...(o?.stdio ? { stdio: o.stdio } : {}),
    ...(o?.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
    ...(o?.consoleLog ? { consoleLog: o.consoleLog } : {}),
  });

  const jls = async (args: string[]): Promise<JlsJail[]> => {
    const r = await runner.run([TOOLS.jls, '--libxo', 'json', ...args], SYSTEM);
    if (r.code !== 0)
      throw new JailyardError('JY_ERR_PLATFORM', `jls ${args.join(' ')} failed: ${outputOf(r)}`, {
        step: 'jls',
        output: outputOf(r),
      });
    return parseJlsJson(r.stdout);
  };

  const isAlive = (facts: CreateFacts): boolean => {
    const jid = jidOf(facts);
    if (!jid) return false;
    const r = runner.runSync([TOOLS.jls, '-j', jid, 'name']);
    return r.code === 0 && r.stdout.trim() === facts.nsIds?.name;
  };

  const driver: FreeBSDDriver = {
    platform: 'freebsd',

    async preflight() {
      const r = await runner.run([TOOLS.uname, '-s'], SYSTEM);
      if (r.code !== 0 || r.stdout.trim() !== 'FreeBSD') {
        throw new JailyardError(
          'JY_ERR_PLATFORM',
          `the FreeBSD driver needs FreeBSD (uname -s: ${r.stdout.trim() || outputOf(r)})`,
          { step: 'preflight' },
        );
      }
      if (getuid() !== 0)
        throw new JailyardError('JY_ERR_NOT_ROOT', 'jail(8), mount and ifconfig need root', { step: 'preflight' });
    },

    async setupNetwork(ctx) {
      const facts: NetworkFacts = { addresses: [] };
      for (const a of specAddresses(ctx.spec)) {
        if (!a.iface) continue; // no interface: the address must already exist on the host (jail(8) too)
        const r = await runner.run(ifconfigArgv({ ...a, iface: a.iface }, false), SYSTEM);
        if (r.code !== 0) {
          const err = new JailyardError('JY_ERR_ADDRESS', `adding ${a.addr} to ${a.iface} failed: ${outputOf(r)}`, {
            jail: ctx.name,
            step: 'addresses',
            param: a.family === 'inet' ? 'ip4.addr' : 'ip6.addr',
            output: outputOf(r),
          });
          try {
            await driver.teardownNetwork(ctx, facts);
          } catch (u) {
            err.message += `; removing the addresses added before failed too: ${(u as Error).message}`;
          }
          throw err;
        }
        facts.addresses.push(formatAddress(a));
      }
      return facts;
    },

    async teardownNetwork(ctx, facts) {
      const failed: string[] = [];
      for (const entry of [...facts.addresses].reverse()) {
        const a = parseAddress(entry, entry.split(' ')[0]!.includes(':') ? 'inet6' : 'inet');
        if (!a.iface) continue;
        const r = await runner.run(ifconfigArgv({ ...a, iface: a.iface }, true), SYSTEM);
        // an alias already gone is what we wanted (EADDRNOTAVAIL: "Can't assign requested address")
        if (r.code !== 0 && !/can't assign requested address/i.test(r.stderr)) failed.push(`${entry}: ${outputOf(r)}`);
      }
      if (failed.length)
        throw new JailyardError('JY_ERR_ADDRESS', `removing addresses failed: ${failed.join('; ')}`, {
          jail: ctx.name,
          step: 'addresses.remove',
        });
    },

    async mount(ctx, plan) {
      const ruleset = ctx.spec.params.devfs_ruleset;
      return executePlan(
        runner,
        ctx,
        plan,
        ruleset === undefined || ruleset === '' ? DEFAULT_DEVFS_RULESET : String(ruleset),
      );
    },

    async unmount(ctx, facts) {
      await undoPlan(runner, ctx, facts);
    },

    async create(ctx, _net, limits) {
      const withLimits = hasLimits(limits);
      // rules first: a jail is charged from its first process on (rctl binds by name)
      if (withLimits) await addRules(ctx.name, limits, 'create');
      const argv = [TOOLS.jail, '-i', '-c', ...createArgs(ctx.spec, ctx.path)];
      const r = await runner.run(argv, SYSTEM);
      const jid = r.stdout.trim();
      if (r.code !== 0 || !/^\d+$/.test(jid)) {
        const err = new JailyardError('JY_ERR_STEP_FAILED', `jail -c failed (exit ${r.code}): ${outputOf(r)}`, {
          jail: ctx.name,
          step: 'create',
          output: outputOf(r),
        });
        if (withLimits) await removeRules(ctx.name, 'create').catch(() => undefined);
        throw err;
      }
      return { initPid: 0, nsIds: { jid, name: ctx.name }, cgroups: withLimits ? [rctlSubject(ctx.name)] : [] };
    },

    async destroy(ctx, facts, timeoutMs) {
      const jid = jidOf(facts);
      if (jid && isAlive(facts)) {
        // jail -r cannot take stop.timeout on its command line and would run /etc/jail.conf's
        // hooks for a jail of the same name: signal ourselves, then remove with -R (no config)
        await runner.run([TOOLS.pkill, '-TERM', '-j', jid], SYSTEM);
        const deadline = now() + timeoutMs;
        let left = true;
        for (;;) {
          const r = await runner.run([TOOLS.pgrep, '-j', jid], SYSTEM);
          left = r.code === 0;
          if (!left || now() >= deadline) break;
          await sleep(pollMs);
        }
        if (left) await runner.run([TOOLS.pkill, '-KILL', '-j', jid], SYSTEM);
        await must([TOOLS.jail, '-R', ctx.name], 'JY_ERR_STEP_FAILED', `jail -R ${ctx.name}`, {
          jail: ctx.name,
          step: 'remove',
        });
      }
      await removeRules(ctx.name, 'remove');
    },

    isAlive,

    async modify(ctx, _facts, changes) {
      if (changes.hostname !== undefined) {
        await must(
          [TOOLS.jail, '-m', `name=${ctx.name}`, `host.hostname=${changes.hostname}`],
          'JY_ERR_STEP_FAILED',
          'jail -m',
          { jail: ctx.name, step: 'modify' },
        );
      }
      if (changes.limits) {
        // the new set replaces the old one whole (rctl -a would keep a rule the new set drops)
        await removeRules(ctx.name, 'modify');
        if (hasLimits(changes.limits)) await addRules(ctx.name, changes.limits, 'modify');
      }
      if (changes.meta !== undefined || changes.env !== undefined) {
        await this.applyMeta(ctx, {
          ...(changes.meta !== undefined ? { meta: [{ op: 'replace', value: changes.meta }] } : {}),
          ...(changes.env !== undefined ? { env: [{ op: 'replace', value: changes.env }] } : {}),
        });
      }
    },

    async runHost(ctx, command, o) {
      const argv = o?.user ? [TOOLS.su, '-m', o.user, '-c', command] : [TOOLS.sh, '-c', command];
      const env = hostEnv(ctx, { ...(o?.user ? { SHELL: TOOLS.sh } : {}), ...o?.env });
      return runner.run(argv, { ...runOptions(o, env), ...(o?.cwd ? { cwd: o.cwd } : {}) });
    },

    async runInJail(ctx, _facts, argv, o) {
      // jexec -l: a clean login environment inside; env(1) then adds the jail variables
      const vars = Object.entries({ JID: String(ctx.jid), JNAME: ctx.name, JPATH: ctx.path, ...o?.env }).map(
        ([k, v]) => `${k}=${v}`,
      );
      // a fixed script with the directory as an argument: nothing from input is parsed by sh
      const cwd = o?.cwd ? [TOOLS.sh, '-c', 'cd -- "$1" || exit 125; shift; exec "$@"', 'jailyard-cwd', o.cwd] : [];
      const full = [
        TOOLS.jexec,
        '-l',
        ...(o?.user ? ['-U', o.user] : []),
        ctx.name,
        TOOLS.env,
        ...vars,
        ...cwd,
        ...argv,
      ];
      return runner.run(full, runOptions(o, { PATH: HOST_PATH }));
    },

    mountsBelow(dir) {
      const r = runner.runSync([TOOLS.mount, '-p']);
      if (r.code !== 0)
        throw new JailyardError('JY_ERR_PLATFORM', `mount -p failed: ${outputOf(r)}`, { output: outputOf(r) });
      const d = dir.replace(/\/+$/, '');
      return parseMountP(r.stdout)
        .map((e) => e.target)
        .filter((t) => t === d || t.startsWith(`${d}/`));
    },

    async scanLeftovers() {
      const found: Leftovers = { mounts: [], netns: [], links: [], cgroups: [], pids: [] };
      const m = await runner.run([TOOLS.mount, '-p'], SYSTEM);
      if (m.code !== 0)
        throw new JailyardError('JY_ERR_PLATFORM', `mount -p failed: ${outputOf(m)}`, {
          step: 'reconcile',
          output: outputOf(m),
        });
      // newest first, so removing them in this order unmounts stacked mounts top down
      found.mounts = parseMountP(m.stdout)
        .map((e) => e.target)
        .filter(isOwnMount)
        .reverse();
      found.pids = (await jls(['jid', 'name']))
        .filter((j) => j.name !== undefined && isOwnJail(j.name))
        .map((j) => j.jid);
      const rc = await runner.run([TOOLS.rctl], SYSTEM);
      // without RACCT rctl fails: then there are no rules to find
      if (rc.code === 0) {
        const subjects = parseRctl(rc.stdout)
          .filter((r) => r.subjectType === 'jail' && isOwnJail(r.subject))
          .map((r) => rctlSubject(r.subject));
        found.cgroups = [...new Set(subjects)];
      }
      return found;
    },

    // scanLeftovers reports only this state folder's jails, rules and mounts
    isOwnLeftover: () => true,

    async removeLeftover(kind, id) {
      switch (kind) {
        case 'mounts':
          await must(umountArgv(String(id)), 'JY_ERR_MOUNT', `umount ${id}`, { step: 'reconcile' });
          return;
        case 'pids':
          await must([TOOLS.jail, '-R', String(id)], 'JY_ERR_STEP_FAILED', `jail -R ${id}`, { step: 'reconcile' });
          return;
        case 'cgroups': {
          const r = await runner.run([TOOLS.rctl, '-r', String(id)], SYSTEM);
          if (r.code !== 0 && !/no such process/i.test(r.stderr))
            throw new JailyardError('JY_ERR_STEP_FAILED', `rctl -r ${id} failed: ${outputOf(r)}`, {
              step: 'reconcile',
              output: outputOf(r),
            });
          return;
        }
        default:
          throw new JailyardError('JY_ERR_USAGE', `FreeBSD has no leftovers of kind ${kind}`, { step: 'reconcile' });
      }
    },

    async applyMeta(ctx, ops) {
      const args = [...metaArgs('meta', ops.meta ?? [], ctx.name), ...metaArgs('env', ops.env ?? [], ctx.name)];
      if (args.length === 0) return;
      const r = await runner.run([TOOLS.jail, '-m', `name=${ctx.name}`, ...args], SYSTEM);
      if (r.code !== 0) {
        const code = /too large/i.test(r.stderr) ? 'JY_ERR_META_TOO_LARGE' : 'JY_ERR_STEP_FAILED';
        throw new JailyardError(code, `jail -m meta/env failed: ${outputOf(r)}`, {
          jail: ctx.name,
          step: 'modify',
          output: outputOf(r),
        });
      }
    },

    async readMeta(name) {
      const [j] = await jls(['-j', name, 'meta', 'env']);
      if (!j) throw new JailyardError('JY_ERR_JAIL_NOT_FOUND', `jail ${name} is not running`, { jail: name });
      const str = (v: string | string[] | undefined): string => (Array.isArray(v) ? v.join(',') : (v ?? ''));
      return { meta: str(j.params.meta), env: str(j.params.env) };
    },

    async listJails() {
      return jls(['jid', 'name', 'path', 'host.hostname']);
    },
  };
  return driver;
}
