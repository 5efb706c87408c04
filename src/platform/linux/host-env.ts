// The environment every host tool and helper jailyard runs gets: its own, not the caller's.

/** The environment host tools run with: a fixed PATH, no inherited variables. */
export function minimalEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', ...extra };
}
