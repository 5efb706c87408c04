// Host-wide settings (like FreeBSD's security.jail.* sysctls): defaults and validation.

import { JailyardError } from '../errors.ts';
import { DEFAULT_META_MAXBUFSIZE } from '../meta/ops.ts';
import type { Settings } from './types.ts';

export const DEFAULT_SETTINGS: Readonly<Settings> = {
  meta_maxbufsize: DEFAULT_META_MAXBUFSIZE,
  meta_hierarchical: 0,
  event_history: 100_000,
};

export const SETTING_NAMES = Object.keys(DEFAULT_SETTINGS) as (keyof Settings)[];

const DESCRIPTIONS: Record<keyof Settings, string> = {
  meta_maxbufsize: 'Maximum buffer size of each meta and env, in bytes with the trailing NUL',
  meta_hierarchical: "1: a jail's meta_maxbufsize also covers the meta and env of all its descendants",
  event_history: 'Events kept at least before compaction (watchers further behind must re-list)',
};

export function describeSetting(name: keyof Settings): string {
  return DESCRIPTIONS[name];
}

export function isSettingName(name: string): name is keyof Settings {
  return Object.hasOwn(DEFAULT_SETTINGS, name);
}

/** Checks a value for a setting; returns it as a number. Throws JY_ERR_PARAM_UNKNOWN /
 * JY_ERR_PARAM_VALUE (place.param = the setting). */
export function checkSetting(name: string, value: unknown): number {
  if (!isSettingName(name)) {
    throw new JailyardError('JY_ERR_PARAM_UNKNOWN', `unknown setting "${name}" (known: ${SETTING_NAMES.join(', ')})`, {
      param: name,
    });
  }
  const n = typeof value === 'string' && /^[0-9]+$/.test(value.trim()) ? Number(value.trim()) : value;
  const bad = (why: string): never => {
    throw new JailyardError('JY_ERR_PARAM_VALUE', `invalid value ${JSON.stringify(value)} for ${name}: ${why}`, {
      param: name,
    });
  };
  if (typeof n !== 'number' || !Number.isInteger(n)) return bad('not an integer');
  switch (name) {
    case 'meta_maxbufsize':
      // an unsigned 32-bit sysctl in FreeBSD
      if (n < 0 || n > 0xffffffff) bad('must be between 0 and 4294967295');
      break;
    case 'meta_hierarchical':
      if (n !== 0 && n !== 1) bad('must be 0 or 1');
      break;
    case 'event_history':
      if (n < 1) bad('must be at least 1');
      break;
  }
  return n;
}
