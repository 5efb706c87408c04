// Labels: the well-formed key=value lines of a jail's env and meta, read as one map for
// selectors. A line is a label when the text before its first `=` is a valid label key
// (what a selector can name: Kubernetes' qualified name); any other line is buffer text
// only (`jls meta.KEY` still reads it) and never shows up in `labels`.

import { isLabelKey } from './selector.ts';

/** The `key=value` lines of one buffer, added to `into` (over what it has); the first line of
 * a key inside this buffer wins. */
function addLines(buffer: string, into: Map<string, string>): void {
  const seen = new Set<string>();
  for (const line of buffer.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    if (seen.has(key) || !isLabelKey(key)) continue;
    seen.add(key);
    into.set(key, line.slice(eq + 1));
  }
}

/**
 * A jail's labels: the key=value lines of env, then of meta; meta wins on the same key
 * (meta is the host's own view, env what the jail is told). Inside one buffer the first line
 * of a key wins (it is the newest: a key write puts its line first).
 */
export function labelMapOf(meta: string, env: string): Map<string, string> {
  const labels = new Map<string, string>();
  addLines(env, labels);
  addLines(meta, labels);
  return labels;
}

/** labelMapOf as a plain object (what selectors and JSON take). */
export function labelsOf(meta: string, env: string): Record<string, string> {
  // fromEntries makes "__proto__" an ordinary own key
  return Object.fromEntries(labelMapOf(meta, env));
}
