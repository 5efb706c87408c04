import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseConfString } from '../../src/conf/evaluate.ts';
import { printConf, quoteValue } from '../../src/conf/printer.ts';
import type { JailSpec, ParamValue, Params } from '../../src/conf/spec.ts';

// Strings with every character jail.conf treats specially (no NUL: jail(8) strings are C strings).
const nasty = fc
  .string({
    unit: fc.oneof(
      fc.constantFrom(
        '"',
        "'",
        '\\',
        '$',
        '{',
        '}',
        ';',
        ',',
        '=',
        '#',
        '/',
        '*',
        ' ',
        '\t',
        '\n',
        '\r',
        '\x01',
        '\x7f',
        'é',
        '€',
        '💥',
        '0',
        '7',
        'x',
        '+',
      ),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    ),
    maxLength: 24,
  })
  .filter((s) => !s.includes('\0'));
const component = fc.stringMatching(/^[a-z][a-z0-9_-]{0,8}$/);
const jailName = fc.array(component, { minLength: 1, maxLength: 3 }).map((c) => c.join('.'));

// One generator per registry type, on parameters of that type.
const paramValue: fc.Arbitrary<[string, ParamValue]> = fc.oneof(
  fc.tuple(fc.constantFrom('host.hostname', 'path', 'osrelease', 'meta', 'env', 'exec.consolelog', 'skeleton'), nasty),
  fc.tuple(fc.constantFrom('securelevel'), fc.integer({ min: -1, max: 3 })),
  fc.tuple(
    fc.constantFrom('devfs_ruleset', 'children.max', 'stop.timeout', 'limits.procs'),
    fc.integer({ min: 1, max: 1_000_000 }),
  ),
  fc.tuple(fc.constantFrom('persist', 'allow.mount', 'allow.mount.zfs', 'exec.clean', 'mount.devfs'), fc.boolean()),
  fc.tuple(
    fc.constantFrom('exec.start', 'exec.prestart', 'depend', 'mount', 'skeleton.romounts'),
    fc.array(nasty, { maxLength: 4 }),
  ),
  fc.tuple(
    fc.constantFrom('ip4.addr'),
    fc.array(
      fc.ipV4().map((a) => `${a}/24`),
      { maxLength: 3 },
    ),
  ),
  fc.tuple(fc.constantFrom('ip6.addr'), fc.array(fc.ipV6(), { maxLength: 3 })),
  fc.tuple(fc.constantFrom('vnet'), fc.constantFrom('new', 'inherit')),
  fc.tuple(fc.constantFrom('sysvshm'), fc.constantFrom('new', 'inherit', 'disable')),
  fc.tuple(fc.constantFrom('limits.memory'), fc.constantFrom('256M', '1G', '1024')),
);

const spec: fc.Arbitrary<Omit<JailSpec, 'name'>> = fc.array(paramValue, { maxLength: 12 }).map((pairs) => {
  const params: Params = {};
  for (const [k, v] of pairs) params[k] = v;
  return { params };
});

const specs = fc
  .uniqueArray(fc.tuple(jailName, spec), { selector: ([n]) => n, maxLength: 5 })
  .map((list) => list.map(([name, s]): JailSpec => ({ name, params: { name, ...s.params } })));

test('evaluate(parse(printConf(specs))) deep-equals specs (fast-check)', () => {
  fc.assert(
    fc.property(specs, (s) => {
      const text = printConf(s);
      assert.deepEqual(parseConfString(text, 'printed.conf', { include: undefined }), s);
    }),
    { numRuns: 2000 },
  );
});

test('quoteValue leaves plain words bare and quotes the rest', () => {
  assert.equal(quoteValue('/var/jail/www'), '/var/jail/www');
  assert.equal(quoteValue(''), '""');
  assert.equal(quoteValue('a b'), '"a b"');
  assert.equal(quoteValue('$x"\\\n\x01'), '"\\$x\\"\\\\\\n\\001"');
  assert.equal(quoteValue('/a//b'), '"/a//b"');
});
