// health.http's value (docs/health.md): a path ("/healthz", checked at the jail's first
// address, port 80) or "http://ADDRESS[:PORT]/path" with ADDRESS an IP literal (IPv6 in
// brackets) that must be one of the jail's own addresses (checked at create and at each
// probe). No host names (no DNS from the daemon), no https, no credentials. Pure.

import { isIP } from 'node:net';

export interface ProbeUrl {
  /** undefined: the jail's first address. */
  host?: string;
  port: number;
  /** Path and query, beginning with "/". */
  path: string;
}

const PATH = /^\/[\x21-\x7e]*$/;
const MAX_LENGTH = 2048;

/** The parts of a health.http value, or why it is not one. */
export function parseProbeUrl(text: string): ProbeUrl | { problem: string } {
  if (text.length > MAX_LENGTH) return { problem: `longer than ${MAX_LENGTH} characters` };
  if (text.startsWith('/')) {
    if (!PATH.test(text)) return { problem: `"${text}" is not a URL path (printable characters, no spaces)` };
    return { port: 80, path: text };
  }
  const m = /^http:\/\/(\[[^\]]*\]|[^/:[\]]*)(?::([0-9]{1,5}))?(\/.*)?$/.exec(text);
  if (!m) {
    const why = /^https:/i.test(text) ? ' (https is not checked: give the plain http port)' : '';
    return { problem: `"${text}" is neither a path like /healthz nor http://ADDRESS[:PORT]/path${why}` };
  }
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  if (!isIP(host) || (m[1]!.startsWith('[') && isIP(host) !== 6))
    return { problem: `"${m[1]}" is not an IP address: health.http names one of the jail's own addresses` };
  const port = m[2] === undefined ? 80 : Number(m[2]);
  if (!(port >= 1 && port <= 65535)) return { problem: `port ${m[2]} is out of range (1..65535)` };
  const path = m[3] ?? '/';
  if (!PATH.test(path)) return { problem: `"${path}" is not a URL path (printable characters, no spaces)` };
  return { host, port, path };
}
