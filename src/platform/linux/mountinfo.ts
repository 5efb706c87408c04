// The mount points of a mount namespace, from its /proc/PID/mountinfo (fields escape spaces,
// tabs, newlines and backslashes as octal \NNN). One reader for the whole Linux driver.
import { readFileSync } from 'node:fs';

export function mountTargets(file = '/proc/self/mountinfo'): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4]!.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

/** Mount points at or below `dir`, in mount order. */
export function mountsBelow(dir: string, file?: string): string[] {
  const d = dir.replace(/\/+$/, '');
  return mountTargets(file).filter((m) => m === d || m.startsWith(`${d}/`));
}
