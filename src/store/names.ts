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
 * - the last component is not all digits (kern_jail.c: a numeric name would be read as a jid),
 *   unless it is the jail's own `jid` parameter (a jail.conf block `5309 { }` is the jail with
 *   jid 5309, named "5309" by default, as the kernel names a jail created without a name);
 * - no "/" (the name is a folder name), no whitespace or control characters (jls output is
 *   space-separated), no invisible format characters (U+202E, U+200B: a name that shows as
 *   another), no "*" (jail.conf's wildcard).
 */
export function validateJailName(name: string, jid?: number): void {
  const fail = (why: string): never => {
    throw new JailyardError('JY_ERR_JAIL_NAME', `invalid jail name ${JSON.stringify(name)}: ${why}`, { jail: name });
  };
  if (name.length === 0) fail('empty');
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) fail(`longer than ${MAX_NAME_BYTES} bytes`);
  if (name.includes('/')) fail('contains "/"');
  if (name.includes('*')) fail('contains "*" (the jail.conf wildcard)');
  // and nothing invisible that would make one name look like another on a terminal or the
  // dashboard: C1 controls, format characters (right-to-left overrides, zero-width spaces)
  if (/[\s\x00-\x1f\x7f-\x9f\p{Cf}\p{Zl}\p{Zp}]/u.test(name))
    fail('contains whitespace, a control character or an invisible format character');
  const parts = name.split('.');
  if (parts.some((p) => p.length === 0)) fail('empty component (leading, trailing or doubled ".")');
  const last = parts[parts.length - 1]!;
  if (/^[0-9]+$/.test(last) && (jid === undefined || Number(last) !== jid))
    fail(`numeric names are jail ids (a numeric name needs jid=${Number(last)})`);
}

/** "a.b.c" -> ["a", "a.b"]: the names of a jail's ancestors, outermost first. */
export function ancestorsOf(name: string): string[] {
  const parts = name.split('.');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join('.'));
  return out;
}

/** The jid a jail asks for with its `jid` parameter (jail.conf `jid = N;`, or a numeric block
 * name), undefined when it leaves the choice to the store. */
export function wantedJid(params: Record<string, unknown>, jail: string): number | undefined {
  const v = params.jid;
  if (v === undefined || v === '' || v === 0 || v === '0') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 0x7fffffff)
    throw new JailyardError('JY_ERR_PARAM_VALUE', `jid must be a positive integer, not ${JSON.stringify(v)}`, {
      jail,
      param: 'jid',
    });
  return n;
}

/** jail_getid(3): an all-digit reference names a jail by its jid. */
export const isJidRef = (ref: string): boolean => /^[0-9]+$/.test(ref);
