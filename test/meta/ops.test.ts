// FreeBSD tests/sys/kern/jailmeta.sh, case by case, through the pure functions.
// jail(8) words are parsed with parseMetaWord, applied with applyMetaOps; `jls -jj meta.k`
// is readMetaKey. The store-level versions (create, modify, inheritance) are in test/store.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { applyMetaOps, parseMetaWord, readMetaKey, metaBufferSize, type MetaOp } from '../../src/meta/ops.ts';
import { JailyardError } from '../../src/errors.ts';

const MAX = 4096;

/** A jail's two buffers, edited like `jail -m name=j WORD...`. */
function jail(meta = '', env = '') {
  const j = { meta, env };
  return {
    j,
    m(...words: string[]) {
      const ops: Record<'meta' | 'env', MetaOp[]> = { meta: [], env: [] };
      for (const w of words) {
        const parsed = parseMetaWord(w);
        assert.ok(parsed, `not a meta word: ${w}`);
        ops[parsed.param].push(parsed.op);
      }
      const meta2 = applyMetaOps(j.meta, ops.meta, max.value);
      const env2 = applyMetaOps(j.env, ops.env, max.value);
      j.meta = meta2;
      j.env = env2;
    },
    /** `jls -jj NAME`: the whole buffer or one key ('' for a missing key). */
    ls(name: string): string {
      const parsed = parseMetaWord(name)!;
      const buf = j[parsed.param];
      if (parsed.op.op === 'replace') return buf;
      return readMetaKey(buf, (parsed.op as { key: string }).key) ?? '';
    },
  };
}
const max = { value: MAX };

function expectCode(fn: () => unknown, code: string, check?: (e: JailyardError) => void): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof JailyardError, String(e));
    assert.equal(e.code, code);
    check?.(e);
    return true;
  });
}

describe('jailmeta.sh', () => {
  test('jail_create: meta="a b c" env="C B A"', () => {
    const t = jail();
    t.m('meta=a b c', 'env=C B A');
    assert.equal(t.ls('meta'), 'a b c');
    assert.equal(t.ls('env'), 'C B A');
  });

  test('jail_modify: tabs kept; whole buffers replaced', () => {
    const t = jail();
    t.m('meta=a\tb\tc', 'env=CAB');
    assert.equal(t.ls('meta'), 'a\tb\tc');
    assert.equal(t.ls('env'), 'CAB');
    t.m('meta=t1=A t2=B', 'env=CAB2');
    assert.equal(t.ls('meta'), 't1=A t2=B');
    assert.equal(t.ls('env'), 'CAB2');
  });

  test('jail_add: empty at first, then multi-line values', () => {
    const t = jail();
    assert.equal(t.ls('meta'), '');
    assert.equal(t.ls('env'), '');
    t.m('meta=1\n2\n3', 'env=11\n12');
    assert.equal(t.ls('meta'), '1\n2\n3');
    assert.equal(t.ls('env'), '11\n12');
  });

  test('jail_reset: meta= env= empty the buffers', () => {
    const t = jail();
    t.m('meta=123', 'env=456');
    t.m('meta=', 'env=');
    assert.equal(t.ls('meta'), '');
    assert.equal(t.ls('env'), '');
  });

  test('bare `meta env` words (jail -c name=j persist meta env) give empty buffers', () => {
    const t = jail('x', 'y');
    t.m('meta', 'env');
    assert.deepEqual(t.j, { meta: '', env: '' });
  });

  test('flua_create / flua_modify: the same buffers through the library API', () => {
    assert.equal(applyMetaOps('', [{ op: 'replace', value: 't1 t2=v2' }], MAX), 't1 t2=v2');
    assert.equal(applyMetaOps('ABC', [{ op: 'replace', value: 't1 t2=v' }], MAX), 't1 t2=v');
    assert.equal(applyMetaOps('123', [{ op: 'replace', value: '4' }], MAX), '4');
  });

  test('maxbufsize: 4095 bytes accepted, 4096 "too large", raise to 4097, lower back keeps values', () => {
    max.value = MAX;
    try {
      const t = jail();
      t.m(`meta=${' '.repeat(MAX - 1)}`);
      assert.equal(t.ls('meta').length + 1, MAX); // `jls | wc -c` counts the newline
      t.m(`env=${' '.repeat(MAX - 1)}`);
      assert.equal(t.ls('env').length + 1, MAX);
      for (const p of ['meta', 'env']) {
        expectCode(
          () => t.m(`${p}=${' '.repeat(MAX)}`),
          'JY_ERR_META_TOO_LARGE',
          (e) => assert.match(e.message, /too large/),
        );
      }
      assert.equal(t.j.meta.length, MAX - 1, 'a refused write changes nothing');
      max.value = MAX + 1;
      t.m(`meta=${' '.repeat(MAX)}`);
      t.m(`env=${' '.repeat(MAX)}`);
      assert.equal(t.ls('meta').length + 1, MAX + 1);
      max.value = MAX;
      for (const p of ['meta', 'env']) {
        expectCode(() => t.m(`${p}=${' '.repeat(MAX)}`), 'JY_ERR_META_TOO_LARGE');
      }
      // previously set long values stay readable as they are
      assert.equal(t.ls('meta').length, MAX);
      assert.equal(t.ls('env').length, MAX);
    } finally {
      max.value = MAX;
    }
  });

  for (const p of ['meta', 'env']) {
    test(`keyvalue (${p}): every sub-case in order`, () => {
      const t = jail();
      assert.equal(t.ls(p), '');
      // a key added manually
      t.m(`${p}=a=1`);
      assert.equal(t.ls(p), 'a=1');
      assert.equal(t.ls(`${p}.a`), '1');
      t.m(`${p}=a=2\nb=3`);
      assert.equal(t.ls(p), 'a=2\nb=3');
      assert.equal(t.ls(`${p}.a`), '2');
      assert.equal(t.ls(`${p}.b`), '3');
      // nothing for a non-found key
      assert.equal(t.ls(`${p}.c`), '');
      assert.equal(readMetaKey(t.j[p as 'meta'], 'c'), undefined, 'JSON leaves a missing key out');
      // several keys at once, and keys with the whole buffer
      assert.deepEqual([t.ls(`${p}.b`), t.ls(`${p}.a`)], ['3', '2']);
      assert.deepEqual([t.ls(`${p}.b`), t.ls(p), t.ls(`${p}.a`)], ['3', 'a=2\nb=3', '2']);
      // nil for a non-found key (flua)
      assert.equal(readMetaKey(t.j[p as 'meta'], 'meta'), undefined);
      // resetting a buffer
      t.m(`${p}=`);
      assert.deepEqual([t.ls(`${p}.c`), t.ls(p), t.ls(`${p}.a`)], ['', '', '']);
      // adding a new key
      t.m(`${p}.a=1`);
      assert.equal(t.ls(`${p}.a`), '1');
      assert.equal(t.ls(p), 'a=1');
      // adding several new keys at once
      t.m(`${p}.c=3`, `${p}.b=2`);
      assert.equal(t.ls(`${p}.c`), '3');
      assert.equal(t.ls(`${p}.b`), '2');
      assert.equal(t.ls(p), 'b=2\nc=3\na=1');
      // replacing existing keys
      t.m(`${p}.a=A`, `${p}.c=C`);
      assert.equal(t.ls(`${p}.a`), 'A');
      assert.equal(t.ls(`${p}.c`), 'C');
      assert.equal(t.ls(p), 'c=C\na=A\nb=2');
      // empty value
      t.m(`${p}.a=`);
      assert.equal(t.ls(`${p}.a`), '');
      assert.equal(readMetaKey(t.j[p as 'meta'], 'a'), '', 'present with an empty value');
      assert.equal(t.ls(p), 'a=\nc=C\nb=2');
      // NULL value = key removal
      assert.equal(t.ls(`${p}.b`), '2');
      t.m(`${p}.b`);
      assert.equal(t.ls(`${p}.b`), '');
      assert.equal(t.ls(p), 'a=\nc=C');
      // whole buffer and keys at once: order matters
      t.m(`${p}.a=1`, `${p}=ttt`, `${p}.b=2`);
      assert.equal(t.ls(`${p}.a`), '');
      assert.equal(t.ls(`${p}.b`), '2');
      assert.equal(t.ls(p), 'b=2\nttt');
      // only the first equal sign is syntax
      t.m(`${p}.b==`);
      assert.equal(t.ls(`${p}.b`), '=');
      assert.equal(t.ls(p), 'b==\nttt');
      // adding/modifying keys through the library (flua)
      t.j[p as 'meta'] = applyMetaOps(
        t.j[p as 'meta'],
        [
          { op: 'set', key: 'b', value: 'ttt' },
          { op: 'set', key: 'c', value: 'C' },
        ],
        MAX,
      );
      assert.equal(t.ls(`${p}.b`), 'ttt');
      assert.equal(t.ls(`${p}.c`), 'C');
      // key removal through the library
      t.j[p as 'meta'] = applyMetaOps(t.j[p as 'meta'], [{ op: 'remove', key: 'c' }], MAX);
      assert.equal(t.ls(`${p}.c`), '');
      t.j[p as 'meta'] = applyMetaOps(t.j[p as 'meta'], [{ op: 'remove', key: 'b' }], MAX);
      assert.equal(t.ls(`${p}.b`), '');
      assert.equal(t.ls(p), 'ttt');
    });
  }

  test("keyvalue_contention (sequential form): writers of distinct keys keep each other's keys", () => {
    let meta = '';
    let env = '';
    for (let it = 0; it < 8; it++) {
      meta = applyMetaOps(meta, [{ op: 'replace', value: 'meta=META' }], MAX);
      env = applyMetaOps(env, [{ op: 'replace', value: 'env=ENV' }], MAX);
      for (let k = 0; k < 5; k++) {
        meta = applyMetaOps(meta, [{ op: 'set', key: 'a', value: '1' }], MAX);
        meta = applyMetaOps(meta, [{ op: 'set', key: 'b', value: '2' }], MAX);
        env = applyMetaOps(env, [{ op: 'set', key: 'c', value: '3' }], MAX);
        env = applyMetaOps(env, [{ op: 'set', key: 'd', value: '4' }], MAX);
      }
      assert.equal(readMetaKey(meta, 'a'), '1');
      assert.equal(readMetaKey(meta, 'b'), '2');
      assert.equal(readMetaKey(env, 'c'), '3');
      assert.equal(readMetaKey(env, 'd'), '4');
      assert.equal(readMetaKey(meta, 'meta'), 'META');
      assert.equal(readMetaKey(env, 'env'), 'ENV');
    }
  });
});

describe('applyMetaOps edge cases (kern_jailmeta.c hunk model)', () => {
  test('an empty key is EINVAL -> JY_ERR_META_KEY, nothing changes', () => {
    expectCode(
      () => parseMetaWord('meta.=x'),
      'JY_ERR_META_KEY',
      (e) => assert.equal(e.place.param, 'meta'),
    );
    expectCode(() => parseMetaWord('env.'), 'JY_ERR_META_KEY');
    expectCode(
      () =>
        applyMetaOps(
          'a=1',
          [
            { op: 'set', key: 'b', value: '2' },
            { op: 'set', key: '', value: 'x' },
          ],
          MAX,
        ),
      'JY_ERR_META_KEY',
    );
    expectCode(() => applyMetaOps('a=1', [{ op: 'remove', key: '' }], MAX), 'JY_ERR_META_KEY');
  });

  test('size counts the trailing NUL, in bytes (UTF-8)', () => {
    assert.equal(applyMetaOps('', [{ op: 'replace', value: 'x'.repeat(9) }], 10), 'x'.repeat(9));
    expectCode(() => applyMetaOps('', [{ op: 'replace', value: 'x'.repeat(10) }], 10), 'JY_ERR_META_TOO_LARGE');
    // é is 2 bytes: 4 × 2 + 1 = 9 fits, 5 × 2 + 1 = 11 does not
    assert.equal(applyMetaOps('', [{ op: 'replace', value: 'é'.repeat(4) }], 10), 'éééé');
    expectCode(() => applyMetaOps('', [{ op: 'replace', value: 'é'.repeat(5) }], 10), 'JY_ERR_META_TOO_LARGE');
    // key set: "k=vvvvvvv" + NUL = 10
    assert.equal(applyMetaOps('', [{ op: 'set', key: 'k', value: 'v'.repeat(7) }], 10), 'k=vvvvvvv');
    expectCode(
      () => applyMetaOps('', [{ op: 'set', key: 'k', value: 'v'.repeat(8) }], 10),
      'JY_ERR_META_TOO_LARGE',
      (e) => assert.equal(e.place.key, undefined),
    );
    // the whole result counts: existing lines + new line
    expectCode(() => applyMetaOps('a=1234', [{ op: 'set', key: 'b', value: '1' }], 10), 'JY_ERR_META_TOO_LARGE');
    // an intermediate value above the limit is refused even if a later op shrinks the buffer
    expectCode(
      () =>
        applyMetaOps(
          '',
          [
            { op: 'replace', value: 'x'.repeat(20) },
            { op: 'replace', value: '' },
          ],
          10,
        ),
      'JY_ERR_META_TOO_LARGE',
    );
    assert.equal(metaBufferSize(''), 0);
    assert.equal(metaBufferSize('é'), 3);
  });

  test('a removal that shrinks an over-limit buffer is accepted; no ops keep it as is', () => {
    const big = `a=${'x'.repeat(20)}\nb=1`;
    assert.equal(applyMetaOps(big, [], 10), big);
    assert.equal(applyMetaOps(big, [{ op: 'remove', key: 'a' }], 10), 'b=1');
  });

  test('no character restrictions: spaces, tabs, newlines, "=" in values are verbatim', () => {
    const v = applyMetaOps('', [{ op: 'set', key: 'k y', value: ' a\tb = c ' }], MAX);
    assert.equal(v, 'k y= a\tb = c ');
    assert.equal(readMetaKey(v, 'k y'), ' a\tb = c ');
  });

  test('every KEY= line is removed, not lines merely containing KEY', () => {
    const buf = 'a=1\nxa=2\na=3\nab=4\na\na=5';
    assert.equal(applyMetaOps(buf, [{ op: 'set', key: 'a', value: 'N' }], MAX), 'a=N\nxa=2\nab=4\na');
    assert.equal(applyMetaOps(buf, [{ op: 'remove', key: 'a' }], MAX), 'xa=2\nab=4\na');
  });

  test('trailing newline and empty lines follow the kernel byte for byte', () => {
    // the cut last line takes the newline before the end with it: the kernel keeps "x\n"
    // as a hunk and the seal drops its last byte
    assert.equal(applyMetaOps('x\nk=1', [{ op: 'remove', key: 'k' }], MAX), 'x');
    assert.equal(applyMetaOps('k=1\n', [{ op: 'set', key: 'k', value: '2' }], MAX), 'k=2');
    assert.equal(applyMetaOps('k=1\n\nx', [{ op: 'remove', key: 'k' }], MAX), '\nx');
    assert.equal(applyMetaOps('x\n', [{ op: 'set', key: 'k', value: '1' }], MAX), 'k=1\nx\n');
    assert.equal(applyMetaOps('k=1', [{ op: 'remove', key: 'k' }], MAX), '');
    assert.equal(applyMetaOps('', [{ op: 'remove', key: 'k' }], MAX), '');
    assert.equal(applyMetaOps('k=1\nk=2\nk=3', [{ op: 'remove', key: 'k' }], MAX), '');
  });

  test('readMetaKey: last line wins like the kernel getter; a missing key is undefined', () => {
    assert.equal(readMetaKey('a=1\na=2', 'a'), '2');
    assert.equal(readMetaKey('xa=1', 'a'), undefined);
    assert.equal(readMetaKey('a', 'a'), undefined);
    assert.equal(readMetaKey('', 'a'), undefined);
    expectCode(() => readMetaKey('a=1', ''), 'JY_ERR_META_KEY');
  });

  test('parseMetaWord: names, values, non-meta words', () => {
    assert.deepEqual(parseMetaWord('meta=a b'), { param: 'meta', op: { op: 'replace', value: 'a b' } });
    assert.deepEqual(parseMetaWord('env='), { param: 'env', op: { op: 'replace', value: '' } });
    assert.deepEqual(parseMetaWord('meta.k=v=w'), { param: 'meta', op: { op: 'set', key: 'k', value: 'v=w' } });
    assert.deepEqual(parseMetaWord('env.k='), { param: 'env', op: { op: 'set', key: 'k', value: '' } });
    assert.deepEqual(parseMetaWord('meta.k'), { param: 'meta', op: { op: 'remove', key: 'k' } });
    assert.deepEqual(parseMetaWord('meta.a.b=1'), { param: 'meta', op: { op: 'set', key: 'a.b', value: '1' } });
    assert.equal(parseMetaWord('metadata=1'), undefined);
    assert.equal(parseMetaWord('host.hostname=x'), undefined);
    assert.equal(parseMetaWord('persist'), undefined);
  });
});
