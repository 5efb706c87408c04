// The read-only lower layers of a skeleton version's copy-on-write dirs (skeleton.cow): made
// once per version and dir, shared by every nullfs or basejail jail of that version. The
// version's creation makes the default dirs' layers (so no jail's create pays for them, and a
// batch of creates does not wait on the first one); a dir a jail adds with skeleton.cow=, or a
// version made before this was done at creation, gets its layer at its first jail's create.
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Defaults, Platform } from '../defaults.ts';
import type { SkeletonVersion } from './registry.ts';
import { liveSeedRules, seedWritable, type SeedRules } from './writable.ts';

/** What of a version the layers are made from and where they go (beside its manifest). */
type LayerSource = Pick<SkeletonVersion, 'kind' | 'seedRoot' | 'manifest'>;

/**
 * The read-only lower layer of a copy-on-write dir: the version's seed of that dir, made once
 * per skeleton version and dir (SKELETON/N/cow/<rel>/<rel>, by the seed rules, so skipped
 * files such as SSH host keys are not in it), then shared by every jail. Built in a temp dir
 * and renamed into place: concurrent creates agree, and a crash leaves no half layer.
 * Undefined when the seed has no such dir.
 */
export function cowLower(skel: LayerSource, rel: string, rules: SeedRules): string | undefined {
  const dir = join(dirname(skel.manifest), 'cow', encodeURIComponent(rel));
  if (!existsSync(dir)) {
    const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
    mkdirSync(tmp, { recursive: true, mode: 0o755 });
    try {
      seedWritable(skel.seedRoot, tmp, [rel], { rules });
      renameSync(tmp, dir);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      // another process made it first
      if (!existsSync(dir)) throw e;
    }
  }
  const lower = join(dir, rel);
  return existsSync(lower) ? lower : undefined;
}

export function cowLowers(skel: LayerSource, cow: string[], rules: SeedRules): Record<string, string | undefined> {
  return Object.fromEntries(cow.map((rel) => [rel, cowLower(skel, rel, rules)]));
}

/**
 * The seed rules for a jail of `skel`: a reference skeleton's seed came from a live root, so
 * its jails get only what the live rules allow (also from seeds made before those rules
 * existed); an owned tree (debootstrap, a prepared --copy) is taken as it is.
 */
export function seedRulesFor(skel: Pick<SkeletonVersion, 'kind'>, defaults: Defaults, platform: Platform): SeedRules {
  const seed = defaults.skeleton.seed?.[platform] ?? {};
  return skel.kind === 'reference' ? liveSeedRules(seed, defaults.skeleton.live?.[platform] ?? {}) : seed;
}

/**
 * The layers of the default copy-on-write dirs, made while a version is created (`skel`
 * describes its temp folder: they are renamed into place with it). Only when the default
 * strategy mounts them (nullfs, basejail); other strategies never read them.
 */
export function makeDefaultCowLayers(skel: LayerSource, defaults: Defaults, platform: Platform): void {
  const strategy = defaults.skeleton.strategy;
  if (strategy !== 'nullfs' && strategy !== 'basejail') return;
  cowLowers(skel, defaults.skeleton.cow?.[platform] ?? [], seedRulesFor(skel, defaults, platform));
}
