// Durations of jailyard's own parameters (health.interval, restart.delay, ...): a whole
// number of seconds, or a number with a unit as Docker's healthcheck flags take them:
// "500ms", "30s", "1.5m", "2h". Pure: text in, milliseconds out.

const DURATION = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The longest duration a parameter may name: a day (a timer longer than ~24.8 days would
 * fire at once in Node). */
export const MAX_DURATION_MS = 86_400_000;

/** Milliseconds of a duration text, or why it is not one. */
export function parseDuration(text: string): number | { problem: string } {
  const m = DURATION.exec(text.trim());
  if (!m) return { problem: `"${text}" is not a duration (like 500ms, 30s, 5m or a number of seconds)` };
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 's']!);
  if (ms > MAX_DURATION_MS) return { problem: `duration "${text}" is longer than a day` };
  return ms;
}

/** A duration as printed in messages: "500ms", "2s", "1.5s". */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${Number((ms / 1000).toFixed(3))}s`;
}
