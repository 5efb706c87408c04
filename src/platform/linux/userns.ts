// User-namespace jails (parameter `userns`, defaults `userns.enabled`; docs/userns.md): the
// jail's root is the first uid of an unprivileged host uid/gid range, so it is nobody on the
// host (keyrings, sysctls, setuid files, any host file it reaches).
//
// This module gives each such jail its range and keeps it: a range is handed out once per
// jail and held until the jail's state folder is gone, because the files of its writable part
// are owned by it on disk. The registry is host-wide (one file per slot, made exclusively
// under a host lock), so two state folders, or a crash and a reconcile, never hand out the
// same range; the jail's own state folder records its slot, and a slot whose owner no longer
// points back at it is free again.
//
// It also computes the mount side: which plan steps are seen through an idmapping (the
// skeleton's host-owned trees, shared by jails of different ranges) and shifts the jail's own
// writable part on disk into the range (host uid u -> base + u), setuid bits kept.
import {
  closeSync,
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { posix } from 'node:path';
import { JailyardError } from '../../errors.ts';
import { loadDefaults } from '../../defaults.ts';
import type { JailContext } from '../driver.ts';
import { paramBool, type JailSpec } from '../../conf/spec.ts';
import { withHostLock } from './lock.ts';
import { openSame, PinnedDir, reach } from '../../skeleton/pinned.ts';

/** A jail's host uid/gid range: jail uid u is host uid base + u, for u < count. */
export interface UidRange {
  /** The registry slot (range number). */
  slot: number;
  base: number;
  count: number;
}

export interface UsernsConfig {
  /** Whether jails without the `userns` parameter get a user namespace. */
  enabled: boolean;
  /** The first host uid of slot 0. */
  first: number;
  /** uids per jail (65536: a whole Debian uid space, nobody = 65534 included). */
  size: number;
  /** How many slots there are (first + size * slots stays below 2^32 - 1). */
  slots: number;
  /** Host-wide folder of the slot files (not per state folder: ranges are host-wide). */
  registry: string;
}

const FALLBACK: UsernsConfig = {
  enabled: false,
  first: 0x40000000,
  size: 65536,
  slots: 4096,
  registry: '/var/lib/jailyard/userns',
};

/** The defaults file's userns section, every missing key from the built-in values. */
export function usernsConfig(): UsernsConfig {
  const d = loadDefaults().userns ?? {};
  const cfg = { ...FALLBACK, ...d };
  if (process.env.JAILYARD_USERNS_REGISTRY) cfg.registry = process.env.JAILYARD_USERNS_REGISTRY;
  const ok = (n: number) => Number.isInteger(n) && n > 0;
  if (
    !ok(cfg.first) ||
    !ok(cfg.size) ||
    !ok(cfg.slots) ||
    cfg.first + cfg.size * cfg.slots > 0xffffffff ||
    cfg.first < 65536
  ) {
    throw new JailyardError(
      'JY_ERR_PARAM_VALUE',
      `the defaults' userns section is not a valid range list (first ${cfg.first}, size ${cfg.size}, slots ${cfg.slots})`,
      { param: 'userns' },
    );
  }
  return cfg;
}

/** Whether the jail runs in a user namespace: its `userns` parameter, else the defaults switch. */
export function usernsWanted(spec: JailSpec, cfg: Pick<UsernsConfig, 'enabled'> = usernsConfig()): boolean {
  return spec.params.userns === undefined ? cfg.enabled : paramBool(spec.params, 'userns');
}

/** Where a jail records its slot (in its own state folder: gone with the jail). */
function recordFile(stateDir: string): string {
  return posix.join(stateDir, 'userns.json');
}

function slotFile(cfg: UsernsConfig, slot: number): string {
  return posix.join(cfg.registry, String(slot));
}

/** The range a jail recorded, if it has one (and the registry still names it its owner). */
export function recordedRange(stateDir: string, cfg: UsernsConfig = usernsConfig()): UidRange | undefined {
  let rec: UidRange;
  try {
    rec = JSON.parse(readFileSync(recordFile(stateDir), 'utf8')) as UidRange;
  } catch {
    return undefined;
  }
  if (!Number.isInteger(rec.slot) || rec.base !== cfg.first + rec.slot * cfg.size || rec.count !== cfg.size)
    return undefined;
  return ownerOf(cfg, rec.slot) === stateDir ? rec : undefined;
}

/** The state folder a slot file names, if any. */
function ownerOf(cfg: UsernsConfig, slot: number): string | undefined {
  try {
    return JSON.parse(readFileSync(slotFile(cfg, slot), 'utf8')).stateDir as string;
  } catch {
    return undefined;
  }
}

/** A slot is held while its owner's record names it (the owner's state folder may be gone). */
function slotHeld(cfg: UsernsConfig, slot: number): boolean {
  const owner = ownerOf(cfg, slot);
  if (owner === undefined) {
    // an unreadable or half-written slot file: held, unless the file is gone
    try {
      lstatSync(slotFile(cfg, slot));
      return true;
    } catch {
      return false;
    }
  }
  try {
    const rec = JSON.parse(readFileSync(recordFile(owner), 'utf8')) as UidRange;
    return rec.slot === slot;
  } catch {
    return false;
  }
}

/**
 * The jail's range: the one it recorded, or a free slot taken now (under the host lock, so
 * two jailyard processes never take the same one). Idempotent: the mounts and the create
 * step both ask.
 */
export async function rangeFor(
  ctx: Pick<JailContext, 'name' | 'stateDir'>,
  cfg: UsernsConfig = usernsConfig(),
): Promise<UidRange> {
  const have = recordedRange(ctx.stateDir, cfg);
  if (have) return have;
  return await withHostLock('userns', async () => {
    const again = recordedRange(ctx.stateDir, cfg);
    if (again) return again;
    mkdirSync(cfg.registry, { recursive: true, mode: 0o700 });
    const used = new Set(
      readdirSync(cfg.registry)
        .filter((f) => /^\d+$/.test(f))
        .map(Number),
    );
    for (let slot = 0; slot < cfg.slots; slot++) {
      if (used.has(slot)) {
        if (slotHeld(cfg, slot)) continue;
        unlinkSync(slotFile(cfg, slot)); // its owner is gone: the range is free again
      }
      const fd = openSync(slotFile(cfg, slot), 'wx', 0o600);
      try {
        writeSync(fd, `${JSON.stringify({ stateDir: ctx.stateDir, jail: ctx.name, at: new Date().toISOString() })}\n`);
      } finally {
        closeSync(fd);
      }
      const range: UidRange = { slot, base: cfg.first + slot * cfg.size, count: cfg.size };
      mkdirSync(ctx.stateDir, { recursive: true });
      writeFileSync(recordFile(ctx.stateDir), `${JSON.stringify(range)}\n`, { mode: 0o600 });
      return range;
    }
    throw new JailyardError(
      'JY_ERR_PLATFORM',
      `no free user-namespace range (all ${cfg.slots} slots of ${cfg.registry} are held)`,
      { jail: ctx.name, param: 'userns' },
    );
  });
}

/**
 * Gives the jail's range back: the one its folder records, and any slot naming `stateDir`
 * whose record is gone (the driver's `forget`, called once a removed jail's folder is
 * deleted: only then are no files of the range left on disk). Never frees another's slot.
 */
export async function releaseRange(stateDir: string, cfg: UsernsConfig = usernsConfig()): Promise<number[]> {
  // no registry, no slot (a record is valid only while its slot file exists): no lock taken
  if (!existsSync(cfg.registry)) return [];
  return await withHostLock('userns', async () => {
    const freed: number[] = [];
    const rec = recordedRange(stateDir, cfg);
    if (rec) {
      rmSync(slotFile(cfg, rec.slot), { force: true });
      rmSync(recordFile(stateDir), { force: true });
      freed.push(rec.slot);
    }
    let files: string[] = [];
    try {
      files = readdirSync(cfg.registry).filter((f) => /^\d+$/.test(f));
    } catch {
      return freed;
    }
    for (const slot of files.map(Number)) {
      if (ownerOf(cfg, slot) !== stateDir || slotHeld(cfg, slot)) continue;
      rmSync(slotFile(cfg, slot), { force: true });
      freed.push(slot);
    }
    return freed.sort((a, b) => a - b);
  });
}

/** Slots whose owner's state folder no longer records them (for reconcile), freed if `free`. */
export async function staleRanges(free: boolean, cfg: UsernsConfig = usernsConfig()): Promise<number[]> {
  return await withHostLock('userns', async () => {
    let files: string[] = [];
    try {
      files = readdirSync(cfg.registry).filter((f) => /^\d+$/.test(f));
    } catch {
      return [];
    }
    const stale = files.map(Number).filter((slot) => !slotHeld(cfg, slot));
    if (free) for (const slot of stale) unlinkSync(slotFile(cfg, slot));
    return stale.sort((a, b) => a - b);
  });
}

/** "BASE,COUNT": the form jy-stage --userns and jy-mount's idmap op take. */
export function rangeArg(r: UidRange): string {
  return `${r.base},${r.count}`;
}

/**
 * Plan steps whose source trees belong to the host (the skeleton, a basejail) and are shared
 * between jails: seen through an idmapping, never chowned. The jail's own parts (its root,
 * rw dirs, overlay upper layers) are shifted on disk instead.
 */
export const IDMAPPED_ORIGINS: ReadonlySet<string> = new Set(['skeleton-ro', 'skeleton-basejail']);

export interface ShiftResult {
  /** Entries looked at. */
  seen: number;
  /** Entries whose owner changed. */
  shifted: number;
}

/**
 * Moves the ownership of everything below each of `tops` into the range: an entry owned by
 * host uid (gid) u < count becomes base + u, one owned by another range of the `area` (a
 * clone's or an import's tree) the same jail uid of this range; entries already in the range,
 * or owned outside the area, are left alone. Symlinks are changed themselves, never followed;
 * every other entry is changed through a descriptor of the inode lstat saw, reached through
 * its directory's descriptor (pinned.ts), so a writer racing the walk (a directory or file
 * swapped for a link) never redirects it to a host file. `skip` (the mount points below
 * `tops`, whose lstat would be the mounted tree's) and other filesystems are neither changed
 * nor entered. chown clears setuid/setgid bits: they are set again, now meaning a uid of the
 * range.
 */
export function shiftOwnership(
  tops: string[],
  range: UidRange,
  skip: ReadonlySet<string> = new Set(),
  area: Pick<UsernsConfig, 'first' | 'size' | 'slots'> = usernsConfig(),
): ShiftResult {
  const out: ShiftResult = { seen: 0, shifted: 0 };
  const areaEnd = area.first + area.size * area.slots;
  const map = (id: number): number => {
    if (id < range.count) return range.base + id;
    // another range's id (a clone or an import of a tree made while it was another jail's,
    // or a range this jail had before): the same jail uid in this range
    if (id >= area.first && id < areaEnd && (id < range.base || id >= range.base + range.count))
      return range.base + ((id - area.first) % area.size);
    return id;
  };
  // `path`: the entry's name (for `skip`); `at`: what reaches it, through its directory's
  // descriptor (pinned.ts): whoever else writes the tree cannot swap a directory above it
  const visit = (path: string, at: string, dev: number): void => {
    if (skip.has(path)) return; // a mount point: its lstat is the mounted tree's root
    const st = lstatSync(at, { throwIfNoEntry: false });
    if (!st || st.dev !== dev) return;
    out.seen++;
    const uid = map(st.uid);
    const gid = map(st.gid);
    if (uid !== st.uid || gid !== st.gid) {
      if (st.isSymbolicLink()) lchownSync(at, uid, gid);
      else {
        // the inode lstat saw, never what a link put there since points to
        const fd = openSame(at, st);
        if (fd === undefined) return;
        try {
          chownSync(reach(fd, at), uid, gid);
          if (st.mode & 0o6000) chmodSync(reach(fd, at), st.mode & 0o7777);
        } finally {
          closeSync(fd);
        }
      }
      out.shifted++;
    }
    if (st.isDirectory()) {
      const dir = PinnedDir.open(at, st);
      if (!dir) return;
      try {
        for (const name of dir.names()) visit(posix.join(path, name), dir.entry(name), dev);
      } finally {
        dir.close();
      }
    }
  };
  for (const top of tops) {
    const st = lstatSync(top, { throwIfNoEntry: false });
    if (st?.isDirectory()) visit(posix.normalize(top), posix.normalize(top), st.dev);
  }
  return out;
}

/** Changes the owner of `paths` (made by jailyard for the jail: its mount points) to the range's root. */
export function ownByRangeRoot(paths: string[], range: UidRange): void {
  for (const p of paths) {
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (st && st.uid < range.count)
      lchownSync(p, range.base + st.uid, range.base + (st.gid < range.count ? st.gid : 0));
  }
}

/** The user namespace a nested jail enters: its parent's, when the parent has one. */
export interface JoinedUserNamespace {
  /** /proc/PID/ns/user of the parent's pid 1. */
  file: string;
  /** The host uid of the namespace's root (the parent jail's root). */
  base: number;
}

/**
 * The user namespace of the running jail whose pid 1 is `initPid`, when it is not the
 * host's (a user-namespace jail, or a child of one): a child started below it enters that
 * namespace, so it never holds more than its parent (a child in the host's namespace would
 * be host root). Throws when the parent's namespace cannot be read: starting the child as
 * host root instead is never the fallback.
 */
export function parentUserNamespace(
  initPid: number,
  place: { jail: string; step: string },
): JoinedUserNamespace | undefined {
  const file = `/proc/${initPid}/ns/user`;
  try {
    if (readlinkSync(file) === readlinkSync('/proc/self/ns/user')) return undefined;
    // "0 BASE COUNT": the line that maps the namespace's uid 0 (the stage writes one line)
    const zero = readFileSync(`/proc/${initPid}/uid_map`, 'utf8')
      .split('\n')
      .map((l) => l.trim().split(/\s+/).map(Number))
      .find((f) => f.length === 3 && f[0] === 0);
    if (!zero || !(zero[1]! > 0)) throw new Error(`no mapping of uid 0 in ${file}`);
    return { file, base: zero[1]! };
  } catch (e) {
    throw new JailyardError(
      'JY_ERR_PLATFORM',
      `cannot read the parent jail's user namespace: ${(e as Error).message}`,
      place,
    );
  }
}
