// node:net's isIP for the browser bundle (src/conf/typing.ts checks addresses with it when
// the dashboard types a parameter as the CLI does). The daemon checks every value again with
// node's own.

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function isV6(text: string): boolean {
  // an embedded IPv4 tail counts as two groups
  let s = text;
  let groups = 0;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    if (!V4.test(s.slice(lastColon + 1))) return false;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return false;
  const hex = /^[0-9a-fA-F]{1,4}$/;
  for (const half of halves) {
    if (half === '') continue;
    for (const g of half.split(':')) {
      if (!hex.test(g)) return false;
      groups++;
    }
  }
  return halves.length === 2 ? groups < 8 : groups === 8;
}

export function isIP(text: string): 0 | 4 | 6 {
  if (V4.test(text)) return 4;
  const zone = text.indexOf('%');
  return isV6(zone < 0 ? text : text.slice(0, zone)) ? 6 : 0;
}
