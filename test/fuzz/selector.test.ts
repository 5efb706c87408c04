// Issue 12 "Fuzzing": the label selector parser (targets/selector.ts for the generators and
// the oracle), in a worker with a per-input time bound.
import { test } from 'node:test';
import { budget, fuzzInWorker, report } from './harness.ts';

test('fuzz selector: grammar-aware, mutated and raw selectors; positioned errors or a stable canonical form', {
  timeout: 600_000,
}, async (t) => {
  report(t, await fuzzInWorker('selector', new URL('./targets/selector.ts', import.meta.url), budget(8_000, 310_000)));
});
