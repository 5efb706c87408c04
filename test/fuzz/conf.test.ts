// Issue 12 "Fuzzing": the jail.conf parser and evaluator (targets/conf.ts for the generators
// and the oracle), in a worker with a per-input time bound.
import { test } from 'node:test';
import { budget, fuzzInWorker, report } from './harness.ts';

test('fuzz jail.conf: grammar-aware, mutated examples and raw bytes; positioned errors or a round trip', {
  timeout: 600_000,
}, async (t) => {
  const counts = await fuzzInWorker('jail.conf', new URL('./targets/conf.ts', import.meta.url), budget(8_000, 380_000));
  report(t, counts);
});
