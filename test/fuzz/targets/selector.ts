// Label selectors: src/meta/selector.ts (Kubernetes' grammar and validation). Oracle:
// accepted, and then its canonical form parses to the same requirements, and matching any
// label set gives the same answer for both; or refused with JY_ERR_SELECTOR at a column
// inside the text. Besides: the fast key check (isLabelKey) agrees with the one that
// explains (labelKeyErrors) on every generated key.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isJailyardError } from '../../../src/errors.ts';
import {
  isLabelKey,
  labelKeyErrors,
  labelValueErrors,
  parseSelector,
  type Selector,
} from '../../../src/meta/selector.ts';
import type { Property } from '../harness.ts';
import { literalsOf, mutated, rawText } from './corpus.ts';

const keys = ['app', 'version', 'tier', 'example.com/team', 'a.b-c_d', 'x', 'k8s.io/name', 'A', 'n1'];
const values = ['www', 'v1', 'v2', 'db', '', 'x-y', '1', '10', '-5', 'a.b'];

interface Case {
  selector: string;
  labels: Record<string, string>;
}

export function checkSelector({ selector, labels }: Case): void {
  let sel: Selector;
  try {
    sel = parseSelector(selector);
  } catch (e) {
    if (!isJailyardError(e)) throw e;
    assert.equal(e.code, 'JY_ERR_SELECTOR', e.message);
    const pos = e.place.pos;
    assert.ok(pos, `without a position: ${e.message}`);
    assert.equal(pos.line, 1);
    assert.ok(
      Number.isInteger(pos.col) && pos.col >= 1 && pos.col <= selector.length + 1,
      `col ${pos.col}: ${e.message}`,
    );
    return;
  }
  const canonical = sel.toString();
  let again: Selector;
  try {
    again = parseSelector(canonical);
  } catch (e) {
    throw new Error(
      `the canonical form ${JSON.stringify(canonical)} of an accepted selector is refused: ${(e as Error).message}`,
    );
  }
  assert.deepEqual(again.requirements, sel.requirements, `canonical form ${JSON.stringify(canonical)}`);
  assert.equal(again.toString(), canonical);
  assert.equal(again.matches(labels), sel.matches(labels));
  assert.equal(sel.isEverything(), sel.requirements.length === 0);
  for (const r of sel.requirements) {
    assert.equal(labelKeyErrors(r.key).length, 0, `accepted key ${JSON.stringify(r.key)}`);
    for (const v of r.values)
      if (r.operator !== 'gt' && r.operator !== 'lt') assert.equal(labelValueErrors(v).length, 0);
  }
}

export function checkKey(key: string): void {
  assert.equal(
    isLabelKey(key),
    labelKeyErrors(key).length === 0,
    `isLabelKey and labelKeyErrors disagree on ${JSON.stringify(key)}`,
  );
}

// ------------------------------------------------------------------ grammar-aware selectors

const key = fc.oneof(
  { arbitrary: fc.constantFrom(...keys), weight: 6 },
  fc.stringMatching(/^([a-z0-9]([-a-z0-9.]{0,8}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?$/),
  fc.constantFrom(
    '',
    '/',
    'a/',
    '/a',
    'a/b/c',
    '-a',
    'a-',
    'A.com/x',
    `${'a'.repeat(63)}`,
    `${'a'.repeat(64)}`,
    `${'a'.repeat(254)}/x`,
    'é',
  ),
);
const value = fc.oneof(
  { arbitrary: fc.constantFrom(...values), weight: 6 },
  fc.stringMatching(/^([A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?)?$/),
  fc.constantFrom(
    '-',
    'a b',
    'x,',
    '(',
    ')',
    '!',
    '=',
    `${'v'.repeat(64)}`,
    '9223372036854775808',
    '-9223372036854775809',
    '1.5',
    '+1',
  ),
);
const sp = fc.constantFrom('', '', ' ', '  ', '\t', '\n');
const requirement = fc.oneof(
  fc.tuple(key, sp, fc.constantFrom('=', '==', '!='), sp, value).map((p) => p.join('')),
  fc
    .tuple(key, sp, fc.constantFrom('in', 'notin'), sp, fc.array(value, { maxLength: 4 }))
    .map(([k, a, op, b, vs]) => `${k}${a || ' '}${op}${b || ' '}(${vs.join(',')})`),
  fc.tuple(key, sp, fc.constantFrom('>', '<'), sp, fc.oneof(fc.integer().map(String), value)).map((p) => p.join('')),
  key,
  key.map((k) => `!${k}`),
);
const grammar = fc
  .array(requirement, { maxLength: 5 })
  .chain((rs) => fc.constantFrom(',', ', ', ' ,').map((s) => rs.join(s)));

const labels = fc.dictionary(fc.constantFrom(...keys), fc.oneof(fc.constantFrom(...values), fc.integer().map(String)), {
  maxKeys: 5,
});

const seeds = [
  ...literalsOf('test/meta/', (s) => s.length > 0 && s.length < 200 && /[=!(]|\bin\b/.test(s) && !s.includes('\n')),
  'app=www,version in (v1,v2),!legacy,tier notin (db),n>3',
];
const tokens = [
  '=',
  '==',
  '!=',
  '!',
  ',',
  '(',
  ')',
  ' in ',
  ' notin ',
  '>',
  '<',
  ' ',
  '/',
  '.',
  '-',
  '_',
  'a',
  '1',
  '\t',
  '\x00',
  'é',
  '\ud800',
];

const withLabels = (arb: fc.Arbitrary<string>) => fc.record({ selector: arb, labels });
const show = (c: Case) => c.selector;

export const properties: Property<unknown>[] = [
  {
    name: 'grammar',
    weight: 5,
    arb: withLabels(grammar),
    check: checkSelector as (x: unknown) => void,
    show: show as (x: unknown) => string,
  },
  {
    name: 'mutated',
    weight: 3,
    arb: withLabels(mutated(seeds, tokens)),
    check: checkSelector as (x: unknown) => void,
    show: show as (x: unknown) => string,
  },
  {
    name: 'raw',
    weight: 1,
    arb: withLabels(rawText(80)),
    check: checkSelector as (x: unknown) => void,
    show: show as (x: unknown) => string,
  },
  { name: 'keys', weight: 1, arb: fc.oneof(key, rawText(40)), check: checkKey as (x: unknown) => void },
];
