// A mount plan is data: an ordered list of steps the driver executes and undoes in reverse.
// `planMounts` (src/skeleton/planner.ts) computes it from a JailSpec and a Skeleton; nothing
// in here touches the filesystem.

export type Strategy = 'nullfs' | 'basejail' | 'overlay' | 'full';

/** Paths: `source` is a host path; `target` is ABSOLUTE on the host (inside the jail root). */
export type MountStep =
  | {
      kind: 'bind';
      source: string;
      target: string;
      readonly: boolean;
      /** why: skeleton-ro, skeleton-rw, fstab, mount */
      origin: string;
      /** mount(8) option words the user gave (fstab, mount): nosuid, nodev, noexec... */
      options?: string[];
      /** The source lies in this jail's tree (a root, or a jail's folder of the state
       * folder), which the jail writes: it is resolved inside it, as the jail sees it, and
       * opened with no symlink followed, never by the host's view of a link the jail made. */
      within?: string;
    }
  | { kind: 'overlay'; lower: string[]; upper: string; work: string; target: string; origin: string }
  | { kind: 'tmpfs'; target: string; options: string[]; origin: string }
  | { kind: 'proc'; target: string; origin: string }
  | { kind: 'devfs'; target: string; origin: string }
  | { kind: 'fs'; fstype: string; source: string; target: string; options: string[]; origin: string };

export interface MountPlan {
  /** The jail root on the host (the jail's `path`). */
  root: string;
  /** Directories to create (host paths, inside root or the jail's state dir) before mounting. */
  mkdirs: string[];
  /** Empty files to create inside root (mount points of files), after the mkdirs. */
  files?: string[];
  /** Symlinks to create inside root (basejail strategy): link path (host) -> target text. */
  symlinks: { path: string; target: string }[];
  /** Mounts in the order they are made; teardown walks this list backwards. */
  mounts: MountStep[];
  /** Why listed entries were not mounted (missing in the skeleton, covered by a symlink, ...). */
  notes?: string[];
  /** The jail's size-limited writable part (limits.disk): an ext4 image loop-mounted at
   * `target` (the root, or the overlay strategy's layer folder) before anything else. */
  disk?: { image: string; target: string };
}
