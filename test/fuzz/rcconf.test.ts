// Issue 12 "Fuzzing": the rc.conf importer (targets/rcconf.ts for the generators and the
// oracle), in a worker with a per-input time bound.
import { test } from 'node:test';
import { budget, fuzzInWorker, report } from './harness.ts';

test('fuzz rc.conf: grammar-aware, mutated examples and raw bytes; positioned errors or a jail.conf that reads back', {
  timeout: 600_000,
}, async (t) => {
  report(t, await fuzzInWorker('rc.conf', new URL('./targets/rcconf.ts', import.meta.url), budget(6_000, 260_000)));
});
