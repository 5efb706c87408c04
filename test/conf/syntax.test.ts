import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfString } from '../../src/conf/evaluate.ts';
import { JailyardError } from '../../src/errors.ts';
import type { Params } from '../../src/conf/spec.ts';

const noIncludes = { include: undefined };
function params(text: string, jail = 'j'): Params {
  const spec = parseConfString(text, 't.conf', noIncludes).find((s) => s.name === jail);
  assert.ok(spec, `jail ${jail} defined`);
  return spec.params;
}
function fails(
  text: string,
  fields: Partial<{ code: string; line: number; col: number; jail: string; param: string }>,
): JailyardError {
  let err: unknown;
  try {
    parseConfString(text, 't.conf', noIncludes);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof JailyardError, `expected a JailyardError, got ${String(err)}`);
  if (fields.code) assert.equal(err.code, fields.code);
  if (fields.line !== undefined) assert.equal(err.place.pos?.line, fields.line);
  if (fields.col !== undefined) assert.equal(err.place.pos?.col, fields.col);
  if (fields.jail !== undefined) assert.equal(err.place.jail, fields.jail);
  if (fields.param !== undefined) assert.equal(err.place.param, fields.param);
  assert.equal(err.place.pos?.file, 't.conf');
  assert.match(err.place.excerpt ?? '', /\^$/);
  return err;
}

describe('jail.conf syntax (jaillex.l / jailparse.y)', () => {
  test('blocks, implicit name, = and bare booleans, no-prefix', () => {
    assert.deepEqual(params('j { persist; allow.nomount; mount.nodevfs; host.hostname = x; }'), {
      name: 'j',
      persist: true,
      'allow.mount': false,
      'mount.devfs': false,
      'host.hostname': 'x',
    });
  });
  test('boolean values: true/false/numbers, and nop = false flips', () => {
    assert.deepEqual(params('j { persist = "false"; allow.mount = TRUE; exec.clean = 0; allow.nochflags = false; }'), {
      name: 'j',
      persist: false,
      'allow.mount': true,
      'exec.clean': false,
      'allow.chflags': true,
    });
  });
  test('the "name value" form without "="', () => {
    assert.deepEqual(params('j { host.hostname foo; securelevel 2; }'), {
      name: 'j',
      'host.hostname': 'foo',
      securelevel: 2,
    });
  });
  test('lists with "," and "+=", and scalars keep the last value', () => {
    assert.deepEqual(params('j { ip4.addr = 10.0.0.1, 10.0.0.2; ip4.addr += 10.0.0.3; host.hostname = a, b; }'), {
      name: 'j',
      'ip4.addr': ['10.0.0.1', '10.0.0.2', '10.0.0.3'],
      'host.hostname': 'b',
    });
  });
  test('"=" after "+=" replaces', () => {
    assert.deepEqual(params('j { exec.start += a; exec.start = b; }')['exec.start'], ['b']);
  });
  test('comments #, //, /* */ anywhere whitespace is', () => {
    const p = params('# hi\nj /* c */ { // x\n persist; # y\n /* multi\nline */ host.hostname = h; }');
    assert.deepEqual(p, { name: 'j', persist: true, 'host.hostname': 'h' });
  });
  test('C escapes in double quotes: \\n \\t \\\\ \\" octal hex, and line continuation', () => {
    const p = params('j { host.hostname = "a\\nb\\tc\\\\d\\"e\\101\\x42\\x7z\\\nf"; }');
    assert.equal(p['host.hostname'], 'a\nb\tc\\d"eAB\x07zf');
  });
  test('single quotes: no variables, backslash escapes as FreeBSD does', () => {
    const p = params("j { host.hostname = '$name \\'q\\''; path = \"$name\"; }");
    assert.equal(p['host.hostname'], "$name 'q'");
    assert.equal(p.path, 'j');
  });
  test('adjacent pieces glue into one word: /var/jail/$name, "a"\'b\'c', () => {
    const p = params('j { path = /var/jail/$name; host.hostname = "a"\'b\'c; osrelease = x\\ y; }');
    assert.deepEqual([p.path, p['host.hostname'], p.osrelease], ['/var/jail/j', 'abc', 'x y']);
  });
  test('backslash-newline continues an unquoted word', () => {
    assert.equal(params('j { path = /usr/\\\nlocal; }').path, '/usr/local');
  });
  test('a literal $ when not followed by a name', () => {
    assert.equal(params('j { host.hostname = "a$ b$"; }')['host.hostname'], 'a$ b$');
    assert.equal(params('j { host.hostname = "a\\$name"; }')['host.hostname'], 'a$name');
  });
  test('stray semicolons are fine', () => {
    assert.deepEqual(params(';; j { ; persist;; } ;'), { name: 'j', persist: true });
  });
  test('quoted jail and parameter names', () => {
    assert.deepEqual(params('"j" { "persist"; }'), { name: 'j', persist: true });
  });
  test('a nested block is the child "outer.inner"; dotted names work too', () => {
    const specs = parseConfString('a { persist; b { persist; } }\na.c { persist; }', 't.conf', noIncludes);
    assert.deepEqual(
      specs.map((s) => s.name),
      ['a', 'a.b', 'a.c'],
    );
    assert.equal(specs[1]?.params.name, 'a.b');
  });
  test('a numeric jail name sets jid; its name is the jid unless the block sets one (config.c)', () => {
    assert.deepEqual(params('5 { persist; }', '5'), { jid: 5, name: '5', persist: true });
  });
});

describe('jail.conf syntax errors name file:line:col with an excerpt', () => {
  test('missing semicolon', () => {
    const e = fails('j {\n  persist\n}', { code: 'JY_ERR_CONF_SYNTAX', line: 3, col: 1 });
    assert.match(e.message, /expected ";"/);
  });
  test('unterminated string, comment, variable', () => {
    fails('j { path = "/x;\n}', { code: 'JY_ERR_CONF_SYNTAX', line: 1, col: 12 });
    fails('j { } /* x', { code: 'JY_ERR_CONF_SYNTAX', line: 1, col: 7 });
    fails('j { path = "${x\n"; }', { code: 'JY_ERR_CONF_SYNTAX', line: 1, col: 13 });
  });
  test('unclosed block', () => {
    const e = fails('j {\n persist;\n', { code: 'JY_ERR_CONF_SYNTAX', line: 3 });
    assert.match(e.message, /"}" to close jail "j"/);
  });
  test('unexpected characters', () => {
    fails('j { path = é; }', { code: 'JY_ERR_CONF_SYNTAX', col: 12 });
    fails('j { path = a\x01; }', { code: 'JY_ERR_CONF_SYNTAX' });
  });
  test('a variable in a jail name', () => {
    fails('$x { }', { code: 'JY_ERR_CONF_SYNTAX', col: 1 });
  });
  test('.include without a loader, at the top or in a block; a variable in its name', () => {
    fails('j { .include "x"; }', { code: 'JY_ERR_CONF_INCLUDE', col: 5 });
    fails('.include "x";', { code: 'JY_ERR_CONF_INCLUDE', col: 1 });
    fails('.include "a", "$x";', { code: 'JY_ERR_CONF_SYNTAX', col: 16 });
  });
  test('parameters outside blocks are one global section, placed where the first of them stands (jailparse.y global_jail)', () => {
    // the later top-level hostname joins the section above a's block: a's own value wins
    const text = 'host.hostname = x;\na { host.hostname = a; }\nhost.hostname = y;\nb { }\n';
    assert.equal(params(text, 'a')['host.hostname'], 'a');
    assert.equal(params(text, 'b')['host.hostname'], 'y');
    // the first top-level parameter after a block places the section below it: it wins there
    assert.equal(params('a { host.hostname = a; }\nhost.hostname = y;\n', 'a')['host.hostname'], 'y');
    // an explicit "*" block is a section of its own, in file order
    assert.equal(params('persist;\na { nopersist; }\n* { persist; }\n', 'a').persist, true);
  });
});
