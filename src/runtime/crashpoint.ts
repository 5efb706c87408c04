// Crash injection for the reliability suites (docs/reliability.md, test/cli/crash*.test.ts,
// test/api/crash-daemon.test.ts). Every place where a kill -9 could leave something half
// done calls crashPoint(NAME); with JAILYARD_CRASH_AT=NAME (or NAME@N: the N-th time it is
// reached, counted in this process) the process SIGKILLs itself there. Unset, a point costs
// one environment lookup. The names each operation declares are listed in CRASH_POINTS so the
// suites enumerate them instead of hard-coding them; a point used in the code but missing
// here fails the suites (the process is never killed there).

/** jail(8)'s start steps, as src/runtime/lifecycle.ts's LIFECYCLE runs them. */
export const START_STEPS = [
  'exec.prepare',
  'addresses',
  'ports',
  'mounts',
  'exec.prestart',
  'create',
  'exec.created',
  'exec.start',
  'exec.poststart',
] as const;

/** The stop steps in the order a stop runs them (LIFECYCLE's undo column, reversed). */
export const STOP_STEPS = [
  'exec.prestop',
  'exec.stop',
  'remove',
  'exec.poststop',
  'unmount',
  'ports.remove',
  'addresses.remove',
  'exec.release',
] as const;

const around = (steps: readonly string[]): string[] => steps.flatMap((s) => [`${s}:begin`, `${s}:done`]);

/**
 * The points each operation declares, in the order it reaches them. A lifecycle step has two:
 * `STEP:begin` before it acts, `STEP:done` after it acted and before it is recorded. An
 * operation that runs others (remove stops, restart stops and starts, upgrade --restart,
 * rollout creates, starts and removes jails, the daemon runs all of them) also reaches
 * their points.
 */
export const CRASH_POINTS = {
  start: around(START_STEPS),
  stop: around(STOP_STEPS),
  /** service.create: the intent is saved, then the record, the jail's folder, its seed. */
  create: ['jail.create:intent', 'jail.create:recorded', 'jail.create:folder', 'jail.create:seeded'],
  /** service.remove, after the stop: the record goes first, then the jail's folder. */
  remove: ['jail.remove:stopped', 'jail.remove:forgotten', 'jail.remove:done'],
  /** upgrade JAIL --to S@N (src/cli/commands/upgrade.ts, src/skeleton/hooks.ts upgradeJail). */
  upgrade: [
    'upgrade:stopped',
    'upgrade:intent',
    // copy-on-write dirs or a disk image listed as the views of the merge, not yet mounted
    'upgrade:views',
    // before each change to the jail's tree, once it is listed: reached once per change
    'upgrade:stage',
    'upgrade:mkdir',
    'upgrade:rename',
    'upgrade:pinned',
    'upgrade:recorded',
    'upgrade:done',
  ],
  /** rollout (src/lb/rollout.ts): each jail's phases, and the state file's writes. */
  rollout: [
    'rollout:saved',
    'rollout:create',
    'rollout:created',
    'rollout:start',
    'rollout:started',
    'rollout:healthy',
    'rollout:drain',
    'rollout:remove',
    'rollout:removed',
    'rollout:done',
  ],
  /** rollout --abort. */
  abort: ['abort:saved', 'abort:undrain', 'abort:start', 'abort:drain', 'abort:remove', 'abort:removed', 'abort:done'],
  /** The daemon's request handlers (src/api/routes/jails.ts): before and after the service. */
  api: ['api:received', 'api:answered'],
} as const satisfies Record<string, readonly string[]>;

export type CrashOperation = keyof typeof CRASH_POINTS;

const hits = new Map<string, number>();

/**
 * Kills this process with SIGKILL when JAILYARD_CRASH_AT names `point` (and, with `@N`, it
 * is reached for the N-th time). Nothing is flushed, nothing is cleaned: that is the point.
 */
export function crashPoint(point: string): void {
  const at = process.env.JAILYARD_CRASH_AT;
  if (!at) return;
  const sep = at.lastIndexOf('@');
  const name = sep > 0 ? at.slice(0, sep) : at;
  if (name !== point) return;
  const nth = sep > 0 ? Number(at.slice(sep + 1)) : 1;
  const seen = (hits.get(point) ?? 0) + 1;
  hits.set(point, seen);
  if (seen === nth) process.kill(process.pid, 'SIGKILL');
}
