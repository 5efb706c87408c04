// How many ptys a jail's own devpts may hold at once (devpts `max`, the kernel's
// Documentation/filesystems/devpts.rst). Every devpts instance draws on the one global
// pool (kernel.pty.max) and kernel.pty.reserve keeps back only the host's initial instance,
// so without a cap one jail's user could take every pty of every other jail.
import { paramInt, type Params } from '../../conf/spec.ts';
import { loadDefaults } from '../../defaults.ts';

/**
 * A jail's pty cap: its `limits.ptys` (an operator's parameter: a jail cannot give it to a
 * child, guest-tools.ts CHILD_PARAMS), else the defaults file's `limits.ptys`; undefined
 * when neither names one (the devpts is then bounded by the global pool only).
 */
export function ptyLimitOf(params: Params): number | undefined {
  return paramInt(params, 'limits.ptys') ?? loadDefaults().limits.ptys?.linux ?? undefined;
}

/** jy-stage's option for the /dev it makes (native/jy-stage.c make_dev): none, no cap. */
export function stagePtysArgs(params: Params): string[] {
  const ptys = ptyLimitOf(params);
  return ptys === undefined ? [] : ['--ptys', String(ptys)];
}
