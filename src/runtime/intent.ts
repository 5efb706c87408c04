// Intents: what a jailyard process is about to do that the store cannot show until it is
// done. `create` makes a record, a folder and a seeded tree; `upgrade` renames files in a
// jail's tree, pins the new version, then records the new `skeleton` parameter. The intent is
// saved before the first change and dropped after the last, so a process killed in between
// leaves a file saying what to finish or undo; `reconcile` does that for an owner that is
// gone (a live owner is left alone) and removes the folders of jails the store no longer has.
//
// One file per intent in <state>/intents/: a JSON header line, then one line per change made
// (appended before the change is made, so every change that may have happened is listed).

import {
  appendFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { JailyardError, describeError } from '../errors.ts';
import type { Driver } from '../platform/driver.ts';
import type { JournalOp } from '../skeleton/merge.ts';
import type { MountPlan } from '../skeleton/plan.ts';
import { writePinned, type PinnedSkeleton } from '../skeleton/hooks.ts';
import type { Store } from '../store/types.ts';
import { jailsDir, skeletonPinFile } from '../layout.ts';
import { ownerAlive, selfOwner, type Owner } from './owner.ts';

export interface CreateIntent {
  kind: 'create';
  jail: string;
  owner: Owner;
}

export interface UpgradeIntent {
  kind: 'upgrade';
  jail: string;
  owner: Owner;
  /** The jail's `skeleton` parameter before and after: the store's value is the commit. */
  paramBefore: string;
  paramAfter: string;
  /** The pin (skeleton.json) before, put back when the upgrade is undone. */
  pinBefore: PinnedSkeleton | null;
}

export type Intent = CreateIntent | UpgradeIntent;
type IntentInput = Omit<CreateIntent, 'owner'> | Omit<UpgradeIntent, 'owner'>;

const intentsDir = (stateDir: string): string => join(stateDir, 'intents');

function intentFile(stateDir: string, kind: Intent['kind'], jail: string): string {
  return join(intentsDir(stateDir), `${kind}-${encodeURIComponent(jail)}.jsonl`);
}

/** An intent being carried out by this process. */
export interface OpenIntent {
  readonly file: string;
  /** Lists a change before it is made. */
  record(op: JournalOp): void;
  /** Done: the stage folders it listed are removed, then the intent. */
  finish(): void;
  /** Undoes every listed change that happened (newest first), then drops the intent. */
  rollBack(stateDir: string): void;
}

/**
 * Saves the intent: a temp file, then linked to its name (never half a header; of two
 * processes at the same jail, one gets it). One that is already there is refused: another
 * process is at it, or a crashed one left it for `reconcile`.
 */
export function saveIntent(stateDir: string, input: IntentInput): OpenIntent {
  mkdirSync(intentsDir(stateDir), { recursive: true, mode: 0o700 });
  const file = intentFile(stateDir, input.kind, input.jail);
  const header = { ...input, owner: selfOwner() } as Intent;
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(header)}\n`, { mode: 0o600 });
  try {
    linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const other = readIntent(file)?.header.owner;
    throw new JailyardError(
      'JY_ERR_INVALID_TRANSITION',
      other && ownerAlive(other)
        ? `another jailyard process (pid ${other.pid}) is at its ${input.kind}`
        : `an earlier ${input.kind} of it was interrupted: run jailyard reconcile first`,
      { jail: input.jail },
    );
  } finally {
    rmSync(tmp, { force: true });
  }
  return {
    file,
    record: (op) => appendFileSync(file, `${JSON.stringify(op)}\n`),
    finish: () => {
      removeStages(readIntent(file)?.ops ?? []);
      rmSync(file, { force: true });
    },
    rollBack: (dir) => {
      const read = readIntent(file);
      if (read) undoIntent(dir, read.header, read.ops);
      rmSync(file, { force: true });
    },
  };
}

/** Drops this process's intent (the operation finished, or failed having undone itself). */
export function dropIntent(stateDir: string, kind: Intent['kind'], jail: string): void {
  rmSync(intentFile(stateDir, kind, jail), { force: true });
}

function readIntent(file: string): { header: Intent; ops: JournalOp[] } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n').filter(Boolean);
  const parsed: unknown[] = [];
  for (const line of lines) {
    try {
      parsed.push(JSON.parse(line));
    } catch {
      break; // a line cut short: nothing after it was written either
    }
  }
  const [header, ...ops] = parsed;
  return header ? { header: header as Intent, ops: ops as JournalOp[] } : undefined;
}

function lexists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Newest first; each change is undone only if it happened (so undoing twice is harmless). */
function undoOps(ops: JournalOp[]): void {
  for (const op of [...ops].reverse()) {
    if (op.op === 'rename') {
      if (!lexists(op.from) && lexists(op.to)) renameSync(op.to, op.from);
    } else if (op.op === 'mkdir') {
      try {
        if (lstatSync(op.path).isDirectory() && readdirSync(op.path).length === 0) rmdirSync(op.path);
      } catch {
        // never made
      }
    }
  }
}

function removeStages(ops: JournalOp[]): void {
  for (const op of ops) if (op.op === 'stage') rmSync(op.path, { recursive: true, force: true });
}

function undoIntent(stateDir: string, header: Intent, ops: JournalOp[]): void {
  undoOps(ops);
  removeStages(ops);
  if (header.kind === 'upgrade') {
    if (header.pinBefore) writePinned(stateDir, header.jail, header.pinBefore);
    else rmSync(skeletonPinFile(stateDir, header.jail), { force: true });
  }
}

/** Refuses to start a jail whose create or upgrade did not finish (reconcile first). */
export function refuseUnfinished(stateDir: string, jail: string): void {
  for (const kind of ['create', 'upgrade'] as const) {
    const read = existsSync(intentFile(stateDir, kind, jail))
      ? readIntent(intentFile(stateDir, kind, jail))
      : undefined;
    if (!read || read.header.owner.pid === process.pid) continue;
    const why = ownerAlive(read.header.owner)
      ? `another jailyard process (pid ${read.header.owner.pid}) is at its ${kind}`
      : `its ${kind} was interrupted: run jailyard reconcile`;
    throw new JailyardError('JY_ERR_INVALID_TRANSITION', `cannot start: ${why}`, { jail });
  }
}

export interface IntentReport {
  /** What was finished or undone, one line each ("create of web1 undone"). */
  undone: string[];
  /** Jails whose intent belongs to a live process. */
  busy: string[];
  failed: { jail: string; message: string }[];
}

/**
 * Finishes or undoes the intents of processes that are gone: a create is undone (the record,
 * then the folder); an upgrade whose new `skeleton` parameter is in the store is finished
 * (its backups removed), else undone (renames reversed, the old pin put back).
 */
export async function recoverIntents(opts: {
  store: Store;
  stateDir: string;
  dryRun?: boolean;
  /** Mounts a jail's views again for an upgrade made in them (a `views` op: copy-on-write
   * dirs, a disk image), after unmounting what the crashed process left of them; returns
   * the unmount. Without it such an intent is reported failed and kept. */
  views?: (jail: string, plan: MountPlan) => Promise<() => Promise<void>>;
}): Promise<IntentReport> {
  const { store, stateDir } = opts;
  const report: IntentReport = { undone: [], busy: [], failed: [] };
  let names: string[];
  try {
    names = readdirSync(intentsDir(stateDir)).filter((n) => n.endsWith('.jsonl'));
  } catch {
    return report;
  }
  for (const n of names.sort()) {
    const file = join(intentsDir(stateDir), n);
    const read = readIntent(file);
    if (!read) {
      if (!opts.dryRun) rmSync(file, { force: true });
      continue;
    }
    const { header, ops } = read;
    if (ownerAlive(header.owner)) {
      report.busy.push(header.jail);
      continue;
    }
    try {
      const record = store.getJail(header.jail);
      if (header.kind === 'create') {
        if (record && record.state !== 'stopped')
          throw new JailyardError(
            'JY_ERR_INVALID_TRANSITION',
            `its create was interrupted but it is ${record.state}: stop it, then run jailyard reconcile again`,
            { jail: header.jail },
          );
        // the folder goes with the other folders no record accounts for (sweepJailFolders)
        if (!opts.dryRun && record) store.removeJail(header.jail);
        report.undone.push(`create of ${header.jail} undone`);
      } else {
        const finished = record?.params.skeleton === header.paramAfter;
        if (!opts.dryRun) {
          // changes made in mounted views are reached through the same views only
          const plan = ops.find((op) => op.op === 'views')?.plan;
          if (plan && !opts.views)
            throw new JailyardError(
              'JY_ERR_PLATFORM',
              'its upgrade was made in mounted copy-on-write dirs or a disk image: reconcile needs the platform driver to mount them again',
              { jail: header.jail },
            );
          const unmount = plan && opts.views ? await opts.views(header.jail, plan) : undefined;
          try {
            if (finished) removeStages(ops);
            else undoIntent(stateDir, header, ops);
          } finally {
            await unmount?.();
          }
        }
        report.undone.push(
          finished
            ? `upgrade of ${header.jail} to ${header.paramAfter} finished`
            : `upgrade of ${header.jail} undone (${header.paramBefore} kept)`,
        );
      }
      if (!opts.dryRun) rmSync(file, { force: true });
    } catch (e) {
      report.failed.push({
        jail: header.jail,
        message: describeError(e),
      });
    }
  }
  return report;
}

/**
 * Removes the folders in <state>/jails/ of jails the store does not have (a remove killed
 * after it dropped the record, an undone create) and what the driver holds for them, unless something is still mounted below
 * one (the mount sweep comes first) or a live process is creating that jail.
 */
export async function sweepJailFolders(opts: {
  store: Store;
  driver: Pick<Driver, 'mountsBelow' | 'forget'>;
  stateDir: string;
  busy: readonly string[];
  dryRun?: boolean;
}): Promise<{ removed: string[]; failed: { jail: string; message: string }[] }> {
  const out: { removed: string[]; failed: { jail: string; message: string }[] } = { removed: [], failed: [] };
  const root = jailsDir(opts.stateDir);
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return out;
  }
  for (const name of entries.sort()) {
    if (opts.store.getJail(name) || opts.busy.includes(name)) continue;
    const dir = join(root, name);
    const mounted = opts.driver.mountsBelow(dir);
    if (mounted.length) {
      out.failed.push({
        jail: name,
        message: `its folder ${dir} is left: still mounted below it: ${mounted.join(', ')}`,
      });
      continue;
    }
    if (!opts.dryRun) {
      rmSync(dir, { recursive: true, force: true });
      // what the host holds for it outside the folder (a remove killed before it gave it back)
      await opts.driver.forget?.(dir);
    }
    out.removed.push(dir);
  }
  return out;
}
