// fstab(5) lines, as used by the `mount` (one line per element) and `mount.fstab` (a file)
// jail parameters. Parsing only; src/runtime turns entries into mount plan steps.

import { JailyardError, type SourcePosition } from '../errors.ts';

export interface FstabEntry {
  source: string;
  target: string;
  fstype: string;
  options: string[];
  pos: SourcePosition;
}

/** fstab(5) escapes spaces and tabs in fields as \040 and \011 (octal). */
function unescapeField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseFstabLine(line: string, pos: SourcePosition): FstabEntry | undefined {
  const text = line.replace(/^\s+/, '');
  if (text === '' || text.startsWith('#')) return undefined;
  const fields = text.split(/\s+/).filter(Boolean);
  if (fields.length < 3) {
    throw new JailyardError(
      'JY_ERR_CONF_SYNTAX',
      `fstab line needs at least source, mount point and type: ${JSON.stringify(line)}`,
      { pos },
    );
  }
  const [source, target, fstype, options] = fields as [string, string, string, string | undefined];
  return {
    source: unescapeField(source),
    target: unescapeField(target),
    fstype,
    options: (options ?? 'rw').split(',').filter(Boolean),
    pos,
  };
}

export function parseFstab(text: string, file: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  text.split('\n').forEach((line, i) => {
    const e = parseFstabLine(line, { file, line: i + 1, col: 1 });
    if (e) out.push(e);
  });
  return out;
}
