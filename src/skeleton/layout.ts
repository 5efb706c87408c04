// The small fs read the pure planner needs: what a skeleton's listed entries are.
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { lstatOrUndefined, splitRel } from './paths.ts';
import type { SkeletonLayout } from './planner.ts';

/** Open batch scopes (layoutScope) and the layouts read while one is open. */
let scopes = 0;
const memo = new Map<string, SkeletonLayout>();

/**
 * Opens a scope in which readLayout reads each (root, lists) once: a batch of starts (100
 * jails of one skeleton) plans every jail from one look at the skeleton, as if they all
 * started at the same moment, instead of lstat-ing the same entries for each jail. The
 * layouts are dropped when the last open scope is closed; the returned function closes it.
 */
export function layoutScope(): () => void {
  scopes++;
  let open = true;
  return () => {
    if (!open) return;
    open = false;
    if (--scopes === 0) memo.clear();
  };
}

/**
 * lstat of `root`'s top entries and of every listed path and its ancestors (symlinks not
 * followed). Entries are relative paths as the lists name them. Inside a layoutScope the same
 * (frozen) object answers again for the same root and lists.
 */
export function readLayout(root: string, lists: string[] = []): SkeletonLayout {
  if (scopes === 0) return readLayoutNow(root, lists);
  const key = [root, ...lists].join('\0');
  let layout = memo.get(key);
  if (!layout) memo.set(key, (layout = Object.freeze(readLayoutNow(root, lists))));
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
