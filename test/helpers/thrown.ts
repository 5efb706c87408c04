// The JailyardError a call throws (the test fails when it throws nothing or another error).
import assert from 'node:assert/strict';
import { JailyardError } from '../../src/errors.ts';

export function err(f: () => unknown): JailyardError {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof JailyardError, String(e));
    return e;
  }
  assert.fail('expected an error');
}
