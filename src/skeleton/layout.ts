// The small fs read the pure planner needs: what a skeleton's listed entries are.
import { AsyncLocalStorage } from 'node:async_hooks';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { lstatOrUndefined, splitRel } from './paths.ts';
import type { SkeletonLayout } from './planner.ts';

/** The layouts read inside a batch (withLayouts), in that batch's own async context only;
 * `open` false once the batch ended (a timer or child started in it keeps the context). */
const batches = new AsyncLocalStorage<{ memo: Map<string, SkeletonLayout>; open: boolean }>();

/**
 * Runs WORK as a batch in which readLayout reads each (root, lists) once: a batch of starts
 * (100 jails of one skeleton) plans every jail from one look at the skeleton, as if they all
 * started at the same moment, instead of lstat-ing the same entries for each jail. The looks
 * belong to WORK's async context: anything else the process does meanwhile (the daemon's
 * other requests, a skeleton changed and another jail started while a long batch runs)
 * looks again, and they are gone when WORK ends (also for what WORK left running: a timer
 * set in it carries its context). A batch inside a batch shares the outer one.
 */
export async function withLayouts<T>(work: () => Promise<T>): Promise<T> {
  if (batches.getStore()?.open) return work();
  const batch = { memo: new Map<string, SkeletonLayout>(), open: true };
  try {
    return await batches.run(batch, work);
  } finally {
    batch.open = false;
    batch.memo.clear();
  }
}

/**
 * lstat of `root`'s top entries and of every listed path and its ancestors (symlinks not
 * followed). Entries are relative paths as the lists name them. Inside withLayouts the same
 * (frozen) object answers again for the same root and lists.
 */
export function readLayout(root: string, lists: string[] = []): SkeletonLayout {
  const batch = batches.getStore();
  if (!batch?.open) return readLayoutNow(root, lists);
  const key = [root, ...lists].join('\0');
  let layout = batch.memo.get(key);
  if (!layout) batch.memo.set(key, (layout = Object.freeze(readLayoutNow(root, lists))));
  return layout;
}

function readLayoutNow(root: string, lists: string[]): SkeletonLayout {
  const wanted = new Set<string>(readdirSync(root));
  for (const entry of lists) {
    const parts = splitRel(entry);
    for (let i = 1; i <= parts.length; i++) wanted.add(parts.slice(0, i).join('/'));
  }
  const layout: SkeletonLayout = {};
  for (const rel of [...wanted].sort()) {
    if (rel.split('/').includes('..')) continue;
    const st = lstatOrUndefined(join(root, rel));
    if (!st) layout[rel] = { type: 'missing' };
    else if (st.isSymbolicLink()) layout[rel] = { type: 'symlink', target: readlinkSync(join(root, rel)) };
    else if (st.isDirectory()) layout[rel] = { type: 'dir' };
    else if (st.isFile()) layout[rel] = { type: 'file' };
    else layout[rel] = { type: 'other' };
  }
  return layout;
}
