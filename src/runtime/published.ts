// What `jailyard ports` and GET /v1/ports list: the ports the running jails publish
// (`expose`), as their ports step put them in place (the facts in the store), one row per
// entry. Pure: from jail records.

import type { JailRecord, PublishedPort } from '../store/types.ts';

export interface PublishedRow extends PublishedPort {
  jail: string;
}

/** The published ports of the jails (of `jail` alone when given), by jail name then host port. */
export function publishedPorts(records: readonly JailRecord[], jail?: string): PublishedRow[] {
  return records
    .filter((r) => (jail === undefined || r.name === jail) && r.state !== 'stopped')
    .flatMap((r) => (r.runtime?.ports?.ports ?? []).map((p) => ({ jail: r.name, ...p })))
    .sort((a, b) => a.jail.localeCompare(b.jail) || a.proto.localeCompare(b.proto) || a.hostPort - b.hostPort);
}

const span = (a: number, b: number) => (a === b ? String(a) : `${a}-${b}`);

/** Aligned columns: JAIL PROTO HOST -> ADDRESS:PORT. */
export function formatPublished(rows: readonly PublishedRow[]): string {
  const table = [
    ['JAIL', 'PROTO', 'HOST', 'JAIL ADDRESS'],
    ...rows.map((r) => [
      r.jail,
      r.proto,
      span(r.hostPort, r.hostPortEnd),
      `${r.address}:${span(r.jailPort, r.jailPortEnd)}`,
    ]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}
