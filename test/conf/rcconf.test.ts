import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { importRcConf, importRcConfSpecs } from '../../src/conf/rcconf.ts';
import { parseShellVars } from '../../src/conf/shellvars.ts';
import { parseConfString } from '../../src/conf/evaluate.ts';
import { loadDefaults } from '../../src/defaults.ts';
import { JailyardError } from '../../src/errors.ts';
import { err } from '../helpers/thrown.ts';

const spec = (text: string, name: string) =>
  importRcConfSpecs(text, 'rc.conf', { platform: 'freebsd' }).specs.find((s) => s.name === name)?.params;

describe('rc.conf shell variables without a shell', () => {
  test('quotes, escapes, comments, ; and earlier-variable expansion', () => {
    const v = parseShellVars(
      `a=plain # c\nb="x y $a" c='$a \\n' ; d=\${a}z e=\${nope:-dflt} f=\\"q\\"\nexport g=1\nh="multi\nline"`,
      'rc',
    );
    assert.deepEqual(
      [...v].map(([k, x]) => [k, x.value]),
      [
        ['a', 'plain'],
        ['b', 'x y plain'],
        ['c', '$a \\n'],
        ['d', 'plainz'],
        ['e', 'dflt'],
        ['f', '"q"'],
        ['g', '1'],
        ['h', 'multi\nline'],
      ],
    );
  });
  test('command substitution and other statements are refused with a position', () => {
    for (const [text, col] of [
      ['a=$(id)', 3],
      ['a=`id`', 3],
      ['if true; then x=1; fi', 3],
    ] as const) {
      try {
        parseShellVars(text, 'rc');
        assert.fail('expected an error');
      } catch (e) {
        assert.ok(e instanceof JailyardError);
        assert.equal(e.code, 'JY_ERR_CONF_SYNTAX');
        assert.equal(e.place.pos?.col, col, text);
      }
    }
  });
});

describe('importRcConf: libexec/rc/rc.d/jail mapping', () => {
  test('defaults: exec.start /bin/sh /etc/rc, exec.stop rc.shutdown jail, mount.fstab /etc/fstab.<name>, /32 masks', () => {
    const p = spec(
      'jail_list="www"\njail_www_rootdir=/j/www\njail_www_hostname=www.example\njail_www_ip=198.51.100.10',
      'www',
    );
    assert.deepEqual(p, {
      name: 'www',
      'host.hostname': 'www.example',
      path: '/j/www',
      'ip4.addr': ['198.51.100.10/32'],
      'allow.raw_sockets': false,
      'exec.clean': true,
      'exec.system_user': 'root',
      'exec.jail_user': 'root',
      'exec.start': ['/bin/sh /etc/rc'],
      'exec.stop': ['/bin/sh /etc/rc.shutdown jail'],
      'exec.consolelog': '/var/log/jail_www_console.log',
      'mount.fstab': ['/etc/fstab.www'],
      'allow.set_hostname': false,
      'allow.sysvipc': false,
      enforce_statfs: 2,
    });
  });
  test('per-jail variables fall back to global jail_<x>; prefix maps non-alphanumerics to _', () => {
    const text =
      'jail_list="my-jail"\njail_devfs_enable=YES\njail_devfs_ruleset=4\njail_interface=em0\njail_my_jail_rootdir=/j\njail_my_jail_hostname=h\njail_my_jail_ip="em1|198.51.100.7/24,2001:db8::7"\njail_my_jail_exec_prestart0="a"\njail_my_jail_exec_prestart1="b"\njail_exec_prestart2="c"\njail_my_jail_exec="/bin/run"';
    const p = spec(text, 'my-jail');
    assert.equal(p?.interface, 'em0');
    assert.deepEqual(p?.['ip4.addr'], ['em1|198.51.100.7/24']);
    assert.deepEqual(p?.['ip6.addr'], ['em0|2001:db8::7/128']);
    assert.deepEqual(p?.['exec.prestart'], ['a', 'b', 'c']);
    assert.deepEqual(p?.['exec.start'], ['sleep 2', '/bin/run']);
    assert.deepEqual(p?.['exec.stop'], ['']);
    assert.equal(p?.['mount.devfs'], true);
    assert.equal(p?.devfs_ruleset, 4);
  });
  test('jail_<j>_parameters: each word a statement of the block, as rc.d/jail writes it (`+=` appends)', () => {
    const base = 'jail_list=w\njail_w_rootdir=/w\njail_w_hostname=w\njail_w_ip=198.51.100.8\n';
    const p = spec(`${base}jail_w_parameters="allow.raw_sockets=1 ip4.addr+=198.51.100.9 exec.timeout=30;"`, 'w');
    assert.deepEqual(p?.['ip4.addr'], ['198.51.100.8/32', '198.51.100.9']);
    assert.equal(p?.['allow.raw_sockets'], true);
    assert.equal(p?.['exec.timeout'], 30);
    // jail(8) reads the words as jail.conf: quotes go, variables expand against the jail's
    // parameters, `;` ends a statement
    const q = spec(
      `${base}jail_w_parameters='exec.timeout="30" osrelease="12.2-RELEASE" mount.fstab=/etc/fstab.$name host.domainname=\${host.hostname}.lan children.max=2;allow.mlock'`,
      'w',
    );
    assert.deepEqual(
      [
        q?.['exec.timeout'],
        q?.osrelease,
        q?.['mount.fstab'],
        q?.['host.domainname'],
        q?.['children.max'],
        q?.['allow.mlock'],
      ],
      [30, '12.2-RELEASE', ['/etc/fstab.w'], 'w.lan', 2, true],
    );
    // a bad word is placed at the variable that holds it, naming the jail and the parameter
    const e = err(() => spec(`${base}jail_w_parameters="exec.timeout=soon"`, 'w'));
    assert.deepEqual(
      [e.code, e.place.jail, e.place.param, e.place.pos?.line, e.place.pos?.col],
      ['JY_ERR_PARAM_VALUE', 'w', 'exec.timeout', 5, 1],
    );
    assert.match(e.message, /jail_w_parameters: exec\.timeout: non-integer value "soon"/);
    assert.equal(err(() => spec(`${base}jail_w_parameters="x { }"`, 'w')).place.pos?.line, 5);
  });
  test('jail_ip as people write it: spaces after commas, an empty interface, an entry of no address type (noted)', () => {
    const r = importRcConfSpecs(
      'jail_list=i\njail_interface=em0\njail_i_rootdir=/i\njail_i_hostname=i\njail_i_ip="em1|198.51.100.10/24, 2001:db8::10/64 ,|198.51.100.11, myhost"',
      'rc.conf',
      { platform: 'freebsd' },
    );
    const p = r.specs[0]?.params;
    assert.deepEqual(p?.['ip4.addr'], ['em1|198.51.100.10/24', 'em0|198.51.100.11/32']);
    assert.deepEqual(p?.['ip6.addr'], ['em0|2001:db8::10/64']);
    assert.deepEqual(r.notes, ['jail "i": address "myhost" left out: type not identified']);
  });
  test('jail_flags: the options a jail.conf can say become parameters, the others are noted; yes/no junk is noted', () => {
    const r = importRcConfSpecs(
      'jail_list=f\njail_flags="-l -U www -s2 -v -J /var/run/f.jid"\njail_f_rootdir=/f\njail_f_hostname=f\njail_f_ip=198.51.100.12\njail_f_sysvipc_allow=maybe',
      'rc.conf',
      { platform: 'freebsd' },
    );
    const p = r.specs[0]?.params;
    assert.deepEqual(
      [p?.['exec.clean'], p?.['exec.jail_user'], p?.securelevel, p?.['allow.sysvipc']],
      [true, 'www', 2, false],
    );
    assert.deepEqual(r.notes, [
      'jail "f": $jail_f_sysvipc_allow is not set properly ("maybe"): taken as NO',
      'jail "f": jail_flags "-v -J /var/run/f.jid" left out (no jail.conf equivalent)',
    ]);
    const u = spec('jail_list=f\njail_f_flags="-u operator"\njail_f_rootdir=/f\njail_f_hostname=f', 'f');
    assert.deepEqual([u?.['exec.jail_user'], u?.['exec.system_jail_user']], ['operator', true]);
  });
  test('no address: a vnet jail with vnet.interface', () => {
    const p = spec('jail_list=v\njail_v_rootdir=/v\njail_v_hostname=v\njail_v_vnet_interface="epair0b epair1b"', 'v');
    assert.equal(p?.vnet, 'new');
    assert.deepEqual(p?.['vnet.interface'], ['epair0b', 'epair1b']);
  });
  test('skeleton variables map to skeleton.* with defaults from defaults.json', () => {
    const d = loadDefaults().skeleton;
    let p = spec(
      'jail_list=s\njail_s_rootdir=/s\njail_s_hostname=s\njail_s_ip=198.51.100.9\njail_s_skel_enable=YES',
      's',
    );
    assert.deepEqual(
      [p?.['skeleton.strategy'], p?.['skeleton.root'], p?.['skeleton.romounts'], p?.['skeleton.rwmounts']],
      ['nullfs', d.root, d.romounts.freebsd, d.rwmounts.freebsd],
    );
    p = spec(
      'jail_list=s\njail_s_rootdir=/s\njail_s_hostname=s\njail_s_ip=198.51.100.9\njail_s_skel_enable=YES\njail_s_skel_root=/base\njail_s_skel_romounts="bin lib"\njail_s_skel_rwmounts="usr/local"',
      's',
    );
    assert.deepEqual(
      [p?.['skeleton.root'], p?.['skeleton.romounts'], p?.['skeleton.rwmounts']],
      ['/base', ['bin', 'lib'], ['usr/local']],
    );
    p = spec('jail_list=s\njail_s_rootdir=/s\njail_s_hostname=s\njail_s_ip=198.51.100.9', 's');
    assert.equal(p?.['skeleton.strategy'], undefined);
  });
  test('jails without rootdir/hostname are skipped with a note; bad values name the variable', () => {
    const r = importRcConfSpecs(
      'jail_list="a b"\njail_b_rootdir=/b\njail_b_hostname=b\njail_b_ip=198.51.100.2',
      'rc.conf',
    );
    assert.deepEqual(
      r.specs.map((s) => s.name),
      ['b'],
    );
    assert.match(r.notes.join('\n'), /jail "a" skipped/);
    try {
      importRcConf(
        'jail_list=b\njail_b_rootdir=/b\njail_b_hostname=b\njail_b_ip=198.51.100.2\njail_b_enforce_statfs=lots',
        'rc.conf',
      );
      assert.fail('expected an error');
    } catch (e) {
      assert.ok(e instanceof JailyardError);
      assert.deepEqual(
        [e.code, e.place.jail, e.place.param, e.place.pos?.line],
        ['JY_ERR_PARAM_VALUE', 'b', 'enforce_statfs', 5],
      );
    }
  });
  test('the imported text is jail.conf that evaluates back to the same specs (examples/legacy-rc.conf)', () => {
    const text = readFileSync(new URL('../../examples/legacy-rc.conf', import.meta.url), 'utf8');
    const { specs } = importRcConfSpecs(text, 'legacy-rc.conf', { platform: 'freebsd' });
    const conf = importRcConf(text, 'legacy-rc.conf', { platform: 'freebsd' });
    assert.deepEqual(parseConfString(conf, 'imported.conf', { include: undefined }), specs);
    const ns = specs.find((s) => s.name === 'ns')?.params;
    assert.deepEqual(ns?.['exec.start'], ['sleep 2', '/bin/sh /etc/rc.ns']);
    // jail_ns_exec_start without exec_stop: rc.d/jail leaves exec.stop empty.
    assert.deepEqual(ns?.['exec.stop'], ['']);
    assert.equal(ns?.['mount.procfs'], true);
    assert.equal(ns?.['children.max'], 2);
    assert.equal(ns?.['allow.sysvipc'], true);
  });
});
