// Shared by the crash-injection suites (test/cli/crash*.test.ts, test/api/crash-daemon.test.ts):
// a jailyard process killed at a named point (JAILYARD_CRASH_AT, src/runtime/crashpoint.ts),
// the CI subset of the points, the leak checks the suites add to test/helpers/leaks.ts
// (address claims, intents), and the "crash points covered: N of M" line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { stateTag } from '../../src/platform/linux/paths.ts';
import { binArgs } from './cli.ts';

/** JAILYARD_SOAK=1 (npm run soak): every point; otherwise the CI subset. */
export const SOAK = process.env.JAILYARD_SOAK === '1';

/** Every `every`-th item, always the first and the last (deterministic: the same CI run each time). */
export function sample<T>(all: readonly T[], every: number): T[] {
  if (SOAK || every <= 1) return [...all];
  return all.filter((_, i) => i % every === 0 || i === all.length - 1);
}

/** `jailyard --state STATE ...args` in a process of its own, killed at `crashAt`. */
export function crashing(
  state: string,
  args: string[],
  crashAt: string,
): { code: number | null; signal: string | null; out: string } {
  const r = spawnSync(process.execPath, binArgs(state, ...args), {
    encoding: 'utf8',
    env: { ...process.env, JAILYARD_CRASH_AT: crashAt },
    timeout: 120_000,
  });
  return { code: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}` };
}

/** The host-wide address claims (src/platform/linux/network.ts) held by this state folder's netns. */
export function claimsOf(state: string): string[] {
  const dir = '/run/jailyard/addresses';
  if (!existsSync(dir)) return [];
  const tag = stateTag(`${state}/jails/x`);
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    try {
      const text = readFileSync(join(dir, f), 'utf8');
      if (text.startsWith(`jy-${tag}-`)) out.push(text.trim().replace('\n', ' '));
    } catch {
      // released meanwhile
    }
  }
  return out;
}

/** No address claim, no unfinished intent, no folder of a jail the store does not have. */
export function assertNothingHalfDone(state: string, jails: readonly string[], point: string): void {
  assert.deepEqual(claimsOf(state), [], `${point}: address claims left`);
  const intents = existsSync(join(state, 'intents')) ? readdirSync(join(state, 'intents')) : [];
  assert.deepEqual(intents, [], `${point}: intents left`);
  const folders = existsSync(join(state, 'jails')) ? readdirSync(join(state, 'jails')) : [];
  assert.deepEqual(
    folders.filter((f) => !jails.includes(f)),
    [],
    `${point}: folders of jails the store does not have`,
  );
}

/** Counts the points a suite ran against all it declares, and prints the line. */
export class Coverage {
  private readonly ran = new Set<string>();
  private readonly all = new Set<string>();
  private readonly suite: string;
  constructor(suite: string) {
    this.suite = suite;
  }
  declare(op: string, points: readonly string[]): void {
    for (const p of points) this.all.add(`${op} ${p}`);
  }
  covered(op: string, point: string): void {
    this.ran.add(`${op} ${point}`);
    this.all.add(`${op} ${point}`);
  }
  get count(): number {
    return this.ran.size;
  }
  print(): void {
    console.log(`${this.suite}: crash points covered: ${this.ran.size} of ${this.all.size}${SOAK ? ' (soak)' : ''}`);
  }
}
