// rc.conf importer: src/conf/shellvars.ts (sh quoting and expansion without a shell) and
// src/conf/rcconf.ts (rc.d/jail's mapping). Oracle: accepted, and the jail.conf it writes
// reads back (parseConfString) to the same specs; or a JailyardError placed at
// file:line:col inside the text.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseConfString } from '../../../src/conf/evaluate.ts';
import { importRcConf, importRcConfSpecs } from '../../../src/conf/rcconf.ts';
import type { JailSpec } from '../../../src/conf/spec.ts';
import { isJailyardError } from '../../../src/errors.ts';
import { assertInside, type Property } from '../harness.ts';
import { filesOf, literalsOf, mutated, rawText } from './corpus.ts';

const FILE = 'rc.conf';
const options = { platform: 'freebsd' as const };

export function checkRc(text: string): void {
  let specs: JailSpec[];
  try {
    specs = importRcConfSpecs(text, FILE, options).specs;
  } catch (e) {
    if (!isJailyardError(e)) throw e;
    assert.notEqual(e.code, 'JY_ERR_INTERNAL', e.message);
    const pos = e.place.pos;
    assert.ok(pos, `${e.code} without a position: ${e.message} ${JSON.stringify(e.place)}`);
    assert.equal(pos.file, FILE);
    assertInside(text, pos.line, pos.col, `${e.code} ${e.message}`);
    return;
  }
  const conf = importRcConf(text, FILE, options);
  let again: JailSpec[];
  try {
    again = parseConfString(conf, 'imported.conf', { include: undefined });
  } catch (e) {
    throw new Error(`the jail.conf written for an accepted rc.conf is refused: ${(e as Error).message}\n${conf}`);
  }
  assert.deepEqual(again, specs, `imported jail.conf differs:\n${conf}`);
}

// ------------------------------------------------------------------ grammar-aware texts

const jails = ['www', 'ns', 'db', 'a_b', 'a.b', 'x/y', 'web1'];
const listed = fc
  .subarray(jails, { minLength: 0, maxLength: 4 })
  .chain((js) => fc.constantFrom(' ', '  ', '\t').map((s) => js.join(s)));
const suffixes = [
  'rootdir',
  'hostname',
  'ip',
  'ip_multi0',
  'ip_multi1',
  'interface',
  'fib',
  'exec_start',
  'exec_stop',
  'exec',
  'exec_afterstart0',
  'exec_afterstart1',
  'exec_prestart0',
  'exec_prestart1',
  'exec_poststart0',
  'exec_prestop0',
  'exec_poststop0',
  'consolelog',
  'fstab',
  'devfs_enable',
  'devfs_ruleset',
  'fdescfs_enable',
  'procfs_enable',
  'mount_enable',
  'set_hostname_allow',
  'sysvipc_allow',
  'enforce_statfs',
  'osreldate',
  'osrelease',
  'parameters',
  'skel_enable',
  'skel_root',
  'skel_romounts',
  'skel_rwmounts',
  'socket_unixiproute_only',
  'vnet_interface',
];
const yesNo = fc.constantFrom('YES', 'NO', 'yes', 'no', 'true', '1', '0', 'on', 'off', '');
const addr = fc.oneof(
  fc.integer({ min: 120, max: 124 }).map((h) => `198.51.100.${h}`),
  fc.constantFrom(
    '198.51.100.120/24',
    'em0|198.51.100.121',
    'em0|198.51.100.122/255.255.255.0',
    '198.51.100.123 netmask 255.255.255.0',
    '2001:db8::1',
    'em1|2001:db8::2/64',
    '198.51.100.999',
    'a|b|198.51.100.120',
    '|',
    '1.2.3',
    'x',
  ),
);
const word = fc.stringMatching(/^[A-Za-z0-9_./:=-]{0,12}$/);
const valueFor = (suffix: string): fc.Arbitrary<string> => {
  if (/enable|allow|only$/.test(suffix)) return yesNo;
  if (/^ip/.test(suffix)) return fc.array(addr, { minLength: 1, maxLength: 3 }).map((a) => a.join(','));
  if (/fib|ruleset|statfs|osreldate/.test(suffix))
    return fc.oneof(
      fc.integer({ min: -2, max: 2000000 }).map(String),
      fc.constantFrom('devfsrules_jail', 'x', '', '99999999999999999999'),
    );
  if (suffix === 'parameters')
    return fc
      .array(
        fc.constantFrom(
          'allow.sysvipc=1',
          'children.max=2',
          'meta.k=v',
          'env.k=v',
          'meta=x',
          'persist',
          'nopersist',
          'allow.nosuch=1',
          'limits.memory=1G',
          'x',
          '=',
          'path=/x;',
          'ip4.addr=198.51.100.120',
        ),
        { maxLength: 3 },
      )
      .map((a) => a.join(' '));
  if (/romounts|rwmounts|vnet_interface/.test(suffix)) return fc.array(word, { maxLength: 3 }).map((a) => a.join(' '));
  return fc.oneof(word, fc.constantFrom('/usr/jail/www', '/bin/sh /etc/rc', 'www.example.org', '$x', '${x:-dflt}'));
};
const quote = (v: string): fc.Arbitrary<string> =>
  fc.constantFrom(
    `"${v.replace(/["\\$`]/g, '')}"`,
    `'${v.replace(/'/g, '')}'`,
    /^[^\s"'`$\\;|&<>()#]*$/.test(v) ? v : `"${v.replace(/["\\$`]/g, '')}"`,
  );
const assign = (name: string, value: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.tuple(fc.constantFrom('', '', '', 'export '), value.chain(quote)).map(([e, v]) => `${e}${name}=${v}`);
const varOf = (j: string, suffix: string) => `jail_${j.replace(/[^A-Za-z0-9]/g, '_')}_${suffix}`;
const other = fc.constantFrom(
  'jail_enable="YES"',
  '# a comment',
  'x=1',
  'x="$x y"',
  'y=${x}z',
  'z=${nope:-d}',
  'w=${x-d}',
  'a=$(id)',
  'b=`id`',
  'if true; then x=1; fi',
  'c="${x',
  'd=${}',
  'e="unterminated',
  "f='unterminated",
);
/** Lines about the listed jails: each mostly with the rootdir and hostname rc.d/jail needs,
 * then any of its variables (and the global jail_* defaults). */
const linesFor = (js: string[]): fc.Arbitrary<string[]> =>
  fc
    .tuple(
      fc.array(fc.oneof({ arbitrary: fc.constant(true), weight: 19 }, fc.constant(false)), {
        minLength: js.length,
        maxLength: js.length,
      }),
      fc.array(
        fc.oneof(
          {
            arbitrary: fc
              .tuple(fc.constantFrom(...js), fc.constantFrom(...suffixes))
              .chain(([j, x]) => assign(varOf(j, x), valueFor(x))),
            weight: 12,
          },
          { arbitrary: fc.constantFrom(...suffixes).chain((x) => assign(`jail_${x}`, valueFor(x))), weight: 2 },
          { arbitrary: other, weight: 1 },
        ),
        { maxLength: 12 },
      ),
    )
    .chain(([complete, rest]) =>
      fc
        .tuple(
          ...js.map((j, i) =>
            complete[i]
              ? fc
                  .tuple(
                    assign(varOf(j, 'rootdir'), valueFor('rootdir')),
                    assign(varOf(j, 'hostname'), valueFor('hostname')),
                  )
                  .map((x) => [...x])
              : fc.constant([] as string[]),
          ),
        )
        .map((need) => [...need.flat(), ...rest]),
    )
    .chain((lines) => fc.shuffledSubarray(lines, { minLength: lines.length, maxLength: lines.length }));
const grammar = fc
  .subarray(jails, { minLength: 1, maxLength: 3 })
  .chain((js) =>
    fc.tuple(
      assign('jail_list', fc.oneof({ arbitrary: fc.constant(js.join(' ')), weight: 8 }, listed)),
      linesFor(js),
      fc.array(fc.constantFrom('\n', '\n', '; ', ' ', '\n\n', ' # c\n'), { minLength: 40, maxLength: 40 }),
    ),
  )
  .map(([first, rest, seps]) => [first, ...rest].map((l, i) => `${l}${seps[i % seps.length]}`).join(''));

// ------------------------------------------------------------------ mutation and raw bytes

const seeds = [
  ...filesOf('examples/', '.conf').filter((t) => t.includes('jail_list')),
  ...literalsOf('test/conf/', (s) => s.length > 4 && s.includes('=') && (s.includes('jail_') || /^[a-z]+=/.test(s))),
];
const tokens = [
  '"',
  "'",
  '\\',
  '$',
  '${',
  '}',
  '${x:-',
  '$(',
  '`',
  ';',
  '#',
  '\n',
  ' ',
  '=',
  '|',
  ',',
  '/',
  'jail_',
  '_ip',
  'YES',
  '\x00',
  'é',
  'export ',
  'jail_list="www"\n',
];

export const properties: Property[] = [
  { name: 'grammar', weight: 5, arb: grammar, check: checkRc },
  { name: 'mutated', weight: 3, arb: mutated(seeds, tokens), check: checkRc },
  { name: 'raw', weight: 2, arb: rawText(), check: checkRc },
];
