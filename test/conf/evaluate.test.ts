import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConf, parseConfString, wildcardMatches } from '../../src/conf/evaluate.ts';
import { parseParamAssignment, PARAMS, findParam } from '../../src/conf/params.ts';
import { err } from '../helpers/thrown.ts';

const parse = (text: string) => parseConfString(text, 't.conf', { include: undefined });
const one = (text: string, jail: string) => parse(text).find((s) => s.name === jail)?.params;

describe('evaluation: FreeBSD precedence (config.c load_config)', () => {
  test('later definitions override earlier: a wildcard above a jail is overridden, one below wins', () => {
    const text = 'path = /g; * { host.hostname = early; } j { host.hostname = own; path = /own; } * { path = /late; }';
    assert.deepEqual(one(text, 'j'), { name: 'j', path: '/late', 'host.hostname': 'own' });
  });
  test('+= appends to what the global section and wildcards gave', () => {
    const text = 'exec.start = a; web* { exec.start += b; } web1 { exec.start += c; } db { }';
    assert.deepEqual(one(text, 'web1')?.['exec.start'], ['a', 'b', 'c']);
    assert.deepEqual(one(text, 'db')?.['exec.start'], ['a']);
  });
  test('wildcards: *, foo.* (one or more components), *.bar, web* (jailyard)', () => {
    assert.ok(wildcardMatches('a', '*') && wildcardMatches('a.b.c', '*'));
    assert.ok(wildcardMatches('foo.bar', 'foo.*') && wildcardMatches('foo.bar.baz', 'foo.*'));
    assert.ok(!wildcardMatches('foo', 'foo.*') && !wildcardMatches('food.x', 'foo.*'));
    assert.ok(wildcardMatches('x.bar', '*.bar') && !wildcardMatches('x.y.bar', '*.bar'));
    assert.ok(wildcardMatches('web1', 'web*') && !wildcardMatches('db', 'web*') && !wildcardMatches('web1.x', 'web*'));
  });
  test('variables: $name, ${host.hostname}, $var definitions (dropped), defined after use', () => {
    const text = 'path = "$base/${host.hostname}"; j { host.hostname = "$name.example"; } $base = /jails;';
    assert.deepEqual(one(text, 'j'), { name: 'j', path: '/jails/j.example', 'host.hostname': 'j.example' });
  });
  test('variables resolve per jail even from the global section', () => {
    const specs = parse('host.hostname = "$name.lan"; a {} b {}');
    assert.deepEqual(
      specs.map((s) => s.params['host.hostname']),
      ['a.lan', 'b.lan'],
    );
  });
  test('a list variable substitutes as a whole value only', () => {
    assert.deepEqual(one('$addrs = 10.0.0.1, 10.0.0.2; j { ip4.addr = $addrs; }', 'j')?.['ip4.addr'], [
      '10.0.0.1',
      '10.0.0.2',
    ]);
    const e = err(() => parse('$addrs = a, b; j { host.hostname = "x$addrs"; }'));
    assert.equal(e.code, 'JY_ERR_CONF_VARIABLE');
    assert.equal(e.place.jail, 'j');
  });
  test('unknown variable, loops, and a variable named like a parameter', () => {
    let e = err(() => parse('j {\n path = "/x/$nope";\n}'));
    assert.deepEqual(
      [e.code, e.place.pos?.line, e.place.pos?.col, e.place.jail, e.place.param],
      ['JY_ERR_CONF_VARIABLE', 2, 13, 'j', 'path'],
    );
    e = err(() => parse('$a = $b; $b = $a; j { path = $a; }'));
    assert.equal(e.code, 'JY_ERR_CONF_VARIABLE');
    assert.match(e.message, /loop/);
    e = err(() => parse('$path = x; j { path = y; }'));
    assert.equal(e.code, 'JY_ERR_CONF_VARIABLE');
  });
  test('name cannot be redefined; duplicate jails are refused', () => {
    let e = err(() => parse('j { name = k; }'));
    assert.deepEqual([e.code, e.place.param], ['JY_ERR_PARAM_VALUE', 'name']);
    e = err(() => parse('j {}\nj {}'));
    assert.deepEqual([e.code, e.place.pos?.line], ['JY_ERR_JAIL_NAME', 2]);
  });
  test('unknown parameters get a did-you-mean; wrong types name file:line:col, jail, parameter', () => {
    let e = err(() => parse('j { host.hostnme = x; }'));
    assert.deepEqual([e.code, e.place.param, e.place.jail], ['JY_ERR_PARAM_UNKNOWN', 'host.hostnme', 'j']);
    assert.match(e.message, /did you mean "host\.hostname"/);
    e = err(() => parse('* { securelevel = high; }\nj {}'));
    assert.deepEqual(
      [e.code, e.place.param, e.place.jail, e.place.pos?.line, e.place.pos?.col],
      ['JY_ERR_PARAM_VALUE', 'securelevel', 'j', 1, 19],
    );
    e = err(() => parse('j { persist = maybe; }'));
    assert.equal(e.code, 'JY_ERR_PARAM_VALUE');
    e = err(() => parse('j { enforce_statfs = 3; }'));
    assert.equal(e.code, 'JY_ERR_PARAM_VALUE');
    e = err(() => parse('j { ip4.addr = 10.0.0.1, fe80::1; }'));
    assert.deepEqual([e.code, e.place.pos?.col], ['JY_ERR_PARAM_VALUE', 26]);
    e = err(() => parse('j { limits.memory = lots; }'));
    assert.equal(e.code, 'JY_ERR_PARAM_VALUE');
    // an option to hostname(1) and every other tool the name is handed to (a red-team finding)
    e = err(() => parse('j { host.hostname = "-F/etc/machine-id"; }'));
    assert.deepEqual([e.code, e.place.param], ['JY_ERR_PARAM_VALUE', 'host.hostname']);
    e = err(() => parseParamAssignment('host.hostname=-F/etc/machine-id', 'j'));
    assert.deepEqual([e.code, e.place.param], ['JY_ERR_PARAM_VALUE', 'host.hostname']);
    e = err(() => parse('j { dying; }'));
    assert.equal(e.code, 'JY_ERR_PARAM_VALUE');
  });
  test('jailsys parameters: vnet; novnet; sysvshm = new', () => {
    assert.deepEqual(one('j { vnet; sysvshm = new; ip4 = disable; } k { novnet; nosysvmsg; }', 'j'), {
      name: 'j',
      vnet: 'new',
      sysvshm: 'new',
      ip4: 'disable',
    });
    assert.deepEqual(one('j {} k { novnet; nosysvmsg; }', 'k'), { name: 'k', vnet: 'inherit', sysvmsg: 'disable' });
  });
  test('jailsys parameters take libjail numbers: 0 disable, 1 new, 2 inherit; one the parameter lacks is refused', () => {
    assert.deepEqual(one('j { ip4 = 2; ip6 = 0; sysvshm = 1; vnet = 1; }', 'j'), {
      name: 'j',
      ip4: 'inherit',
      ip6: 'disable',
      sysvshm: 'new',
      vnet: 'new',
    });
    // vnet has no "disable": the kernel refuses vnet=0 (EINVAL)
    const e = err(() => parse('j {\n vnet = 0;\n}'));
    assert.deepEqual([e.code, e.place.jail, e.place.param, e.place.pos?.line], ['JY_ERR_PARAM_VALUE', 'j', 'vnet', 2]);
  });
  test('an address value with commas is several addresses, as libjail splits it; a bad one is named', () => {
    assert.deepEqual(
      one('j { ip4.addr = "10.0.0.1,10.0.0.2", 10.0.0.3; ip6.addr = "2001:db8::1,2001:db8::2"; }', 'j'),
      {
        name: 'j',
        'ip4.addr': ['10.0.0.1', '10.0.0.2', '10.0.0.3'],
        'ip6.addr': ['2001:db8::1', '2001:db8::2'],
      },
    );
    const e = err(() => parse('j { ip4.addr = 10.0.0.9, "10.0.0.1,10.0.0.x"; }'));
    assert.deepEqual([e.code, e.place.param, e.place.pos?.col], ['JY_ERR_PARAM_VALUE', 'ip4.addr', 26]);
    assert.match(e.message, /"10\.0\.0\.x" is not an IPv4 address/);
  });
  test('every variable is expanded for each jail, used or not (config.c): a missing one fails the jail', () => {
    // quBSD's base.conf shape: a variable built from $path, in a file where one jail sets no path
    const text = '$compat = "$path/compat/ubuntu";\na { path = /jails/a; }\nb { persist; }';
    const e = err(() => parse(text));
    assert.deepEqual(
      [e.code, e.place.jail, e.place.param, e.place.pos?.line, e.place.pos?.col],
      ['JY_ERR_CONF_VARIABLE', 'b', '$compat', 1, 12],
    );
    assert.deepEqual(one('$compat = "$path/compat"; a { path = /jails/a; }', 'a'), { name: 'a', path: '/jails/a' });
  });
  test('FreeBSD 14.3 and 15 parameters: zfs.dataset, mac.do, allow.unprivileged_parent_tampering, lindebugfs; any int securelevel', () => {
    assert.deepEqual(
      one(
        'j { allow.mount.zfs; zfs.dataset = "zroot/jails/j/data", zroot/jails/j/vm; mac.do = new; mac.do.rules = "uid=1001>uid=0"; allow.unprivileged_parent_tampering; allow.mount.lindebugfs; securelevel = 5; }',
        'j',
      ),
      {
        name: 'j',
        'allow.mount.zfs': true,
        'zfs.dataset': ['zroot/jails/j/data', 'zroot/jails/j/vm'],
        'mac.do': 'new',
        'mac.do.rules': 'uid=1001>uid=0',
        'allow.unprivileged_parent_tampering': true,
        'allow.mount.lindebugfs': true,
        securelevel: 5,
      },
    );
  });
  test('jailyard parameters are typed', () => {
    assert.deepEqual(
      one(
        'j { skeleton = base@3; skeleton.strategy = overlay; skeleton.romounts = bin, usr/bin; limits.memory = 256M; limits.procs = 50; limits.cpu = 150; }',
        'j',
      ),
      {
        name: 'j',
        skeleton: 'base@3',
        'skeleton.strategy': 'overlay',
        'skeleton.romounts': ['bin', 'usr/bin'],
        'limits.memory': '256M',
        'limits.procs': 50,
        'limits.cpu': 150,
      },
    );
    assert.equal(err(() => parse('j { skeleton.strategy = zfs; }')).code, 'JY_ERR_PARAM_VALUE');
  });
});

describe('.include', () => {
  test('globs relative to the including file, in sorted order; a glob may match nothing', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'jyconf-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'jail.conf.d'));
    writeFileSync(
      join(dir, 'jail.conf'),
      'path = "/j/$name";\n.include "jail.conf.d/*.conf";\n.include "missing[.]conf";\n* { persist; }\n',
    );
    writeFileSync(join(dir, 'jail.conf.d', 'b.conf'), 'b { host.hostname = bee; }\n');
    writeFileSync(join(dir, 'jail.conf.d', 'a.conf'), 'a { }\n');
    const specs = loadConf(join(dir, 'jail.conf'));
    assert.deepEqual(
      specs.map((s) => s.name),
      ['a', 'b'],
    );
    assert.deepEqual(specs[1]?.params, { name: 'b', path: '/j/b', persist: true, 'host.hostname': 'bee' });
  });
  test("inside a block: the file's parameters are the jail's, its blocks are named below it; several files in one statement", (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'jyconf-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      join(dir, 'jail.conf'),
      'host.hostname = top;\na { path = /a; .include "common.inc", "more.inc"; }\nb { path = /b; }\n',
    );
    writeFileSync(join(dir, 'common.inc'), 'persist;\nexec.start = "/bin/sh /etc/rc";\nc { path = /c; }\n');
    writeFileSync(join(dir, 'more.inc'), 'exec.start += "echo more";\n');
    const specs = loadConf(join(dir, 'jail.conf'));
    assert.deepEqual(
      specs.map((s) => s.name),
      ['a', 'a.c', 'b'],
    );
    assert.deepEqual(specs[0]?.params, {
      name: 'a',
      path: '/a',
      persist: true,
      'exec.start': ['/bin/sh /etc/rc', 'echo more'],
      'host.hostname': 'top',
    });
    assert.equal(specs[1]?.params.persist, undefined, "the parameters of the file are a's, not its child's");
    assert.equal(specs[2]?.params.persist, undefined, 'nor of the jail after the block');
  });
  test('".include" quoted is the same statement (jail(8) compares the text)', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'jy-inc-q-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'k.conf'), 'k { persist; }\n');
    writeFileSync(join(dir, 'jail.conf'), '".include" "k.conf";\n');
    assert.deepEqual(
      loadConf(join(dir, 'jail.conf')).map((s) => s.name),
      ['k'],
    );
  });
  test('a missing literal file is an error at the include; cycles are detected', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'jyconf-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'main.conf'), 'a {}\n.include "nope.conf";\n');
    let e = err(() => loadConf(join(dir, 'main.conf')));
    assert.deepEqual([e.code, e.place.pos?.line, e.place.pos?.col], ['JY_ERR_CONF_INCLUDE', 2, 10]);
    assert.match(e.place.excerpt ?? '', /nope\.conf/);
    writeFileSync(join(dir, 'x.conf'), '.include "y.conf";\n');
    writeFileSync(join(dir, 'y.conf'), '.include "x.conf";\n');
    e = err(() => loadConf(join(dir, 'x.conf')));
    assert.equal(e.code, 'JY_ERR_CONF_INCLUDE');
    assert.match(e.message, /cycle/);
    assert.equal(e.place.pos?.file, join(dir, 'y.conf'));
  });
});

describe('parameter registry and CLI words', () => {
  test('registry has the jail(8) parameters with types and flags', () => {
    assert.equal(findParam('exec.prestart')?.type, 'list');
    assert.equal(findParam('ip4.addr')?.type, 'addrlist');
    assert.ok(findParam('ip4.addr')?.flags.reverseOnStop);
    assert.ok(findParam('name')?.flags.immutable);
    assert.ok(findParam('skeleton')?.flags.jailyard);
    for (const n of [
      'allow.mount.zfs',
      'allow.setaudit',
      'children.max',
      'exec.created',
      'exec.release',
      'meta',
      'env',
      'stop.timeout',
      'limits.cgroup_parent',
    ])
      assert.ok(PARAMS.has(n), n);
  });
  test('parseParamAssignment types words like jail(8) create', () => {
    assert.deepEqual(parseParamAssignment('host.hostname=x'), { kind: 'param', name: 'host.hostname', value: 'x' });
    assert.deepEqual(parseParamAssignment('persist'), { kind: 'param', name: 'persist', value: true });
    assert.deepEqual(parseParamAssignment('allow.nomount'), { kind: 'param', name: 'allow.mount', value: false });
    assert.deepEqual(parseParamAssignment('ip4.addr=198.51.100.5/24,198.51.100.6/24'), {
      kind: 'param',
      name: 'ip4.addr',
      value: ['198.51.100.5/24', '198.51.100.6/24'],
    });
    assert.deepEqual(parseParamAssignment('exec.start=sh /etc/rc, then'), {
      kind: 'param',
      name: 'exec.start',
      value: ['sh /etc/rc, then'],
    });
    assert.deepEqual(parseParamAssignment('securelevel=2'), { kind: 'param', name: 'securelevel', value: 2 });
    assert.deepEqual(parseParamAssignment('meta.k=v'), {
      kind: 'meta',
      param: 'meta',
      op: { op: 'set', key: 'k', value: 'v' },
    });
    assert.deepEqual(parseParamAssignment('meta.k'), { kind: 'meta', param: 'meta', op: { op: 'remove', key: 'k' } });
    assert.deepEqual(parseParamAssignment('env=a b'), {
      kind: 'meta',
      param: 'env',
      op: { op: 'replace', value: 'a b' },
    });
    let e = err(() => parseParamAssignment('persit', 'j'));
    assert.deepEqual([e.code, e.place.jail, e.place.param], ['JY_ERR_PARAM_UNKNOWN', 'j', 'persit']);
    e = err(() => parseParamAssignment('securelevel=x', 'j'));
    assert.deepEqual([e.code, e.place.param], ['JY_ERR_PARAM_VALUE', 'securelevel']);
    assert.equal(err(() => parseParamAssignment('meta.=x')).code, 'JY_ERR_META_KEY');
  });
});
