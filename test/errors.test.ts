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

test('docs/errors.md lists exactly the registered codes, with their HTTP status', async () => {
  const { readFileSync } = await import('node:fs');
  const { ERROR_CODES } = await import('../src/errors.ts');
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const rows = [...doc.matchAll(/^\| `(JY_ERR_[A-Z_]+)` \| (\d+) \|/gm)].map((m) => [m[1], Number(m[2])]);
  assert.deepEqual(Object.fromEntries(rows), { ...ERROR_CODES });
});

test('every code used in the sources is registered', async () => {
  const { readFileSync, readdirSync } = await import('node:fs');
  const { ERROR_CODES } = await import('../src/errors.ts');
  const files = readdirSync(new URL('../src', import.meta.url), { recursive: true, withFileTypes: false }) as string[];
  const used = new Set<string>();
  for (const f of files.filter((f) => f.endsWith('.ts'))) {
    for (const m of readFileSync(new URL(`../src/${f}`, import.meta.url), 'utf8').matchAll(/JY_ERR_[A-Z_]+/g))
      used.add(m[0]);
  }
  const unknown = [...used].filter((c) => !(c in ERROR_CODES));
  assert.deepEqual(unknown, []);
});
