// Jail names, with FreeBSD's rules (sys/kern/kern_jail.c, jail(8)) plus what a name must
// not do here because it also names a folder (state/jails/NAME).

import { JailyardError } from '../errors.ts';

/** MAXHOSTNAMELEN: the kernel's limit for a jail name, NUL included. */
const MAX_NAME_BYTES = 255;

/**
 * Throws JY_ERR_JAIL_NAME unless `name` is a valid jail name:
 * - non-empty, at most 255 bytes;
 * - dots separate the hierarchy ("parent.child"): no empty component (no leading, trailing or
 *   doubled dot, so no "..");
 * - the last component is not all digits (kern_jail.c: a numeric name would be read as a jid);
 * - no "/" (the name is a folder name), no whitespace or control characters (jls output is
 *   space-separated), no "*" (jail.conf's wildcard).
 */
export function validateJailName(name: string): void {
  const fail = (why: string): never => {
    throw new JailyardError('JY_ERR_JAIL_NAME', `invalid jail name ${JSON.stringify(name)}: ${why}`, { jail: name });
  };
  if (name.length === 0) fail('empty');
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) fail(`longer than ${MAX_NAME_BYTES} bytes`);
  if (name.includes('/')) fail('contains "/"');
  if (name.includes('*')) fail('contains "*" (the jail.conf wildcard)');
  if (/[\s\x00-\x1f\x7f]/.test(name)) fail('contains whitespace or a control character');
  const parts = name.split('.');
  if (parts.some((p) => p.length === 0)) fail('empty component (leading, trailing or doubled ".")');
  if (/^[0-9]+$/.test(parts[parts.length - 1]!)) fail('numeric names are jail ids');
}

/** "a.b.c" -> ["a", "a.b"]: the names of a jail's ancestors, outermost first. */
export function ancestorsOf(name: string): string[] {
  const parts = name.split('.');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join('.'));
  return out;
}
