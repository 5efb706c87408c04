// The fuzz worker (see harness.ts): runs a target module's properties with fast-check and
// publishes, before each input, the input and the count of inputs done.
import { parentPort, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import '../helpers/fast-check-seed.ts';
import { SAB_BYTES, shares, type Property } from './harness.ts';

const { module, runs, sab, boundMs } = workerData as {
  module: string;
  runs: number;
  sab: SharedArrayBuffer;
  boundMs: number;
};
const counter = new Int32Array(sab, 0, 2);
const bytes = new Uint8Array(sab, 8, SAB_BYTES);
const encoder = new TextEncoder();

const { properties } = (await import(module)) as { properties: Property<unknown>[] };
const per: Record<string, number> = {};
parentPort!.postMessage({ ready: true });
try {
  const counts = shares(
    runs,
    properties.map((p) => p.weight),
  );
  for (const [i, p] of properties.entries()) {
    per[p.name] = 0;
    fc.assert(
      fc.property(p.arb, (input) => {
        const text = p.show ? p.show(input) : String(input);
        const { written } = encoder.encodeInto(text, bytes);
        Atomics.store(counter, 1, written);
        const t0 = performance.now();
        p.check(input);
        const ms = performance.now() - t0;
        if (ms > boundMs) throw new Error(`one input took ${ms.toFixed(0)} ms (bound ${boundMs} ms)`);
        per[p.name]!++;
        Atomics.add(counter, 0, 1);
      }),
      { numRuns: counts[i]! },
    );
  }
  parentPort!.postMessage({ per });
} catch (e) {
  // fast-check keeps the oracle's own error as the cause: the reason is there
  const cause = e instanceof Error && e.cause instanceof Error ? `\n${e.cause.message}` : '';
  parentPort!.postMessage({ per, error: `${e instanceof Error ? e.message : String(e)}${cause}` });
}
