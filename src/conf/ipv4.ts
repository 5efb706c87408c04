// IPv4 text as numbers: an address, a CIDR block and its bounds. Pure; used by the cluster's
// node ranges and by a rollout choosing addresses in them.

/** "a.b.c.d/len" with its numeric bounds, or undefined. */
export function parseCidr(text: string): { base: number; bits: number; first: number; last: number } | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (!m) return undefined;
  const parts = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (parts.some((p) => p > 255) || bits > 32) return undefined;
  const addr = parts.reduce((a, p) => a * 256 + p, 0);
  const size = 2 ** (32 - bits);
  const first = addr - (addr % size);
  return { base: addr, bits, first, last: first + size - 1 };
}

/** An IPv4 address (with or without /len) as a number, or undefined. */
export function ipv4Number(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/\d{1,2})?$/.exec(text.trim());
  if (!m) return undefined;
  const parts = m.slice(1, 5).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return parts.reduce((a, p) => a * 256 + p, 0);
}
