// A thin jail's own small writable part, made from its skeleton's config areas (what
// FreeBSD's `make distribution` installs into a jail): /etc copied, /var as an empty
// directory structure, home/root/tmp/... as empty directories. Which subtree gets which
// treatment is data (defaults.json skeleton.seed), not code.
// Also `copyTree`, the independent copy behind the `full` strategy.

import { lstatSync, readFileSync, readdirSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { JailyardError } from '../errors.ts';
import { checkListEntry, ensureDirsInRoot, lstatOrUndefined, splitRel } from './paths.ts';
import { copyFileNoFollow, copySymlink, mkdirLike, writeFileNoFollow } from './tree.ts';
import { ACCOUNT_FILES, keptGroups, keptUsers, regenerateAccountFile, type AccountFile } from './accounts.ts';

/**
 * How a subtree is seeded:
 * - copy: everything (files, dirs, symlinks);
 * - structure: directories and symlinks only (var: log/, cache/, lib/... without content);
 * - skip: nothing;
 * - empty: the directory itself only (default for a writable dir no rule names; var/tmp);
 * - accounts: an account file (passwd, group, shadow, gshadow, master.passwd) regenerated
 *   with the system accounts only and every password locked (accounts.ts).
 * The most specific matching pattern wins; `*` matches within one path component.
 * `secret` patterns are base names (`*` allowed) never copied at any depth, whatever the
 * other rules say: key and credential material.
 */
export type SeedMode = 'copy' | 'structure' | 'skip' | 'empty' | 'accounts';

export interface SeedRules {
  copy?: string[];
  structure?: string[];
  skip?: string[];
  empty?: string[];
  accounts?: string[];
  secret?: string[];
}

/**
 * What a skeleton may take from a LIVE root (--from, a full jail's copy of it): in each dir
 * the seed rules copy, only the `allow`ed entries (each with its subtree), the `accounts`
 * files regenerated, and never an entry matching `secret`. An allow-list, so a file the host
 * adds to /etc later (a token, a service's key) is not handed to jails by default.
 */
export interface LiveRules {
  allow?: string[];
  accounts?: string[];
  secret?: string[];
}

/**
 * The seed rules for a live root: every `copy` pattern with allowed entries below it becomes
 * `empty` (the dir itself), the allowed entries `copy`, the account files `accounts`.
 */
export function liveSeedRules(seed: SeedRules, live: LiveRules): SeedRules {
  const below = (outer: string, inner: string): boolean => {
    const o = splitRel(outer);
    const i = splitRel(inner);
    return i.length > o.length && o.every((p, k) => componentMatches(p, i[k]!));
  };
  const listed = [...(live.allow ?? []), ...(live.accounts ?? [])];
  const narrowed = (seed.copy ?? []).filter((c) => listed.some((a) => below(c, a)));
  return {
    copy: [...(seed.copy ?? []).filter((c) => !narrowed.includes(c)), ...(live.allow ?? [])],
    structure: [...(seed.structure ?? [])],
    // a skip below a narrowed dir matters only inside an allowed entry
    skip: (seed.skip ?? []).filter(
      (k) => !narrowed.some((c) => below(c, k)) || listed.some((a) => a === k || below(a, k)),
    ),
    empty: [...narrowed, ...(seed.empty ?? [])],
    accounts: [...(seed.accounts ?? []), ...(live.accounts ?? [])],
    secret: [...new Set([...(seed.secret ?? []), ...(live.secret ?? [])])],
  };
}

export interface SeedOptions {
  rules?: SeedRules;
  /** Mode for writable dirs no rule names (default 'empty'). */
  fallback?: SeedMode;
  /** Do not descend into directories on another filesystem than the source root. */
  oneFileSystem?: boolean;
  jail?: string;
  /** Directories (host paths) never entered nor copied, found by inode: jailyard's own state
   * folder and registries when the source is the host's live root. */
  exclude?: string[];
}

export interface SeedResult {
  /** Entries created (files, dirs, symlinks). */
  entries: number;
  /** Sum of the sizes of the files copied. */
  bytes: number;
  /** Entries already present at the destination, left untouched. */
  existing: string[];
  /** Sockets, devices, fifos: never copied. */
  skipped: string[];
  /** Entries left out as key or credential material (the `secret` patterns). */
  secret: string[];
}

interface Rule {
  parts: string[];
  mode: SeedMode;
}

function compileRules(rules: SeedRules | undefined): Rule[] {
  const out: Rule[] = [];
  for (const mode of ['copy', 'structure', 'skip', 'empty', 'accounts'] as const) {
    for (const p of rules?.[mode] ?? [])
      out.push({ parts: splitRel(checkListEntry(p, { param: `skeleton.seed.${mode}` })), mode });
  }
  return out;
}

const globCache = new Map<string, RegExp>();

function componentMatches(pattern: string, name: string): boolean {
  if (pattern === name) return true;
  if (!pattern.includes('*')) return false;
  let re = globCache.get(pattern);
  if (!re) {
    re = new RegExp(
      `^${pattern
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('[^/]*')}$`,
    );
    globCache.set(pattern, re);
  }
  return re.test(name);
}

/** The rule naming exactly this path (the deepest match wins because we walk top-down). */
function exactRule(rules: Rule[], parts: string[]): SeedMode | undefined {
  let found: SeedMode | undefined;
  for (const r of rules) {
    if (r.parts.length === parts.length && r.parts.every((p, i) => componentMatches(p, parts[i]!))) found = r.mode;
  }
  return found;
}

function hasRuleBelow(rules: Rule[], parts: string[]): boolean {
  return rules.some((r) => r.parts.length > parts.length && parts.every((p, i) => componentMatches(r.parts[i]!, p)));
}

function statOrUndefined(p: string): Stats | undefined {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}

function statOrThrow(p: string): Stats {
  return lstatSync(p);
}

function readOr(p: string, fallback: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return fallback;
  }
}

/** The regenerated text of the account file `src` (kept names from the files next to it). */
function accountText(src: string): string | undefined {
  const kind = basename(src) as AccountFile;
  if (!ACCOUNT_FILES.includes(kind)) return undefined;
  const dir = dirname(src);
  const passwdText = readOr(join(dir, 'master.passwd'), '') || readOr(join(dir, 'passwd'), '');
  const users = keptUsers(passwdText);
  const groups = keptGroups(readOr(join(dir, 'group'), ''));
  return regenerateAccountFile(kind, readFileSync(src, 'utf8'), users, groups);
}

/**
 * Seeds `dirs` (relative, e.g. the writable list) from `srcRoot` into `destRoot`. Parent
 * directories are created like the source's. Never follows a symlink at the destination,
 * never overwrites what exists there, copies symlinks as symlinks, skips sockets/devices.
 */
export function seedWritable(srcRoot: string, destRoot: string, dirs: string[], opts: SeedOptions = {}): SeedResult {
  const rules = compileRules(opts.rules);
  const secret = (opts.rules?.secret ?? []).map((p) => checkListEntry(p, { param: 'skeleton.live.secret' }));
  const isSecret = (name: string): boolean => secret.some((p) => componentMatches(p, name));
  const fallback = opts.fallback ?? 'empty';
  const res: SeedResult = { entries: 0, bytes: 0, existing: [], skipped: [], secret: [] };
  const rootDev = statOrThrow(srcRoot).dev;
  const place = opts.jail ? { jail: opts.jail, param: 'skeleton.writable' } : { param: 'skeleton.writable' };
  const modeOfSrc = (prefix: string): number => lstatOrUndefined(join(srcRoot, prefix))?.mode ?? 0o755;
  const excluded = new Set(
    (opts.exclude ?? []).flatMap((p) => {
      const x = statOrUndefined(p);
      return x ? [`${x.dev}:${x.ino}`] : [];
    }),
  );

  const walk = (rel: string, inherited: SeedMode): void => {
    const parts = splitRel(rel);
    if (isSecret(parts[parts.length - 1]!)) {
      res.secret.push(rel);
      return;
    }
    const mode = exactRule(rules, parts) ?? inherited;
    if (mode === 'skip' && !hasRuleBelow(rules, parts)) return;
    const src = join(srcRoot, rel);
    const st = lstatOrUndefined(src);
    if (!st) return;
    const dest = join(destRoot, rel);
    const there = lstatOrUndefined(dest);
    if (st.isSymbolicLink()) {
      if (mode !== 'copy' && mode !== 'structure') return;
      if (there) res.existing.push(rel);
      else {
        copySymlink(src, dest, st);
        res.entries++;
      }
      return;
    }
    if (st.isFile()) {
      if (mode === 'accounts') {
        const text = accountText(src);
        if (text === undefined) return;
        if (there) res.existing.push(rel);
        else {
          writeFileNoFollow(dest, text, { mode: st.mode, uid: st.uid, gid: st.gid });
          res.entries++;
          res.bytes += Buffer.byteLength(text);
        }
        return;
      }
      if (mode !== 'copy') return;
      if (there) res.existing.push(rel);
      else {
        copyFileNoFollow(src, dest, st);
        res.entries++;
        res.bytes += st.size;
      }
      return;
    }
    if (!st.isDirectory()) {
      if (mode === 'copy') res.skipped.push(rel);
      return;
    }
    if (excluded.has(`${st.dev}:${st.ino}`)) return;
    if (mode !== 'skip' && mode !== 'accounts') {
      if (!there) {
        mkdirLike(dest, st);
        res.entries++;
      } else if (!there.isDirectory()) {
        // a jail-made symlink (or file) where the skeleton has a directory: never descend through it
        res.existing.push(rel);
        return;
      }
    }
    if (opts.oneFileSystem && st.dev !== rootDev) return;
    const descend = mode === 'copy' || mode === 'structure' || hasRuleBelow(rules, parts);
    if (!descend) return;
    const childInherited: SeedMode = mode === 'empty' ? 'skip' : mode;
    if (mode === 'skip' && there === undefined) {
      // a skipped dir with a rule below: its path must exist for the children
      ensureDirsInRoot(destRoot, rel, modeOfSrc, opts.jail);
    }
    for (const name of readdirSync(src).sort()) walk(`${rel}/${name}`, childInherited);
  };

  for (const entry of dirs) {
    const rel = checkListEntry(entry, place);
    const parent = splitRel(rel).slice(0, -1).join('/');
    if (parent) ensureDirsInRoot(destRoot, parent, modeOfSrc, opts.jail);
    walk(rel, fallback);
  }
  return res;
}

/**
 * The `full` strategy's independent copy of a whole tree (destination must be empty or
 * missing). Stays on the source's filesystem (mount points become empty directories).
 * `skip` names dirs left out (relative; the caller seeds them from a sanitized seed).
 */
export function copyTree(srcRoot: string, destRoot: string, opts: { jail?: string; skip?: string[] } = {}): SeedResult {
  const st = lstatOrUndefined(srcRoot);
  if (!st?.isDirectory())
    throw new JailyardError(
      'JY_ERR_PATH',
      `skeleton root ${srcRoot} is not a directory`,
      opts.jail ? { jail: opts.jail } : {},
    );
  const there = lstatOrUndefined(destRoot);
  if (there && (!there.isDirectory() || readdirSync(destRoot).length > 0)) {
    throw new JailyardError(
      'JY_ERR_PATH',
      `${destRoot} must be missing or an empty directory for a full copy`,
      opts.jail ? { jail: opts.jail, param: 'path' } : { param: 'path' },
    );
  }
  if (!there) mkdirLike(destRoot, st);
  const top = readdirSync(srcRoot).sort();
  // `skip`: dirs the caller seeds otherwise (a live root's config dirs, from its seed)
  const seedOpts: SeedOptions = { fallback: 'copy', oneFileSystem: true, rules: { skip: opts.skip ?? [] } };
  if (opts.jail) seedOpts.jail = opts.jail;
  return seedWritable(srcRoot, destRoot, top, seedOpts);
}

/**
 * A copy of only the listed entries of a tree (each with its subtree; a listed symlink as a
 * symlink): what a jail gets of a live tree (its romounts dirs). The destination must be
 * missing or empty. Stays on the source's filesystem.
 */
export function copyListed(srcRoot: string, destRoot: string, entries: string[], jail?: string): SeedResult {
  const st = lstatOrUndefined(srcRoot);
  if (!st?.isDirectory())
    throw new JailyardError('JY_ERR_PATH', `skeleton root ${srcRoot} is not a directory`, jail ? { jail } : {});
  const there = lstatOrUndefined(destRoot);
  if (there && (!there.isDirectory() || readdirSync(destRoot).length > 0)) {
    throw new JailyardError(
      'JY_ERR_PATH',
      `${destRoot} must be missing or an empty directory for a full copy`,
      jail ? { jail, param: 'path' } : { param: 'path' },
    );
  }
  if (!there) mkdirLike(destRoot, st);
  const opts: SeedOptions = { fallback: 'copy', oneFileSystem: true, rules: { copy: entries } };
  if (jail) opts.jail = jail;
  return seedWritable(srcRoot, destRoot, entries, opts);
}
