// The small fs read the pure planner needs: what a skeleton's listed entries are.
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { lstatOrUndefined, splitRel } from './paths.ts';
import type { SkeletonLayout } from './planner.ts';

/**
 * lstat of `root`'s top entries and of every listed path and its ancestors (symlinks not
 * followed). Entries are relative paths as the lists name them.
 */
export function readLayout(root: string, lists: string[] = []): SkeletonLayout {
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
