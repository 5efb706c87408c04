// A target for test/fuzz/harness.test.ts: the watchdog and the oracle reporting, checked on
// inputs known to hang or to fail (FUZZ_FIXTURE picks which).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Property } from '../harness.ts';

const mode = process.env.FUZZ_FIXTURE;

export const properties: Property[] = [
  {
    name: 'fixture',
    weight: 1,
    arb: fc.constantFrom('a', 'b', 'hang-here'),
    check(input) {
      if (mode === 'hang' && input === 'hang-here') for (;;);
      if (mode === 'fail') assert.notEqual(input, 'hang-here', 'the oracle said no');
    },
  },
];
