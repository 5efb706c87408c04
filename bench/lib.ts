// Shared by every benchmark: time things, print a ratio against a baseline measured in the
// same run, write the JSON result under bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';

export function percentile(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

export async function timeMs(fn: () => unknown | Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export interface BenchReport {
  name: string;
  /** What the ratio compares, e.g. "jailyard start / bwrap start". */
  ratioOf: string;
  ratio: number;
  target?: string;
  metrics: Record<string, number | string>;
}

export function report(r: BenchReport): void {
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const out = { ...r, at: new Date().toISOString(), node: process.version };
  writeFileSync(new URL(`./results/${r.name}.json`, import.meta.url), `${JSON.stringify(out, null, 2)}\n`);
  const m = Object.entries(r.metrics)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(3) : v}`)
    .join(' ');
  console.log(
    `[bench ${r.name}] ratio ${r.ratioOf} = ${r.ratio.toFixed(3)}${r.target ? ` (target ${r.target})` : ''}  ${m}`,
  );
}
