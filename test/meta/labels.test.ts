import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkKeyOps } from '../../src/meta/ops.ts';
import { isLabelKey, labelKeyErrors } from '../../src/meta/selector.ts';
import { labelsOf } from '../../src/meta/labels.ts';
import { JailyardError } from '../../src/errors.ts';

test('isLabelKey agrees with labelKeyErrors (what a selector can name)', () => {
  const ch = fc.constantFrom('a', 'Z', '0', '-', '_', '.', '/', ' ', '=', 'é', 'x');
  const key = fc.oneof(
    fc.array(ch, { maxLength: 12 }).map((a) => a.join('')),
    fc
      .tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 70 }))
      .map(([p, n]) => `${'a'.repeat(p)}${p ? '/' : ''}${'b'.repeat(n)}`),
  );
  fc.assert(
    fc.property(key, (k) => isLabelKey(k) === (labelKeyErrors(k).length === 0)),
    { numRuns: 5000 },
  );
});

test('a label is a line whose key is a valid label key; the rest is buffer text', () => {
  fc.assert(
    fc.property(fc.array(fc.string({ maxLength: 8 }), { maxLength: 6 }), (lines) => {
      for (const k of Object.keys(labelsOf(lines.join('\n'), ''))) assert.ok(isLabelKey(k), k);
    }),
  );
});

test('checkKeyOps: one KEY=VALUE line per key operation; whole buffers are free', () => {
  const refuses = (ops: Parameters<typeof checkKeyOps>[1]) =>
    assert.throws(
      () => checkKeyOps('meta', ops, 'j'),
      (e: unknown) =>
        e instanceof JailyardError && e.code === 'JY_ERR_META_KEY' && e.place.jail === 'j' && e.place.param === 'meta',
    );
  refuses([{ op: 'set', key: 'note', value: 'x\ntier=admin' }]);
  refuses([{ op: 'set', key: 'note', value: 'x\r' }]);
  refuses([{ op: 'set', key: 'note', value: 'x\0' }]);
  refuses([{ op: 'set', key: 'a\nb', value: '' }]);
  refuses([{ op: 'set', key: 'a=b', value: '' }]);
  refuses([{ op: 'remove', key: 'a\nb' }]);
  refuses([
    { op: 'set', key: 'ok', value: '1' },
    { op: 'remove', key: 'x=y' },
  ]);
  checkKeyOps(
    'meta',
    [
      { op: 'replace', value: 'a=1\nb=2\0' },
      { op: 'set', key: 'k', value: 'v = w\tx' },
      { op: 'remove', key: 'k' },
    ],
    'j',
  );
  checkKeyOps('env', undefined, 'j');
});
