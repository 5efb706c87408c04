// Named, versioned skeletons under <state>/skeletons/<name>/:
//   skeleton.json              name, next version number, versions (write-temp-then-rename)
//   <N>/root/                  OWNED tree (--copy, --debootstrap): immutable by convention,
//                              checked against <N>/manifest.tsv, mounted read-only when used
//   <N>/seed/                  REFERENCE (--from DIR): a snapshot of only the writable subset
//                              (etc, var structure...) seeded into jails, and the merge base
//                              for upgrades, since the referenced tree changes under us
//   <N>/manifest.tsv           content manifest of root (owned) or seed (reference)
// A version is built in a temp dir and renamed into place: a failed create leaves nothing.
// `NAME@N` is one version; `NAME` the latest. Version numbers are never reused.

import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { JailyardError } from '../errors.ts';
import { DEFAULT_STATE_DIR, HOST_RUN_DIR, skeletonDir, skeletonsDir } from '../layout.ts';
import { loadDefaults, currentPlatform, type Platform } from '../defaults.ts';
import { buildManifest, diffManifests, formatManifest, parseManifest, type ManifestDiff } from './manifest.ts';
import { copyListed, copyTree, liveSeedRules, seedWritable, type LiveRules, type SeedRules } from './writable.ts';
import { makeDefaultCowLayers } from './cowlayer.ts';
import type { DebootstrapOptions, DebootstrapProgress } from './debootstrap.ts';
import type { ImageInfo } from './image.ts';
import type { LayerLimits } from './layers.ts';

export type SkeletonSource =
  | { type: 'from'; path: string }
  | { type: 'copy'; path: string }
  | { type: 'debootstrap'; suite: string; mirror?: string; variant?: string }
  /** A container image: an OCI layout (directory or tar) or a docker save archive (image.ts). */
  | { type: 'oci-archive'; path: string; ref?: string };

export interface SkeletonVersion {
  version: number;
  kind: 'reference' | 'owned';
  source: SkeletonSource;
  createdAt: string;
  /** The tree jails mount or copy: the referenced dir, or <N>/root. */
  root: string;
  /** Where a jail's writable part is seeded from (and the upgrade merge base). */
  seedRoot: string;
  /** Path of the content manifest. */
  manifest: string;
  /** Entries and file bytes in the manifest. */
  entries: number;
  bytes: number;
  /** --oci-archive: the image it was made from, its config (recorded, not run) and notes. */
  image?: ImageInfo;
}

export interface Skeleton {
  name: string;
  versions: SkeletonVersion[];
}

interface StoredVersion {
  version: number;
  kind: 'reference' | 'owned';
  source: SkeletonSource;
  createdAt: string;
  entries: number;
  bytes: number;
  image?: ImageInfo;
}

interface StoredSkeleton {
  name: string;
  nextVersion: number;
  versions: StoredVersion[];
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function checkSkeletonName(name: string): string {
  if (!NAME_RE.test(name) || name.includes('..')) {
    throw new JailyardError(
      'JY_ERR_USAGE',
      `bad skeleton name "${name}": letters, digits, "_", "-", "." (not "..") up to 64 characters`,
      { param: 'skeleton' },
    );
  }
  return name;
}

/** "NAME" or "NAME@N" -> parts. */
export function parseSkeletonRef(ref: string): { name: string; version?: number } {
  const at = ref.lastIndexOf('@');
  if (at < 0) return { name: checkSkeletonName(ref) };
  const v = ref.slice(at + 1);
  if (!/^[1-9]\d*$/.test(v))
    throw new JailyardError('JY_ERR_USAGE', `bad skeleton version in "${ref}" (NAME or NAME@N, N >= 1)`, {
      param: 'skeleton',
    });
  return { name: checkSkeletonName(ref.slice(0, at)), version: Number(v) };
}

function expand(dir: string, s: StoredVersion): SkeletonVersion {
  return versionAt(join(dir, String(s.version)), s);
}

/** A version as stored in `vdir` (its place, or the temp folder it is built in). */
function versionAt(vdir: string, s: StoredVersion): SkeletonVersion {
  const root = s.kind === 'owned' ? join(vdir, 'root') : (s.source as { path: string }).path;
  return { ...s, root, seedRoot: s.kind === 'owned' ? root : join(vdir, 'seed'), manifest: join(vdir, 'manifest.tsv') };
}

function readStored(stateDir: string, name: string): StoredSkeleton | undefined {
  const file = join(skeletonDir(stateDir, name), 'skeleton.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as StoredSkeleton;
}

function writeStored(stateDir: string, s: StoredSkeleton): void {
  const file = join(skeletonDir(stateDir, s.name), 'skeleton.json');
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o644 });
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

function notFound(ref: string): JailyardError {
  return new JailyardError('JY_ERR_SKELETON_NOT_FOUND', `no skeleton "${ref}"`, { param: 'skeleton' });
}

export function listSkeletons(stateDir: string): Skeleton[] {
  const dir = skeletonsDir(stateDir);
  if (!existsSync(dir)) return [];
  const out: Skeleton[] = [];
  for (const name of readdirSync(dir).sort()) {
    const s = NAME_RE.test(name) ? readStored(stateDir, name) : undefined;
    if (s) out.push({ name: s.name, versions: s.versions.map((v) => expand(join(dir, name), v)) });
  }
  return out;
}

/** The version a reference names (NAME = latest). Throws JY_ERR_SKELETON_NOT_FOUND. */
export function resolveSkeleton(stateDir: string, ref: string): SkeletonVersion & { name: string } {
  const { name, version } = parseSkeletonRef(ref);
  const s = readStored(stateDir, name);
  if (!s || s.versions.length === 0) throw notFound(ref);
  const v = version === undefined ? s.versions[s.versions.length - 1] : s.versions.find((x) => x.version === version);
  if (!v) throw notFound(ref);
  return { name, ...expand(skeletonDir(stateDir, name), v) };
}

export function showSkeleton(
  stateDir: string,
  ref: string,
): { name: string; version: SkeletonVersion; versions: number[] } {
  const v = resolveSkeleton(stateDir, ref);
  const s = readStored(stateDir, v.name)!;
  const { name, ...version } = v;
  return { name, version, versions: s.versions.map((x) => x.version) };
}

export interface CreateOptions {
  /** The writable list whose subset a reference snapshots (default: defaults file). */
  writable?: string[];
  seedRules?: SeedRules;
  /** What may be taken from a live root (default: defaults file's skeleton.live). */
  liveRules?: LiveRules;
  platform?: Platform;
  onProgress?: (p: DebootstrapProgress) => void;
  /** debootstrap program (tests). */
  debootstrap?: string;
  /** The platform driver: needed for --debootstrap, which it runs and which mounts inside
   * the tree it builds. */
  host?: SkeletonHost;
  /** --oci-archive: caps on the image's file bytes and entries (default DEFAULT_LIMITS). */
  imageLimits?: Partial<LayerLimits>;
  /** What skeleton.json records as the source instead of `source` (an archive uploaded to
   * the daemon is read from a spooled file that is gone afterwards). */
  recordSource?: SkeletonSource;
}

/**
 * jailyard's own folders, which a seed of a live root never takes (not even as empty
 * directories whose names tell the jails' names): this state folder and the default one
 * (another install's), the host-wide userns registry's folder and /run/jailyard (address
 * and state-folder claims).
 */
function ownFolders(stateDir: string, defaults: ReturnType<typeof loadDefaults>): string[] {
  const registry = defaults.userns?.registry;
  return [
    resolve(stateDir),
    DEFAULT_STATE_DIR,
    ...(registry ? [registry, ...(basename(dirname(registry)) === 'jailyard' ? [dirname(registry)] : [])] : []),
    HOST_RUN_DIR,
  ];
}

/** Whether `path` is this system's own root directory (same inode as `/`). */
function isHostRoot(path: string): boolean {
  const a = statSync(path);
  const b = statSync('/');
  return a.dev === b.dev && a.ino === b.ino;
}

/**
 * What the registry needs of the platform driver (a Driver is one): it runs debootstrap,
 * which mounts proc and sys in its target, and a failed run may leave them, so a built tree
 * is only deleted once nothing is mounted inside it (a recursive delete would go through a
 * mount).
 */
export interface SkeletonHost {
  /** Mount points at or below `dir`. */
  mountsBelow(dir: string): string[];
  /** Unmounts a mount point with everything below it. */
  removeLeftover(kind: 'mounts', target: string): Promise<void>;
  /** Builds a Debian tree (absent where the platform has no debootstrap). */
  debootstrap?(opts: DebootstrapOptions): Promise<void>;
}

/** Removes a tree jailyard built, after unmounting anything left mounted inside it. */
async function removeBuiltTree(dir: string, mounts: SkeletonHost): Promise<void> {
  for (const m of mounts.mountsBelow(dir).reverse()) {
    try {
      await mounts.removeLeftover('mounts', m);
    } catch {
      // reported below if it stays
    }
  }
  const left = mounts.mountsBelow(dir);
  if (left.length)
    throw new JailyardError('JY_ERR_MOUNT', `cannot remove ${dir}: still mounted: ${left.join(', ')}`, {
      step: 'skeleton',
    });
  rmSync(dir, { recursive: true, force: true });
}

/** Creates the next version of skeleton `name` (the first one when new). */
export async function createSkeleton(
  stateDir: string,
  name: string,
  source: SkeletonSource,
  opts: CreateOptions = {},
): Promise<SkeletonVersion> {
  checkSkeletonName(name);
  const debootstrap = opts.host?.debootstrap?.bind(opts.host);
  if (source.type === 'debootstrap' && !debootstrap)
    throw new JailyardError(
      'JY_ERR_PLATFORM',
      'creating a skeleton with debootstrap needs a platform driver that runs it',
      {
        param: '--debootstrap',
      },
    );
  const platform = opts.platform ?? currentPlatform();
  const defaults = loadDefaults();
  if (source.type !== 'debootstrap') {
    const param = source.type === 'from' ? '--from' : source.type === 'copy' ? '--copy' : '--oci-archive';
    if (!isAbsolute(source.path))
      throw new JailyardError('JY_ERR_PATH', `"${source.path}" is not an absolute path`, { param });
    let st;
    try {
      st = statSync(source.path);
    } catch {
      st = undefined;
    }
    if (source.type === 'oci-archive') {
      if (!st?.isDirectory() && !st?.isFile())
        throw new JailyardError('JY_ERR_PATH', `${source.path} is neither an image directory nor an archive file`, {
          param,
        });
    } else if (!st?.isDirectory())
      throw new JailyardError('JY_ERR_PATH', `${source.path} is not a directory`, { param });
  }
  const dir = skeletonDir(stateDir, name);
  // the state folder is jailyard's alone (a seed holds a live root's config)
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const stored = readStored(stateDir, name) ?? { name, nextVersion: 1, versions: [] };
  const version = stored.nextVersion;
  const tmp = join(dir, `.tmp-${version}-${process.pid}-${randomBytes(4).toString('hex')}`);
  let placed: string | undefined;
  try {
    mkdirSync(tmp, { mode: 0o755 });
    let kind: 'reference' | 'owned';
    let manifestRoot: string;
    let image: ImageInfo | undefined;
    const writable = opts.writable ?? defaults.skeleton.writable[platform];
    const live = liveSeedRules(
      opts.seedRules ?? defaults.skeleton.seed?.[platform] ?? {},
      opts.liveRules ?? defaults.skeleton.live?.[platform] ?? {},
    );
    if (source.type === 'from') {
      kind = 'reference';
      manifestRoot = join(tmp, 'seed');
      mkdirSync(manifestRoot, { mode: 0o755 });
      seedWritable(source.path, manifestRoot, writable, { rules: live, exclude: ownFolders(stateDir, defaults) });
    } else if (source.type === 'copy') {
      kind = 'owned';
      manifestRoot = join(tmp, 'root');
      if (isHostRoot(source.path)) {
        // the host's own live root: only its romounts dirs, and its config dirs as a reference
        // skeleton's seed takes them (never its /home, /work, /boot, jailyard's state...)
        copyListed(source.path, manifestRoot, defaults.skeleton.romounts[platform]);
        seedWritable(source.path, manifestRoot, writable, { rules: live, exclude: ownFolders(stateDir, defaults) });
      } else {
        // a prepared tree (a distribution made for jails) is taken as it is
        copyTree(source.path, manifestRoot);
      }
    } else if (source.type === 'oci-archive') {
      kind = 'owned';
      manifestRoot = join(tmp, 'root');
      mkdirSync(manifestRoot, { mode: 0o755 });
      const { buildFromImage } = await import('./image.ts');
      const { DEFAULT_LIMITS } = await import('./layers.ts');
      // a tar's files are unpacked beside the tree, inside the version's temp folder
      const scratch = join(tmp, 'archive');
      image = await buildFromImage(source.path, manifestRoot, scratch, {
        ...(source.ref !== undefined ? { ref: source.ref } : {}),
        limits: { ...DEFAULT_LIMITS, ...opts.imageLimits },
      });
      rmSync(scratch, { recursive: true, force: true });
    } else {
      kind = 'owned';
      manifestRoot = join(tmp, 'root');
      await debootstrap!({
        suite: source.suite,
        target: manifestRoot,
        ...(source.mirror ? { mirror: source.mirror } : {}),
        ...(source.variant ? { variant: source.variant } : {}),
        ...(opts.debootstrap ? { program: opts.debootstrap } : {}),
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      });
      const left = opts.host!.mountsBelow(manifestRoot);
      if (left.length)
        throw new JailyardError('JY_ERR_SKELETON_CREATE', `debootstrap left mounts: ${left.join(', ')}`, {
          step: 'debootstrap',
        });
    }
    const entries = buildManifest(manifestRoot);
    writeFileSync(join(tmp, 'manifest.tsv'), formatManifest(entries), { mode: 0o444 });
    const sv: StoredVersion = {
      version,
      kind,
      source: opts.recordSource ?? source,
      createdAt: new Date().toISOString(),
      entries: entries.length,
      bytes: entries.reduce((n, e) => n + e.size, 0),
      ...(image ? { image } : {}),
    };
    // the shared layers of the default copy-on-write dirs, renamed into place with the version
    makeDefaultCowLayers(versionAt(tmp, sv), defaults, platform);
    renameSync(tmp, join(dir, String(version)));
    placed = join(dir, String(version));
    // re-read: another version may have been added meanwhile (numbers come from the rename)
    const now = readStored(stateDir, name) ?? stored;
    now.versions = [...now.versions.filter((v) => v.version !== version), sv].sort((a, b) => a.version - b.version);
    now.nextVersion = Math.max(now.nextVersion, version + 1);
    writeStored(stateDir, now);
    return expand(dir, sv);
  } catch (e) {
    // only debootstrap mounts inside the tree it builds
    if (existsSync(tmp)) {
      if (opts.host) await removeBuiltTree(tmp, opts.host);
      else rmSync(tmp, { recursive: true, force: true });
    }
    // a version exists once skeleton.json lists it: one renamed into place but not recorded
    // (skeleton.json could not be written) goes too
    if (placed && !readStored(stateDir, name)?.versions.some((v) => v.version === version))
      rmSync(placed, { recursive: true, force: true });
    if (stored.versions.length === 0 && !readStored(stateDir, name) && readdirSync(dir).length === 0)
      rmSync(dir, { recursive: true, force: true });
    throw diskFull(e, name, dir);
  }
}

/** A full disk (ENOSPC, EDQUOT) while making a skeleton, as an error naming it and its folder. */
function diskFull(e: unknown, name: string, dir: string): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return e;
  return new JailyardError(
    'JY_ERR_SKELETON_CREATE',
    `no space left on the disk of ${dir} (${code}) creating skeleton "${name}"; nothing of it was kept: free space there and retry`,
    { param: 'skeleton', step: 'skel create' },
    { cause: e },
  );
}

/**
 * Removes one version (NAME@N) or the whole skeleton (NAME). `usersOf(name, version)` names
 * the jails using that version (the caller reads the store); any user -> JY_ERR_SKELETON_IN_USE.
 */
export async function removeSkeleton(
  stateDir: string,
  ref: string,
  opts: { usersOf: (name: string, version: number) => string[]; host: SkeletonHost },
): Promise<number[]> {
  const { name, version } = parseSkeletonRef(ref);
  const stored = readStored(stateDir, name);
  if (!stored) throw notFound(ref);
  const doomed = version === undefined ? stored.versions : stored.versions.filter((v) => v.version === version);
  if (doomed.length === 0) throw notFound(ref);
  const users = [...new Set(doomed.flatMap((v) => opts.usersOf(name, v.version)))].sort();
  if (users.length) {
    throw new JailyardError(
      'JY_ERR_SKELETON_IN_USE',
      `skeleton "${ref}" is used by jail${users.length > 1 ? 's' : ''} ${users.join(', ')}`,
      { param: 'skeleton' },
    );
  }
  const dir = skeletonDir(stateDir, name);
  // forget first, then delete: a crash in between leaves an orphan dir, never a dangling entry
  stored.versions = stored.versions.filter((v) => !doomed.includes(v));
  writeStored(stateDir, stored);
  for (const v of doomed)
    if (existsSync(join(dir, String(v.version)))) await removeBuiltTree(join(dir, String(v.version)), opts.host);
  if (stored.versions.length === 0) await removeBuiltTree(dir, opts.host);
  return doomed.map((v) => v.version);
}

/**
 * Which version of skeleton `name` a jail with `skeleton = param` uses: NAME@N -> N; bare
 * NAME -> the version it was seeded from (`pinned`, see hooks.ts) else the latest.
 */
export function usedVersion(param: string, name: string, latest: number, pinned?: number): number | undefined {
  let ref;
  try {
    ref = parseSkeletonRef(param);
  } catch {
    return undefined;
  }
  if (ref.name !== name) return undefined;
  return ref.version ?? pinned ?? latest;
}

/** Compares a version's tree with its recorded manifest. */
export function verifySkeleton(stateDir: string, ref: string): ManifestDiff & { ok: boolean } {
  const v = resolveSkeleton(stateDir, ref);
  const recorded = parseManifest(readFileSync(v.manifest, 'utf8'));
  const now = buildManifest(v.kind === 'owned' ? v.root : v.seedRoot);
  const diff = diffManifests(recorded, now);
  return { ...diff, ok: diff.added.length + diff.removed.length + diff.changed.length === 0 };
}

/** A skeleton version's digest: sha256 (hex) of its manifest.tsv text. Two nodes' versions
 * with one digest have the same content (the manifest holds every file's sha256). */
export function manifestDigest(manifestText: string | Buffer): string {
  return createHash('sha256').update(manifestText).digest('hex');
}

// A manifest is written once (0444) with its version: its digest is kept while the file's
// identity stays, so the cluster agent's pass every few seconds does not rehash megabytes.
const digestCache = new Map<string, { key: string; digest: string }>();
function cachedDigest(path: string): string {
  const st = statSync(path);
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  const c = digestCache.get(path);
  if (c?.key === key) return c.digest;
  const digest = manifestDigest(readFileSync(path));
  if (digestCache.size > 4096) digestCache.clear();
  digestCache.set(path, { key, digest });
  return digest;
}

/** Every skeleton version this state folder has, "NAME@VERSION" -> digest; a version whose
 * manifest cannot be read is left out (it is no usable skeleton). */
export function skeletonDigests(stateDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of listSkeletons(stateDir)) {
    for (const v of s.versions) {
      try {
        out[`${s.name}@${v.version}`] = cachedDigest(v.manifest);
      } catch {
        // a version being removed, or a broken folder
      }
    }
  }
  return out;
}
