import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JailyardError, describeError, withContext } from '../src/errors.ts';
import { checkRevision } from '../src/store/revision.ts';

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

test("an error's output (a jail's own, from a hook inside it) is shown printable: no terminal controls", () => {
  const e = new JailyardError('JY_ERR_STEP_FAILED', 'exec.start failed with status 3', {
    jail: 'b5',
    output: 'A\x1b]0;TITLE\x07B\x1b[31mRED\r\nnext\tline\n',
  });
  assert.equal(
    e.describe(),
    'jail "b5": exec.start failed with status 3\nA\\x1b]0;TITLE\\x07B\\x1b[31mRED\r\nnext\tline\n',
  );
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

test('describeError: the place first for a JailyardError, the message of a plain Error, the name of others', () => {
  assert.equal(describeError(new JailyardError('JY_ERR_MOUNT', 'busy', { jail: 'www' })), 'jail "www": busy');
  assert.equal(describeError(new Error('ENOENT: no such file')), 'ENOENT: no such file');
  assert.equal(describeError(new TypeError('x is not a function')), 'TypeError: x is not a function');
  assert.equal(describeError('a string'), 'a string');
});

test('withContext: a new error with text and place added; the original is unchanged and is its cause', () => {
  const e = new JailyardError('JY_ERR_ADDRESS', 'adding x failed', { step: 'addresses', param: 'ip4.addr' });
  const w = withContext(e, { before: 'net: ', after: '; undo failed too', place: { jail: 'www', param: 'ip6.addr' } });
  assert.equal(w.message, 'net: adding x failed; undo failed too');
  assert.equal(w.code, 'JY_ERR_ADDRESS');
  assert.deepEqual(w.place, { step: 'addresses', param: 'ip6.addr', jail: 'www' });
  assert.equal(w.cause, e);
  assert.equal(e.message, 'adding x failed');
  assert.deepEqual(e.place, { step: 'addresses', param: 'ip4.addr' });
});

test('checkRevision: nothing without an expected revision or at it; else the one conflict text', () => {
  checkRevision({ name: 'www', revision: 4 }, undefined);
  checkRevision({ name: 'www', revision: 4 }, 4);
  assert.throws(
    () => checkRevision({ name: 'www', revision: 4 }, 3),
    (e: unknown) =>
      e instanceof JailyardError &&
      e.code === 'JY_ERR_REVISION_CONFLICT' &&
      e.httpStatus === 412 &&
      e.describe() === 'jail "www": revision conflict: expected revision 3, jail is at revision 4',
  );
});
