// Shared by the fuzz suites (issue 12, docs/reliability.md): how many inputs a run makes
// (a CI-sized run on every build, >= 1,000,000 in total under JAILYARD_SOAK=1), the count
// line each target prints, and a watchdog for the synchronous parsers.
//
// The parsers run in a worker thread: a parser caught in an endless loop cannot be
// interrupted inside its own thread, so the test's thread watches a shared counter and
// ends the worker when one input takes longer than the bound, naming that input.
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';

export const SOAK = process.env.JAILYARD_SOAK === '1';

/** Inputs for one target: `ci` on every build, `soak` under JAILYARD_SOAK=1;
 * JAILYARD_FUZZ_SCALE (a factor) scales either, for a quick look or a longer hunt. */
export function budget(ci: number, soak: number): number {
  const scale = Number(process.env.JAILYARD_FUZZ_SCALE ?? '1');
  return Math.max(1, Math.round((SOAK ? soak : ci) * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}

/** How long one input may take before it counts as a hang (the machine is shared and
 * loaded: generous, yet far above any honest parse of these small inputs). */
export const INPUT_BOUND_MS = Number(process.env.JAILYARD_FUZZ_BOUND_MS ?? '5000');

export interface FuzzCounts {
  target: string;
  inputs: number;
  failures: number;
  /** Inputs per generator (grammar, mutation, raw bytes, ...). */
  per: Record<string, number>;
  seconds: number;
}

/** The line the soak run and docs/reliability.md quote: "fuzz <target>: N inputs, 0 failures". */
export function report(t: { diagnostic(m: string): void }, c: FuzzCounts): void {
  const per = Object.entries(c.per)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const line = `fuzz ${c.target}: ${c.inputs} inputs, ${c.failures} failures (${per}; ${c.seconds.toFixed(1)} s)`;
  t.diagnostic(line);
  process.stdout.write(`${line}\n`);
}

/** Shared between the test thread and the worker: [0] inputs done, [1] bytes of the current
 * input, then the input itself (UTF-8, cut at the buffer's size). */
export const SAB_BYTES = 64 * 1024;

/**
 * Runs a target module's properties (test/fuzz/targets/*.ts, `export const properties`) in a
 * worker for `runs` inputs in all; rejects with the input when one exceeds `boundMs`, and
 * with fast-check's counterexample (seed, path, shrunk input) when the oracle fails.
 */
export async function fuzzInWorker(
  target: string,
  module: URL,
  runs: number,
  boundMs = INPUT_BOUND_MS,
): Promise<FuzzCounts> {
  const sab = new SharedArrayBuffer(8 + SAB_BYTES);
  const counter = new Int32Array(sab, 0, 2);
  const worker = new Worker(new URL('./worker.ts', import.meta.url), {
    workerData: { module: module.href, runs, sab, boundMs },
  });
  const started = performance.now();
  try {
    return await new Promise<FuzzCounts>((resolve, reject) => {
      let last = -1;
      let since = performance.now();
      let ready = false;
      const watch = setInterval(() => {
        // loading the target (imports, seeds) is not an input
        if (!ready) return;
        const n = Atomics.load(counter, 0);
        if (n !== last) {
          last = n;
          since = performance.now();
          return;
        }
        if (performance.now() - since < boundMs) return;
        clearInterval(watch);
        const len = Atomics.load(counter, 1);
        const input = new TextDecoder().decode(new Uint8Array(sab, 8, Math.min(len, SAB_BYTES)));
        void worker.terminate();
        reject(new Error(`fuzz ${target}: an input ran longer than ${boundMs} ms (a hang): ${JSON.stringify(input)}`));
      }, 100);
      worker.on('message', (m: { ready?: boolean; per: Record<string, number>; error?: string }) => {
        if (m.ready) {
          ready = true;
          since = performance.now();
          return;
        }
        clearInterval(watch);
        if (m.error) reject(new Error(`fuzz ${target}: ${m.error}`));
        else
          resolve({
            target,
            inputs: Object.values(m.per).reduce((a, b) => a + b, 0),
            failures: 0,
            per: m.per,
            seconds: (performance.now() - started) / 1000,
          });
      });
      worker.once('error', (e) => {
        clearInterval(watch);
        reject(e);
      });
      worker.once('exit', (code) => {
        clearInterval(watch);
        reject(new Error(`fuzz ${target}: the worker exited (${code}) before it reported`));
      });
    });
  } finally {
    await worker.terminate();
  }
}

/** One generator of a target: `weight` shares of the target's runs. */
export interface Property<T = string> {
  name: string;
  weight: number;
  arb: import('fast-check').Arbitrary<T>;
  /** Throws (an assertion) when the oracle is violated; anything else is a pass. */
  check(input: T): void;
  /** The input as text, for the hang report. */
  show?(input: T): string;
}

/** Splits `runs` by weight (each property at least one run). */
export function shares(runs: number, weights: number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => Math.max(1, Math.round((runs * w) / total)));
}

/** A line and column that lie inside `text` (or just past its end). */
export function assertInside(text: string, line: number, col: number, what: string): void {
  const lines = text.split('\n');
  assert.ok(Number.isInteger(line) && line >= 1 && line <= lines.length, `${what}: line ${line} of ${lines.length}`);
  const len = lines[line - 1]!.length;
  assert.ok(Number.isInteger(col) && col >= 1 && col <= len + 1, `${what}: col ${col} of a ${len}-char line`);
}
