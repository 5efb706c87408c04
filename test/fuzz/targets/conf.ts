// jail.conf: src/conf/lexer.ts, parser.ts and evaluate.ts (typing, variables, wildcards).
// Oracle: the text is accepted, and then its printed form (printConf) reads back to the same
// specs; or it is refused with a JailyardError placed at file:line:col inside the text.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseConfString } from '../../../src/conf/evaluate.ts';
import { PARAMS } from '../../../src/conf/params.ts';
import { printConf } from '../../../src/conf/printer.ts';
import type { JailSpec } from '../../../src/conf/spec.ts';
import { isJailyardError } from '../../../src/errors.ts';
import { assertInside, type Property } from '../harness.ts';
import { filesOf, literalsOf, mutated, rawText } from './corpus.ts';

const FILE = 'fuzz.conf';
// includes are refused (no loader): random input never reads the disk
const noIncludes = { include: undefined };

export function checkConf(text: string): void {
  let specs: JailSpec[];
  try {
    specs = parseConfString(text, FILE, noIncludes);
  } catch (e) {
    if (!isJailyardError(e)) throw e;
    assert.notEqual(e.code, 'JY_ERR_INTERNAL', e.message);
    const pos = e.place.pos;
    assert.ok(pos, `${e.code} without a position: ${e.message}`);
    assert.equal(pos.file, FILE);
    assertInside(text, pos.line, pos.col, `${e.code} ${e.message}`);
    return;
  }
  const printed = printConf(specs);
  let again: JailSpec[];
  try {
    again = parseConfString(printed, 'printed.conf', noIncludes);
  } catch (e) {
    throw new Error(`the printed form of an accepted text is refused: ${(e as Error).message}\n${printed}`);
  }
  assert.deepEqual(again, specs, `printed form differs:\n${printed}`);
}

// ------------------------------------------------------------------ grammar-aware texts
// Mostly well-formed (so most texts reach the evaluator: wildcards, variables, typing,
// += and immutables), with a small share of broken punctuation; the mutation property
// covers syntax errors at large.

const ws = fc.constantFrom(' ', ' ', ' ', '\t', '\n', '\r\n', '  ', '\n\n', ' /* c */ ', ' # c\n', ' // c\n', '');
const sep = fc.constantFrom(' ', ' ', '\n', '\t', '\n  ');
const names = [...PARAMS.keys()];
const boolNames = names.filter((n) => PARAMS.get(n)!.type === 'bool');
const rare = <T>(usual: fc.Arbitrary<T>, broken: fc.Arbitrary<T>): fc.Arbitrary<T> =>
  fc.oneof({ arbitrary: usual, weight: 150 }, { arbitrary: broken, weight: 1 });
const jailName = fc.oneof(
  { arbitrary: fc.constantFrom('www', 'db', 'a', 'web1', 'j_2', 'x.y', 'a.b', 'web2'), weight: 40 },
  { arbitrary: fc.constantFrom('*', 'web*', '*.x', '"quoted"', "'q'", 'w*b'), weight: 3 },
  fc.constantFrom('0', '-', '..', 'a/b', '$name', '"a b"', 'é', 'a..b', '.a'),
  fc.stringMatching(/^[a-z][a-z0-9_]{0,6}$/),
);
const ident = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_.:-]{1,10}$/), fc.stringMatching(/^(\/[a-z0-9._-]{1,6}){1,3}$/));
const str = fc.string({ maxLength: 12 }).map((x) => `"${x.replace(/["\\$]/g, '')}"`);
const ints = fc.oneof(
  fc.integer({ min: -5, max: 70000 }).map(String),
  fc.constantFrom('0', '-1', '99999999999999999999', '0x10', '017', '1e3', '+5', '', 'x'),
);
const sizes = fc.oneof(
  fc
    .tuple(fc.integer({ min: 0, max: 4096 }), fc.constantFrom('', 'K', 'M', 'G', 'T', 'k', 'b', 'X'))
    .map(([n, u]) => `${n}${u}`),
  fc.constantFrom('1.5G', '-1K', '0', '99999999999999999999T', 'max'),
);
const bools = fc.constantFrom('true', 'false', '1', '0', 'yes', 'no', '2', '"true"');
const addrs = fc.oneof(
  fc
    .tuple(fc.integer({ min: 120, max: 124 }), fc.constantFrom('', '/24', '/32', '/33', '/0'))
    .map(([h, m]) => `198.51.100.${h}${m}`),
  fc.constantFrom(
    'lo|198.51.100.122/32',
    'eth0|198.51.100.123',
    '198.51.100.999/24',
    '2001:db8::1/64',
    '::1',
    'fe80::1%lo',
    '1.2.3',
    'x|',
    '|198.51.100.120',
  ),
);
const jailsys = fc.constantFrom('new', 'inherit', 'disable', '0', '1', '2', 'other');
const anyValue = fc.oneof(
  { arbitrary: ident, weight: 3 },
  { arbitrary: str, weight: 2 },
  fc.constantFrom(
    '/usr/jail/$name',
    '"/var/jail/${name}"',
    '${host.hostname}',
    '"$x.y"',
    '$x',
    '$undefined',
    '"${path}/etc"',
    '"a\\nb"',
    '"\\x41\\101\\t"',
    '"a"\'b\'',
    '"sh /etc/rc"',
  ),
);
const typed = (name: string): fc.Arbitrary<string> => {
  const t = PARAMS.get(name.replace(/^no/, ''))?.type;
  const list = (v: fc.Arbitrary<string>) =>
    fc
      .array(v, { minLength: 1, maxLength: 3 })
      .chain((vs) => fc.constantFrom(', ', ',', ' ,\n').map((j) => vs.join(j)));
  switch (t) {
    case 'int':
      return ints;
    case 'size':
      return sizes;
    case 'bool':
      return bools;
    case 'addrlist':
      return list(addrs);
    case 'jailsys':
      return jailsys;
    case 'list':
      return list(anyValue);
    default:
      return anyValue;
  }
};
const assignment = fc
  .oneof(
    { arbitrary: fc.constantFrom(...names), weight: 8 },
    { arbitrary: fc.constantFrom(...boolNames).map((n) => `no${n}`), weight: 1 },
    fc.constantFrom('nosuch.param', 'allow.nosuch', 'x', 'pathx'),
  )
  .chain((name) =>
    fc.oneof(
      {
        arbitrary: fc
          .tuple(
            fc.constant(name),
            ws,
            fc.constantFrom('=', '+=', '=', '='),
            ws,
            fc.oneof({ arbitrary: typed(name), weight: 5 }, anyValue),
          )
          .map((p) => p.join('')),
        weight: 6,
      },
      { arbitrary: fc.constant(name), weight: 2 },
      fc.tuple(fc.constant(name), fc.constant(' '), typed(name)).map((p) => p.join('')),
    ),
  );
const variable = fc
  .tuple(fc.constantFrom('$x', '$y', '${x}', '$name'), ws, fc.constantFrom('=', '+='), ws, anyValue)
  .map((p) => p.join(''));
const param = fc.oneof(
  { arbitrary: assignment, weight: 30 },
  { arbitrary: variable, weight: 2 },
  {
    arbitrary: fc.constantFrom('.include "x.conf"', 'name = other', 'jid = 5', 'jid = 0', 'path = "/a", "/b"'),
    weight: 1,
  },
);
const stmt = fc.tuple(param, ws, rare(fc.constant(';'), fc.constantFrom('', ';;', ','))).map((p) => p.join(''));

const { block } = fc.letrec<{ block: string; body: string }>((tie) => ({
  body: fc
    .array(fc.oneof({ arbitrary: stmt, weight: 6 }, { arbitrary: tie('block'), weight: 1 }), { maxLength: 6 })
    .chain((xs) => ws.map((w) => xs.join(w))),
  block: fc
    .tuple(
      jailName,
      ws,
      rare(fc.constant('{'), fc.constant('')),
      ws,
      tie('body'),
      ws,
      rare(fc.constantFrom('}', '};'), fc.constant('')),
    )
    .map((p) => p.join('')),
}));

const grammar = fc
  .array(fc.oneof({ arbitrary: block, weight: 4 }, { arbitrary: stmt, weight: 2 }), { minLength: 1, maxLength: 4 })
  .chain((xs) => sep.map((s) => xs.join(s)));

// ------------------------------------------------------------------ mutation and raw bytes

const seeds = [
  ...filesOf('examples/', '.conf').filter((t) => !t.includes('jail_list')),
  ...literalsOf('test/conf/', (s) => s.length > 4 && /[;{]/.test(s) && !s.includes('jail_')),
];
const tokens = [
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
  '/*',
  '*/',
  '//',
  '#',
  '\n',
  ' ',
  '*',
  'no',
  '.',
  '$name',
  '\x00',
  'é',
  '\ud800',
  'persist',
  'path',
  '.include',
  'ip4.addr',
  'mount.fstab',
  'limits.memory',
  'exec.start',
  'depend',
  'meta',
  'env',
  'meta.k=v',
];

export const properties: Property[] = [
  { name: 'grammar', weight: 4, arb: grammar, check: checkConf },
  { name: 'mutated', weight: 4, arb: mutated(seeds, tokens), check: checkConf },
  { name: 'raw', weight: 2, arb: rawText(), check: checkConf },
];
export const seedCount = seeds.length;
