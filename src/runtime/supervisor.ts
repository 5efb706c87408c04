// The daemon's supervisor (`jailyard serve`, docs/health.md): runs the health checks of the
// running jails that have one and keeps their verdict in the store (so `ls`, the API record,
// the watch stream and the load balancer see it), and carries out restart.policy: a jail
// whose pid 1 is gone, whose last process ended (no persist), or that turned unhealthy is
// stopped through the lifecycle (the restart it is owed written in the same transaction as
// its stop's first step) and started again after its back-off. Every start and stop is the
// lifecycle's own (lifecycle.ts), step by recorded step, so `reconcile` works as for any.
//
// An operator's stop or start cancels a pending restart in the store (service.ts stop, the
// transitions' rules in JailSupervision); the supervisor starts a jail only inside a
// transaction that still finds the very restart it was owed, so a `jailyard stop` is never
// undone.

import type { JailRecord, RestartReason, Store } from '../store/types.ts';
import { describeError, JailyardError } from '../errors.ts';
import { paramBool } from '../conf/spec.ts';
import { hasDied, reapDied, startJail, stopJail, type LifecycleDeps } from './lifecycle.ts';
import {
  afterCheck,
  healthSpecOf,
  pendingRestart,
  restartSpecOf,
  restartWanted,
  startedForRestart,
  type HealthSpec,
  type HealthState,
  type RestartSpec,
} from './supervision.ts';
import { runCheck } from './probes.ts';

export interface SupervisorOptions {
  store: Store;
  lifecycle: () => Promise<LifecycleDeps>;
  /** How often the jails are looked at (default 250 ms). */
  tickMs?: number;
  log?: (line: string) => void;
}

/** What the supervisor counted since it started (for /metrics). */
export interface SupervisorStats {
  checks: { ok: number; failed: number };
  restarts: Record<RestartReason, number>;
}

/** One life of a running jail: its pid 1 as recorded, and the checks of that life. */
interface Life {
  id: string;
  seen: number;
  health: HealthState;
  nextCheck: number;
  checking?: Promise<void>;
}

const lifeOf = (j: JailRecord): string | undefined => {
  const c = j.runtime?.create;
  return c ? `${c.initPid}:${c.startTime ?? ''}` : undefined;
};

function specs(j: JailRecord): { health: HealthSpec | undefined; restart: RestartSpec } | undefined {
  try {
    return { health: healthSpecOf(j.params, j.name), restart: restartSpecOf(j.params, j.name) };
  } catch {
    // parameters written before these checks existed: nothing is supervised
    return undefined;
  }
}

export class Supervisor {
  readonly #o: SupervisorOptions;
  readonly #lives = new Map<string, Life>();
  /** Jails the supervisor is stopping or starting (one action per jail at a time). */
  readonly #acting = new Map<string, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #closed = false;
  readonly stats: SupervisorStats = { checks: { ok: 0, failed: 0 }, restarts: { died: 0, exited: 0, unhealthy: 0 } };

  constructor(opts: SupervisorOptions) {
    this.#o = opts;
  }

  start(): void {
    const loop = (): void => {
      if (this.#closed) return;
      this.#ticking = this.tick()
        .catch((e) => this.#log(`supervisor: ${describeError(e)}`))
        .finally(() => {
          this.#ticking = undefined;
          if (!this.#closed) this.#timer = setTimeout(loop, this.#o.tickMs ?? 250);
        });
    };
    loop();
  }

  /** Stops looking; waits for the checks and the stops and starts under way. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#ticking;
    await Promise.allSettled([...this.#acting.values(), ...[...this.#lives.values()].map((l) => l.checking)]);
  }

  #log(line: string): void {
    this.#o.log?.(line);
  }

  /** One look at every jail. */
  async tick(now = Date.now()): Promise<void> {
    const { store } = this.#o;
    const jails = store.listJails();
    const names = new Set(jails.map((j) => j.name));
    for (const name of this.#lives.keys()) if (!names.has(name)) this.#lives.delete(name);
    for (const j of jails) {
      if (this.#closed) return;
      if (this.#acting.has(j.name)) continue;
      const s = specs(j);
      if (!s) continue;
      if (j.state === 'stopped' && j.supervision?.pending) {
        this.#lives.delete(j.name);
        if (Date.parse(j.supervision.pending.at) <= now) this.#act(j.name, () => this.#restart(j, s.restart));
        continue;
      }
      const life = lifeOf(j);
      if (j.state !== 'running' || !life) {
        this.#lives.delete(j.name);
        continue;
      }
      if (!s.health && s.restart.policy === 'no') continue;
      let l = this.#lives.get(j.name);
      if (!l || l.id !== life) {
        l = {
          id: life,
          seen: now,
          health: { status: 'starting', failingStreak: 0 },
          nextCheck: now + (s.health?.intervalMs ?? 0),
        };
        this.#lives.set(j.name, l);
        if (s.health) this.#writeHealth(j.name, life, l.health, undefined, now);
      }
      const deps = await this.#o.lifecycle();
      // pid 1 gone while the jail runs (killed, crashed): a failure
      if (!deps.driver.isAlive(j.runtime!.create!)) {
        if (restartWanted(s.restart.policy, 'died')) this.#act(j.name, () => this.#down(j, life, 'died', s.restart));
        continue;
      }
      // no persist and no process left: jail(8) removes it (reapDied writes the restart
      // restart.policy=always owes it)
      if (s.restart.policy !== 'no' && !paramBool(j.params, 'persist') && hasDied(deps, j, jails)) {
        this.#act(j.name, async () => {
          if ((await reapDied(deps, [j])).length) this.#log(`supervisor: ${j.name}: its last process ended`);
        });
        continue;
      }
      if (s.health && !l.checking && now >= l.nextCheck) this.#check(j, l, s.health, s.restart, deps);
    }
  }

  /** Runs `work` as the one action on `name` (errors are logged). */
  #act(name: string, work: () => Promise<void>): void {
    const p = work()
      .catch((e) => this.#log(`supervisor: ${name}: ${describeError(e)}`))
      .finally(() => this.#acting.delete(name));
    this.#acting.set(name, p);
  }

  #check(j: JailRecord, l: Life, spec: HealthSpec, restart: RestartSpec, deps: LifecycleDeps): void {
    const ctx = deps.contextFor(j);
    l.checking = (async () => {
      const r = await runCheck(deps.driver, ctx, j.runtime!.create!, spec);
      const done = Date.now();
      l.nextCheck = done + spec.intervalMs;
      if (r.ok) this.stats.checks.ok++;
      else this.stats.checks.failed++;
      if (this.#lives.get(j.name) !== l) return; // the jail stopped meanwhile
      const before = l.health;
      l.health = afterCheck(before, r.ok, spec, done - l.seen);
      if (
        l.health.status !== before.status ||
        (!r.ok && l.health.failingStreak !== before.failingStreak && l.health.failingStreak <= spec.retries)
      )
        this.#writeHealth(j.name, l.id, l.health, r.ok ? undefined : r.output, done);
      if (l.health.status === 'unhealthy' && restartWanted(restart.policy, 'unhealthy') && !this.#closed) {
        const now = this.#o.store.getJail(j.name);
        if (now && lifeOf(now) === l.id && now.state === 'running')
          this.#act(j.name, () => this.#down(now, l.id, 'unhealthy', restart));
      }
    })()
      .catch((e) => this.#log(`supervisor: ${j.name}: check: ${describeError(e)}`))
      .finally(() => {
        l.checking = undefined;
      });
  }

  /** Writes a health verdict, only while the jail still runs the life it was checked in. */
  #writeHealth(name: string, life: string, h: HealthState, output: string | undefined, at: number): void {
    const { store } = this.#o;
    if (!store.supervise) return;
    try {
      store.supervise(name, (cur) => {
        if (cur.state !== 'running' || lifeOf(cur) !== life) return undefined;
        const was = cur.supervision?.health;
        const since = was && was.status === h.status ? was.since : new Date(at).toISOString();
        return {
          ...(cur.supervision ?? { restarts: 0 }),
          health: { status: h.status, failingStreak: h.failingStreak, since, ...(output ? { output } : {}) },
        };
      });
    } catch (e) {
      this.#log(`supervisor: ${name}: health not recorded: ${describeError(e)}`);
    }
  }

  /** Stops a jail that died or turned unhealthy, writing the restart it is owed. */
  async #down(j: JailRecord, life: string, reason: RestartReason, spec: RestartSpec): Promise<void> {
    const { store } = this.#o;
    const deps = await this.#o.lifecycle();
    const seen = this.#lives.get(j.name)?.seen;
    const now = Date.now();
    this.#log(`supervisor: ${j.name}: ${reason === 'died' ? 'pid 1 is gone' : 'unhealthy'}; stopping it to restart it`);
    await stopJail(
      deps,
      j.name,
      () => {
        const cur = store.requireJail(j.name);
        if (lifeOf(cur) !== life)
          throw new JailyardError('JY_ERR_INVALID_TRANSITION', 'the jail changed meanwhile', { jail: j.name });
      },
      {
        ...(reason === 'died' ? { died: true } : {}),
        supervision: (cur) => ({ ...(cur ?? { restarts: 0 }), pending: pendingRestart(cur, reason, spec, now, seen) }),
      },
    );
    this.#lives.delete(j.name);
  }

  /** Starts a stopped jail whose restart is due, if the store still owes exactly that one. */
  async #restart(j: JailRecord, spec: RestartSpec): Promise<void> {
    const { store } = this.#o;
    const pending = j.supervision!.pending!;
    if (!restartWanted(spec.policy, pending.reason)) {
      // restart.policy changed meanwhile
      store.supervise?.(j.name, (cur) => {
        if (!cur.supervision?.pending) return undefined;
        const { pending: _p, ...rest } = cur.supervision;
        return rest;
      });
      return;
    }
    const deps = await this.#o.lifecycle();
    const now = Date.now();
    this.#log(
      `supervisor: ${j.name}: restart ${(j.supervision?.restarts ?? 0) + 1} (${pending.reason}, attempt ${pending.attempt})`,
    );
    try {
      await startJail(deps, j.name, undefined, {
        guard: (cur) => {
          if (cur.state !== 'stopped' || JSON.stringify(cur.supervision?.pending) !== JSON.stringify(pending))
            throw new JailyardError('JY_ERR_INVALID_TRANSITION', 'the restart was cancelled', { jail: j.name });
        },
        supervision: (cur) => startedForRestart(cur, pending, now),
        // a start that failed is owed the next restart, one step further in the back-off
        failed: (cur) => ({
          ...(cur ?? { restarts: 0 }),
          pending: pendingRestart(cur, pending.reason, spec, Date.now(), Date.now()),
        }),
      });
      this.stats.restarts[pending.reason]++;
    } catch (e) {
      if (e instanceof JailyardError && e.code === 'JY_ERR_INVALID_TRANSITION') return;
      throw e;
    }
  }
}
