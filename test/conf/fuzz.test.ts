import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import fc from 'fast-check';
import { parseConfString } from '../../src/conf/evaluate.ts';
import { isJailyardError } from '../../src/errors.ts';

// Includes are refused (no loader) so random input never reads the disk.
const options = { include: undefined };
const examples = readdirSync(new URL('../../examples/', import.meta.url))
  .filter((f) => f.endsWith('.conf'))
  .map((f) => readFileSync(new URL(`../../examples/${f}`, import.meta.url), 'utf8'));
const alphabet = [
  '{',
  '}',
  ';',
  '=',
  '+=',
  ',',
  '"',
  "'",
  '\\',
  '$',
  '${',
  '}',
  '/*',
  '*/',
  '//',
  '#',
  '\n',
  ' ',
  'a',
  'persist',
  'path',
  '.include',
  'ip4.addr',
  '*',
  'no',
  '.',
  '$name',
  '\x00',
  'é',
];

function check(text: string): void {
  try {
    parseConfString(text, 'fuzz.conf', options);
  } catch (e) {
    if (!isJailyardError(e)) throw e;
    assert.ok(e.code.startsWith('JY_ERR_'));
    assert.ok(e.place.pos, `error without a position: ${e.message}`);
  }
}

const mutated = fc
  .tuple(
    fc.constantFrom(...examples),
    fc.array(fc.tuple(fc.nat(), fc.nat({ max: 4 }), fc.constantFrom(...alphabet)), { minLength: 1, maxLength: 6 }),
  )
  .map(([base, edits]) => {
    let s = base;
    for (const [at, del, ins] of edits) {
      const i = at % (s.length + 1);
      s = s.slice(0, i) + ins + s.slice(i + del);
    }
    return s;
  });
const tokenSoup = fc.array(fc.constantFrom(...alphabet), { maxLength: 40 }).map((a) => a.join(''));
const random = fc.string({ unit: 'binary', maxLength: 60 });

test('fuzz: 100k random and mutated inputs only ever give JailyardErrors with positions', () => {
  const started = performance.now();
  fc.assert(
    fc.property(mutated, (t) => check(t)),
    { numRuns: 40_000 },
  );
  fc.assert(
    fc.property(tokenSoup, (t) => check(t)),
    { numRuns: 40_000 },
  );
  fc.assert(
    fc.property(random, (t) => check(t)),
    { numRuns: 20_000 },
  );
  const seconds = (performance.now() - started) / 1000;
  // Informational only (no timed assertion): the brief asks for < 60 s.
  process.stderr.write(`fuzz: 100000 inputs in ${seconds.toFixed(1)} s\n`);
});
