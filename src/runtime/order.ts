// `depend` ordering and the batch scheduler (jail(8)'s state.c): jails start after the jails
// they depend on and stop before them; independent jails run up to `parallel` at once; a
// failed jail marks everything that depends on it "skipped" and the rest carry on.

import { JailyardError, describeError } from '../errors.ts';
import type { JailOutcome } from './types.ts';

export interface DependGraph {
  /** name -> the names it depends on (only names inside the batch). */
  deps: Map<string, string[]>;
}

/** Builds the graph for a batch; dependencies outside the batch are ignored here. */
export function buildGraph(names: string[], dependsOf: (name: string) => string[]): DependGraph {
  const inBatch = new Set(names);
  const deps = new Map<string, string[]>();
  for (const n of names)
    deps.set(
      n,
      dependsOf(n).filter((d) => inBatch.has(d) && d !== n),
    );
  assertAcyclic(deps);
  return { deps };
}

function assertAcyclic(deps: Map<string, string[]>): void {
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (n: string, path: string[]): void => {
    const s = state.get(n);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(n)), n].join(' -> ');
      throw new JailyardError('JY_ERR_DEPEND', `dependency loop: ${cycle}`, { jail: n, param: 'depend' });
    }
    state.set(n, 'visiting');
    for (const d of deps.get(n) ?? []) visit(d, [...path, n]);
    state.set(n, 'done');
  };
  for (const n of deps.keys()) visit(n, []);
}

/** The transitive closure of `names` over `dependsOf` (start pulls in what a jail depends on). */
export function withDependencies(names: string[], dependsOf: (name: string) => string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (n: string): void => {
    if (seen.has(n)) return;
    seen.add(n);
    for (const d of dependsOf(n)) add(d);
    out.push(n);
  };
  for (const n of names) add(n);
  return out;
}

/** The outcome of a jail whose step threw `e`: the error's description and code. */
export function failedOutcome(name: string, e: unknown): JailOutcome {
  return {
    name,
    status: 'failed',
    message: describeError(e),
    ...(e instanceof JailyardError ? { code: e.code } : {}),
  };
}

/**
 * Runs `work` for every jail of the graph, respecting the order: for 'start' a jail waits for
 * the jails it depends on; for 'stop' it waits for the jails that depend on it. A jail whose
 * prerequisite failed is skipped, unless `doneAnyway(prerequisite)` says the failure left it
 * where the batch needed it all the same (a stop that failed in an exec.* command only: the
 * jail is stopped, and the jail that waited for it may go on). Returns one outcome per jail,
 * in the order given.
 */
export async function runBatch(
  names: string[],
  graph: DependGraph,
  direction: 'start' | 'stop',
  parallel: number,
  work: (name: string) => Promise<void>,
  signal?: AbortSignal,
  doneAnyway?: (name: string) => boolean,
): Promise<JailOutcome[]> {
  // waitsFor: the jails that must have finished before this one may run
  const waitsFor = new Map<string, string[]>();
  for (const n of names) waitsFor.set(n, []);
  for (const [n, ds] of graph.deps) {
    for (const d of ds) {
      if (direction === 'start') waitsFor.get(n)!.push(d);
      else waitsFor.get(d)!.push(n);
    }
  }
  const outcome = new Map<string, JailOutcome>();
  const running = new Set<string>();
  const limit = Math.max(1, parallel);

  return await new Promise<JailOutcome[]>((resolve) => {
    const pump = (): void => {
      // anything whose prerequisite failed or was skipped is skipped
      let changed = true;
      while (changed) {
        changed = false;
        for (const n of names) {
          if (outcome.has(n) || running.has(n)) continue;
          const bad = waitsFor.get(n)!.find((d) => {
            const o = outcome.get(d);
            return o !== undefined && o.status !== 'ok' && !(o.status === 'failed' && doneAnyway?.(d));
          });
          if (bad !== undefined) {
            outcome.set(n, {
              name: n,
              status: 'skipped',
              message: `skipped: ${bad} ${outcome.get(bad)!.status === 'failed' ? 'failed' : 'was skipped'}`,
            });
            changed = true;
          }
        }
      }
      // interrupted: nothing new begins
      if (signal?.aborted)
        for (const n of names)
          if (!outcome.has(n) && !running.has(n))
            outcome.set(n, { name: n, status: 'skipped', message: `skipped: interrupted by ${String(signal.reason)}` });
      for (const n of names) {
        if (running.size >= limit) break;
        if (outcome.has(n) || running.has(n)) continue;
        // every prerequisite finished (one that failed, and was not done anyway, skipped n above)
        if (!waitsFor.get(n)!.every((d) => outcome.has(d))) continue;
        running.add(n);
        work(n).then(
          () => finish(n, { name: n, status: 'ok' }),
          (e: unknown) => finish(n, failedOutcome(n, e)),
        );
      }
      if (outcome.size === names.length) resolve(names.map((n) => outcome.get(n)!));
    };
    const finish = (n: string, o: JailOutcome): void => {
      running.delete(n);
      outcome.set(n, o);
      pump();
    };
    pump();
  });
}
