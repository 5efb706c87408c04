// Loads defaults/defaults.json: the one file that holds default directory lists and settings.
import { readFileSync } from 'node:fs';

export type Platform = 'linux' | 'freebsd';

export interface Defaults {
  skeleton: {
    strategy: 'nullfs' | 'basejail' | 'overlay' | 'full';
    root: string;
    romounts: Record<Platform, string[]>;
    rwmounts: Record<Platform, string[]>;
    writable: Record<Platform, string[]>;
    /** Writable dirs made copy-on-write instead of copied (nullfs, basejail). */
    cow?: Record<Platform, string[]>;
    basejail: string;
    /** Size limit of a skeleton jail's writable part (limits.disk), null: none. */
    disk?: string | null;
    /** How a thin jail's writable part is seeded (src/skeleton/writable.ts SeedRules). */
    seed?: Record<Platform, { copy?: string[]; structure?: string[]; skip?: string[]; empty?: string[] }>;
    /** What a skeleton takes from a live root (src/skeleton/writable.ts LiveRules). */
    live?: Record<Platform, { allow?: string[]; accounts?: string[]; secret?: string[] }>;
  };
  network: { bridge: string; range: string; gateway: string; range6: string; gateway6: string };
  limits: {
    cgroupParent: string;
    /** limits.procs of a jail that sets none, per platform (null: none). */
    procs?: Partial<Record<Platform, number | null>>;
    /** limits.ptys of a jail that sets none, per platform (null: no cap of its own). */
    ptys?: Partial<Record<Platform, number | null>>;
  };
  stop: { timeout: number };
  /** User-namespace jails (src/platform/linux/userns.ts UsernsConfig, docs/userns.md). */
  userns?: { enabled?: boolean; first?: number; size?: number; slots?: number; registry?: string };
  /** The daemon's connection limits and timeouts (src/api/limits.ts ApiLimits). */
  api?: Partial<Record<string, number>>;
  /** The console log's size before it rotates (src/platform/linux/console.ts). */
  console?: { logMaxBytes?: number | string };
  /** What a jail sees of the kernel (src/platform/linux/security.ts). */
  isolation?: {
    /** Paths below /proc the jail gets read-only, and masked (unreadable). */
    proc?: Partial<Record<Platform, { readonly?: string[]; masked?: string[] }>>;
    /** File system types of the kernel's own state, read-only wherever a jail has one. */
    kernelfs?: Partial<Record<Platform, string[]>>;
  };
}

let cached: Defaults | undefined;

/** The defaults file's content (read once). JAILYARD_DEFAULTS names another file (tests). */
export function loadDefaults(): Defaults {
  if (!cached) {
    const file = process.env.JAILYARD_DEFAULTS ?? new URL('../defaults/defaults.json', import.meta.url);
    cached = JSON.parse(readFileSync(file, 'utf8')) as Defaults;
  }
  return cached;
}

export function currentPlatform(): Platform {
  return process.platform === 'freebsd' ? 'freebsd' : 'linux';
}
