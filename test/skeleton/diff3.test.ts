import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { merge3, lcsMatch, splitLines } from '../../src/skeleton/diff3.ts';

const base = 'a\nb\nc\nd\ne\n';

describe('merge3', () => {
  test('only one side changed: take it', () => {
    assert.deepEqual(merge3(base, base, 'a\nB\nc\nd\ne\n'), { clean: true, text: 'a\nB\nc\nd\ne\n', conflicts: [] });
    assert.equal(merge3(base, 'a\nb\nc\nd\nE\n', base).text, 'a\nb\nc\nd\nE\n');
  });
  test('both changed different places: both kept', () => {
    const r = merge3(base, 'A\nb\nc\nd\ne\n', 'a\nb\nc\nd\nE\nf\n');
    assert.equal(r.clean, true);
    assert.equal(r.text, 'A\nb\nc\nd\nE\nf\n');
  });
  test('both made the same change: clean', () => {
    assert.equal(merge3(base, 'a\nX\nc\nd\ne\n', 'a\nX\nc\nd\ne\n').text, 'a\nX\nc\nd\ne\n');
  });
  test('insertions and deletions around', () => {
    const r = merge3(base, 'a\nc\nd\ne\n', 'a\nb\nc\nd\ne\nnew\n');
    assert.equal(r.text, 'a\nc\nd\ne\nnew\n');
  });
  test('conflict: reported with markers and the base line', () => {
    const r = merge3(base, 'a\nJAIL\nc\nd\ne\n', 'a\nNEW\nc\nd\ne\n');
    assert.equal(r.clean, false);
    assert.equal(r.conflicts.length, 1);
    assert.equal(r.conflicts[0]!.baseLine, 2);
    assert.deepEqual(r.conflicts[0]!.ours, ['JAIL\n']);
    assert.equal(r.text, 'a\n<<<<<<< jail\nJAIL\n||||||| old\nb\n=======\nNEW\n>>>>>>> new\nc\nd\ne\n');
  });
  test('missing final newline survives', () => {
    assert.equal(merge3('a\nb', 'a\nb', 'a\nc').text, 'a\nc');
  });
  test('property: unchanged side -> result is the other side; merging identical sides is that side', () => {
    const lines = fc.array(fc.constantFrom('a\n', 'b\n', 'c\n', 'd\n', ''), { maxLength: 12 }).map((l) => l.join(''));
    fc.assert(
      fc.property(lines, lines, (o, x) => {
        assert.equal(merge3(o, o, x).text, x);
        assert.equal(merge3(o, x, o).text, x);
        assert.equal(merge3(o, x, x).text, x);
      }),
      { numRuns: 300 },
    );
  });
  test('property: lcsMatch is a monotonic matching of equal lines', () => {
    const arr = fc.array(fc.constantFrom('a', 'b', 'c'), { maxLength: 15 });
    fc.assert(
      fc.property(arr, arr, (a, b) => {
        const m = lcsMatch(a, b);
        let last = -1;
        m.forEach((j, i) => {
          if (j < 0) return;
          assert.equal(a[i], b[j]);
          assert.ok(j > last);
          last = j;
        });
      }),
    );
  });
  test('splitLines keeps terminators', () => {
    assert.deepEqual(splitLines('x\ny'), ['x\n', 'y']);
    assert.deepEqual(splitLines(''), []);
  });
});
