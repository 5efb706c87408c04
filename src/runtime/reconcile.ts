// Crash recovery: compare the store with the system and undo what a crashed run left.
// 1. Jails the store says are starting/stopping (a process died mid-way), or running while
//    their pid 1 is gone: finish stopping them by walking their recorded steps backwards.
// 2. Things of jailyard's on the system that no running jail accounts for: this state
//    folder's own (its mounts, and the netns, links, cgroups and jail processes named with
//    its tag, which a run killed between making one and recording it leaves); with `all`,
//    those of any state folder too.

import type { Driver, Leftovers } from '../platform/driver.ts';
import type { MountPlan } from '../skeleton/plan.ts';
import type { Store } from '../store/types.ts';
import { describeError } from '../errors.ts';
import { ownerAlive } from './owner.ts';
import { recoverIntents, sweepJailFolders } from './intent.ts';
import { hasDied } from './lifecycle.ts';
import { mayHaveDied } from './params.ts';

export interface ReconcileReport {
  recovered: string[];
  /** Jails another live jailyard process is starting or stopping right now: left alone. */
  busy: string[];
  failed: { jail: string; message: string }[];
  removed: { kind: keyof Leftovers; id: string | number }[];
  /** Interrupted creates and upgrades finished or undone, folders of removed jails removed. */
  undone: string[];
}

export async function reconcile(opts: {
  store: Store;
  driver: Driver;
  stateDir: string;
  recover: (name: string) => Promise<unknown>;
  /** Mounts `plan` for a stopped jail (the service's mountTransient); returns the unmount.
   * Needed to undo or finish an upgrade made in mounted views (src/runtime/intent.ts). */
  mountTransient?: (name: string, plan: MountPlan) => Promise<() => Promise<void>>;
  all?: boolean;
  dryRun?: boolean;
}): Promise<ReconcileReport> {
  const { store, driver, stateDir } = opts;
  const report: ReconcileReport = { recovered: [], busy: [], failed: [], removed: [], undone: [] };
  for (const j of store.listJails()) {
    if ((j.state === 'starting' || j.state === 'stopping') && ownerAlive(j.runtime?.owner)) {
      report.busy.push(j.name);
      continue;
    }
    let needs = j.state === 'starting' || j.state === 'stopping';
    if (j.state === 'running' && (!j.runtime?.create || !driver.isAlive(j.runtime.create))) {
      needs = true;
      if (!opts.dryRun) store.transition(j.name, 'running', 'stopping', { lastError: 'pid 1 of the jail was gone' });
    } else if (mayHaveDied(j) && hasDied({ driver }, j, store.listJails())) {
      // no persist and no process left: it went away (jail(8)), without its exec.* commands
      needs = true;
      if (!opts.dryRun)
        store.transition(j.name, 'running', 'stopping', {
          runtime: { ...j.runtime!, died: true },
          lastError: null,
        });
    }
    if (!needs) continue;
    if (opts.dryRun) {
      report.recovered.push(j.name);
      continue;
    }
    try {
      await opts.recover(j.name);
      report.recovered.push(j.name);
    } catch (e) {
      report.failed.push({ jail: j.name, message: describeError(e) });
    }
  }

  // creates and upgrades a crashed process left half done (after the jails' own recovery:
  // an upgrade --restart killed during its stop has a stopping jail)
  const mountTransient = opts.mountTransient;
  const intents = await recoverIntents({
    store,
    stateDir,
    ...(opts.dryRun ? { dryRun: true } : {}),
    ...(mountTransient
      ? { views: (jail: string, plan: MountPlan) => remountViews(driver, stateDir, mountTransient, jail, plan) }
      : {}),
  });
  report.undone.push(...intents.undone);
  report.busy.push(...intents.busy);
  report.failed.push(...intents.failed);

  // what the stored jails still account for
  const known = {
    mounts: new Set<string>(),
    netns: new Set<string>(),
    links: new Set<string>(),
    cgroups: new Set<string>(),
    pids: new Set<number>(),
  };
  for (const j of store.listJails()) {
    const rt = j.runtime;
    if (!rt) continue;
    for (const m of rt.mounts?.mounted ?? []) known.mounts.add(m);
    if (rt.mounts) for (const m of rt.mounts.mounted) known.mounts.add(m);
    if (rt.network?.netns) known.netns.add(rt.network.netns);
    if (rt.network?.veth) known.links.add(rt.network.veth.host);
    for (const c of rt.create?.cgroups ?? []) known.cgroups.add(c);
    if (rt.create) {
      known.pids.add(rt.create.initPid);
      if (rt.create.holderPid) known.pids.add(rt.create.holderPid);
    }
  }
  const found = await driver.scanLeftovers();
  const here = (p: string) => p === stateDir || p.startsWith(`${stateDir}/`);
  // While another process is starting or stopping a jail, its newest objects may not be
  // recorded yet: the sweep by name waits for a later run (mounts are checked against the
  // recorded ones only, as before).
  // --all: also what no state folder on this host claims (a removed folder's, an older
  // jailyard's), never what carries the tag of another folder that is still there
  const ours = (kind: keyof Leftovers, id: string | number) =>
    report.busy.length === 0 &&
    (driver.isOwnLeftover(kind, id) || (!!opts.all && driver.otherStateOf?.(kind, id) === undefined));
  const todo: { kind: keyof Leftovers; id: string | number }[] = [];
  // processes first, then mounts (deepest first), then links, netns, cgroups
  for (const pid of found.pids) if (ours('pids', pid) && !known.pids.has(pid)) todo.push({ kind: 'pids', id: pid });
  for (const m of [...found.mounts].sort((a, b) => b.length - a.length)) {
    if (
      report.busy.length === 0 &&
      (here(m) || opts.all) &&
      !known.mounts.has(m) &&
      !isRootSelfBindOfKnown(m, known.mounts)
    )
      todo.push({ kind: 'mounts', id: m });
  }
  for (const l of found.links) if (ours('links', l) && !known.links.has(l)) todo.push({ kind: 'links', id: l });
  for (const n of found.netns) if (ours('netns', n) && !known.netns.has(n)) todo.push({ kind: 'netns', id: n });
  for (const c of found.cgroups) if (ours('cgroups', c) && !known.cgroups.has(c)) todo.push({ kind: 'cgroups', id: c });
  for (const t of todo) {
    if (!opts.dryRun) {
      try {
        await driver.removeLeftover(t.kind, t.id);
      } catch (e) {
        report.failed.push({ jail: '-', message: `${t.kind} ${t.id}: ${e instanceof Error ? e.message : String(e)}` });
        continue;
      }
    }
    report.removed.push(t);
  }
  // published ports (expose): the running jails' are restored (a firewall reload that
  // flushed the ruleset), those of no running jail removed (a start or stop killed between
  // its nft change and its record); while another process is between steps, nothing goes
  if (driver.syncPorts && !opts.dryRun) {
    const running = store
      .listJails()
      .flatMap((j) =>
        j.state !== 'stopped' && j.runtime?.ports?.ports.length ? [{ jail: j.name, facts: j.runtime.ports }] : [],
      );
    try {
      const synced = await driver.syncPorts(running, { keep: report.busy.length > 0, all: !!opts.all });
      report.undone.push(...synced.restored.map((p) => `published port ${p} restored`));
      report.undone.push(
        ...synced.removed.map((p) =>
          p.startsWith('table ') ? `published ports: ${p} removed` : `published port ${p} of no running jail removed`,
        ),
      );
    } catch (e) {
      report.failed.push({ jail: '-', message: `published ports: ${describeError(e)}` });
    }
  }
  // the folders of jails the store no longer has (after the mounts below them are gone)
  if (report.busy.length === 0) {
    const swept = await sweepJailFolders({
      store,
      driver,
      stateDir,
      busy: report.busy,
      ...(opts.dryRun ? { dryRun: true } : {}),
    });
    report.undone.push(...swept.removed.map((d) => `folder ${d} of a removed jail removed`));
    report.failed.push(...swept.failed);
  }
  return report;
}

/** A jail root's self-bind is not listed in its mounted targets but belongs to it. */
function isRootSelfBindOfKnown(m: string, known: Set<string>): boolean {
  for (const k of known) if (k.startsWith(`${m}/`)) return true;
  return false;
}

/**
 * The views of an upgrade a crashed process made (its copy-on-write dirs, its disk image),
 * mounted afresh: what that process left mounted for them goes first, deepest first (after
 * a reboot nothing is), since a second overlay on the same upper dir is refused: everything
 * at or below their targets, and the root's own mount when the root lies in the state
 * folder (the driver mounts a root there as an overlay of itself). The jail is stopped, so
 * nothing else of it is mounted. Returns the unmount.
 */
async function remountViews(
  driver: Driver,
  stateDir: string,
  mountTransient: (name: string, plan: MountPlan) => Promise<() => Promise<void>>,
  jail: string,
  plan: MountPlan,
): Promise<() => Promise<void>> {
  const targets = [...plan.mounts.map((m) => m.target), ...(plan.disk ? [plan.disk.target] : [])];
  if (plan.root.startsWith(`${stateDir}/`)) targets.push(plan.root);
  const under = (m: string) => targets.some((t) => m === t || m.startsWith(`${t}/`));
  const left = driver
    .mountsBelow(plan.root)
    .filter(under)
    .sort((a, b) => b.length - a.length);
  for (const m of left) await driver.removeLeftover('mounts', m);
  return mountTransient(jail, plan);
}
