import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JailyardError } from '../src/errors.ts';

test('JailyardError names the place first, then the message', () => {
  const e = new JailyardError('JY_ERR_PARAM_VALUE', 'not an integer: "x"', {
    pos: { file: 'jail.conf', line: 3, col: 14 },
    jail: 'www',
    param: 'children.max',
  });
  assert.equal(e.describe(), 'jail.conf:3:14, jail "www", parameter "children.max": not an integer: "x"');
  assert.equal(e.httpStatus, 400);
  assert.equal(e.toJSON().code, 'JY_ERR_PARAM_VALUE');
});
