// The corpus of real-world jail.conf files and rc.conf jail_* snippets in
// fixtures/real-world (each with a header naming where it came from): every config parses
// and evaluates, `conf fmt` output reads back to the same parameters and is a fixed point,
// and every rc.conf snippet imports to jail.conf text that reads back the same. A few
// tricky files get their resolved values checked against what FreeBSD's jail(8) makes of
// them; the *.bad.conf files are refused by jail(8) too, and must fail at the right place.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConf, parseConfString } from '../../src/conf/evaluate.ts';
import { printConf } from '../../src/conf/printer.ts';
import { importRcConf, importRcConfSpecs } from '../../src/conf/rcconf.ts';
import type { JailSpec } from '../../src/conf/spec.ts';
import { runCli } from '../helpers/cli.ts';
import { err } from '../helpers/thrown.ts';

const DIR = fileURLToPath(new URL('./fixtures/real-world/', import.meta.url));
const RC_DIR = join(DIR, 'rc');
const confs = readdirSync(DIR)
  .filter((f) => f.endsWith('.conf') && !f.endsWith('.bad.conf'))
  .sort();
const bad = readdirSync(DIR)
  .filter((f) => f.endsWith('.bad.conf'))
  .sort();
const rcs = readdirSync(RC_DIR)
  .filter((f) => f.endsWith('.rc.conf'))
  .sort();

const params = (specs: JailSpec[]) => Object.fromEntries(specs.map((s) => [s.name, s.params]));
const jails = (f: string) => params(loadConf(join(DIR, f)));
const rcJails = (f: string) =>
  params(importRcConfSpecs(readFileSync(join(RC_DIR, f), 'utf8'), f, { platform: 'freebsd' }).specs);

describe('real-world corpus', () => {
  test('the corpus is what this suite promises: 30+ jail.conf files, 10+ rc.conf snippets, each sourced', () => {
    assert.ok(confs.length + bad.length >= 30, `${confs.length + bad.length} jail.conf files`);
    assert.ok(rcs.length >= 10, `${rcs.length} rc.conf snippets`);
    for (const f of [...confs, ...bad, ...rcs.map((r) => join('rc', r))]) {
      const head = readFileSync(join(DIR, f), 'utf8').split('\n', 4).join('\n');
      assert.match(head, /Source:|After |Written for jailyard/, `${f} names its source`);
    }
  });

  for (const f of confs) {
    test(`${f}: check, show, fmt round trip`, () => {
      const specs = loadConf(join(DIR, f));
      const text = printConf(specs);
      const again = parseConfString(text, `fmt of ${f}`);
      assert.deepEqual(again, specs, 'fmt output reads back to the same parameters');
      assert.equal(printConf(again), text, 'fmt of fmt output is the same text');
    });
  }

  for (const f of rcs) {
    test(`rc/${f}: import-rc output checks and reads back`, () => {
      const text = readFileSync(join(RC_DIR, f), 'utf8');
      const { specs } = importRcConfSpecs(text, f, { platform: 'freebsd' });
      const out = importRcConf(text, f, { platform: 'freebsd' });
      const read = parseConfString(out, `import of ${f}`);
      assert.deepEqual(read, specs);
      assert.equal(printConf(read), printConf(specs));
    });
  }
});

describe('real-world corpus through the CLI', () => {
  test('conf check, conf show --json, conf fmt then show again, import-rc then check', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'jy-real-world-'));
    try {
      for (const f of confs) {
        const file = join(DIR, f);
        const check = await runCli(['conf', 'check', file]);
        assert.equal(check.code, 0, `${f}: ${check.stderr}`);
        const show = await runCli(['conf', 'show', file, '--json']);
        assert.equal(show.code, 0, `${f}: ${show.stderr}`);
        const fmt = await runCli(['conf', 'fmt', file]);
        assert.equal(fmt.code, 0, `${f}: ${fmt.stderr}`);
        const again = join(tmp, f);
        writeFileSync(again, fmt.stdout);
        const reshow = await runCli(['conf', 'show', again, '--json']);
        assert.equal(reshow.code, 0, `${f} (fmt): ${reshow.stderr}`);
        assert.deepEqual(JSON.parse(reshow.stdout), JSON.parse(show.stdout), f);
      }
      for (const f of bad) {
        const check = await runCli(['conf', 'check', join(DIR, f)]);
        assert.equal(check.code, 1, f);
        assert.match(check.stderr, new RegExp(`${f.replace(/[.]/g, '[.]')}:[0-9]+:[0-9]+`), f);
      }
      for (const f of rcs) {
        const imp = await runCli(['conf', 'import-rc', join(RC_DIR, f)]);
        assert.equal(imp.code, 0, `${f}: ${imp.stderr}`);
        const out = join(tmp, `${f}.jail.conf`);
        writeFileSync(out, imp.stdout);
        const check = await runCli(['conf', 'check', out]);
        assert.equal(check.code, 0, `${f}: ${check.stderr}`);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('real-world configs jail(8) refuses fail at the right place', () => {
  test('indgy-app-jail: missing ";" after exec.start is a syntax error at the next word', () => {
    const e = err(() => loadConf(join(DIR, 'indgy-app-jail.bad.conf')));
    assert.equal(e.code, 'JY_ERR_CONF_SYNTAX');
    assert.deepEqual(
      [basename(e.place.pos?.file ?? ''), e.place.pos?.line, e.place.pos?.col],
      ['indgy-app-jail.bad.conf', 9, 3],
    );
  });
  test('nikolaydachev-jails: `name = "t1";` inside t1 { } redefines an immutable parameter (config.c)', () => {
    const e = err(() => loadConf(join(DIR, 'nikolaydachev-jails.bad.conf')));
    assert.equal(e.code, 'JY_ERR_PARAM_VALUE');
    assert.equal(e.place.jail, 't1');
    assert.deepEqual([e.place.pos?.line, e.place.pos?.col], [12, 5]);
  });
  test('every *.bad.conf is covered above', () => {
    assert.deepEqual(bad, ['indgy-app-jail.bad.conf', 'nikolaydachev-jails.bad.conf']);
  });
});

describe('tricky real-world configs resolve as jail(8) resolves them', () => {
  test('skrp-hubbub: ip4.addr = ""; is an empty address list (libjail), not a bad address', () => {
    const j = jails('skrp-hubbub.conf');
    assert.deepEqual(j.ftp?.['ip4.addr'], []);
    assert.deepEqual(j.mail?.['ip4.addr'], []);
    assert.equal(j.ftp?.interface, '');
  });
  test('jojojames: a global exec.prestart uses $epair defined only inside the jail block', () => {
    const j = jails('jojojames-freebsd-files.conf');
    assert.deepEqual(j.joy?.['exec.prestart'], [
      'ifconfig bridge0 > /dev/null 2> /dev/null || ( ifconfig bridge0 create up && ifconfig bridge0 addm lagg0)',
      "ifconfig epair0 create up                || echo 'Skipped creating epair (exists?)'",
      "ifconfig bridge0 addm epair0a          || echo 'Skipped creating bridge member (already member?)'",
    ]);
    assert.deepEqual(j.joy?.['mount.fstab'], ['/etc/fstab.joy']);
    assert.equal(j.joy?.path, '/usr/jail/joy');
  });
  test('skunkwerks / omussell: a global ip4.addr glued to a per-jail $ip', () => {
    const s = jails('skunkwerks-diy-jails.conf');
    assert.deepEqual(s.z2?.['ip4.addr'], ['10.240.0.2']);
    assert.deepEqual(s.iwantmybox?.['mount.fstab'], ['']);
    const o = jails('omussell-homelab.conf');
    assert.deepEqual(o.case?.['ip4.addr'], ['192.168.1.21']);
  });
  test('bastille vnet bridge: \\$ and \\" in double quotes stay literal for the shell', () => {
    const j = jails('bastille-create-vnet-bridge.conf');
    assert.deepEqual(j.db1?.['exec.prestart'], [
      'epair0=$(ifconfig epair create) && ifconfig ${epair0} up name e0a_db1 && ifconfig ${epair0%a}b up name e0b_db1',
      'ifconfig bridge0 addm e0a_db1',
      'ifconfig e0a_db1 description "vnet0 host interface for Bastille jail db1"',
    ]);
    assert.equal(j.db1?.vnet, 'new');
    assert.deepEqual(j.db1?.['vnet.interface'], ['e0b_db1']);
  });
  test('bastille linux: ip_hostname; and ip6 = disable;', () => {
    const j = jails('bastille-create-linux.conf');
    assert.equal(j.ubuntu?.ip_hostname, true);
    assert.equal(j.ubuntu?.ip6, 'disable');
    assert.deepEqual(j.ubuntu?.['exec.start'], ['/bin/true']);
  });
  test('moerz: .include inside a block adds to that jail, in place', () => {
    const j = jails('moerz-eurobsdcon24.conf');
    assert.equal(j.vmhost?.path, '/usr/local/jails/vmhost');
    assert.deepEqual(j.vmhost?.['exec.start'], ['/sbin/ifconfig epair2b inet 10.10.10.2', '/bin/sh /etc/rc']);
    assert.equal(j.vmhost?.securelevel, -1);
    assert.equal(j.vmhost?.['allow.vmm'], true);
  });
  test('handbook: a jail named "vnet" with vnet; and variables used before they are defined', () => {
    const j = jails('handbook-vnet.conf');
    assert.equal(j.vnet?.vnet, 'new');
    assert.deepEqual(j.vnet?.['vnet.interface'], ['epair154b']);
    assert.deepEqual(j.vnet?.['exec.start'], [
      '/sbin/ifconfig epair154b 192.168.1.154/24 up',
      '/sbin/route add default 192.168.1.1',
      '/bin/sh /etc/rc',
    ]);
  });
  test('jailer vnet template: command and exec.start are two hooks (jail(8) runs both)', () => {
    const j = jails('mjakob-jailer-vnet.conf');
    assert.deepEqual(j.proxy?.command, ['ifconfig epair3b inet 10.0.3.3/24', 'route -n add -inet default 10.0.3.1']);
    assert.deepEqual(j.proxy?.['exec.start'], ['/bin/sh /etc/rc']);
    assert.equal((j.proxy?.['exec.prestart'] as string[] | undefined)?.at(-1), 'logger trying to start jail proxy...');
  });
  test('freshports: depend, += after = inside a jail, quoted booleans and numbers', () => {
    const j = jails('freshports-host-init.conf');
    assert.deepEqual(j.nginx01?.['exec.start'], ['zfs mount -a', '/bin/sh /etc/rc']);
    assert.deepEqual(j.ingress01?.depend, ['pg01']);
    assert.equal(j.nginx01?.['allow.mount.zfs'], true);
    assert.equal(j.pg01?.['host.hostname'], 'r720-02-pg01.int.unixathome.org');
  });
  test('neotorino / portal: interface|address forms, single-quoted and bare', () => {
    const n = jails('neotorino-freebsd.conf');
    assert.deepEqual(n.base?.['ip4.addr'], ['lo1|172.16.1.1/32']);
    assert.deepEqual(n.database?.['ip4.addr'], ['lo1|172.16.1.2/24']);
    const p = jails('portal-lo6.conf');
    assert.deepEqual(p.portal?.['ip6.addr'], ['lo6|2001:db8::207']);
    assert.equal(p.portal?.devfs_ruleset, 4);
  });
  test('joe-conf: jid = ${id}; in named blocks', () => {
    const j = jails('jozanleclerc-joe-conf.conf');
    assert.deepEqual(
      Object.values(j).map((p) => p.jid),
      [1, 2, 3, 4],
    );
    assert.deepEqual(j.wireguard?.['vnet.interface'], ['epair4b']);
  });
  test('FreeBSD jail_basic_test.sh configs: numeric blocks, a path added after the block, single-quoted $', () => {
    assert.deepEqual(loadConf(join(DIR, 'freebsd-tests-jid-name-set.conf')), [
      { name: 'basejail', block: '5309', params: { jid: 5309, name: 'basejail', persist: true } },
    ]);
    assert.equal(jails('freebsd-tests-jid-hostname.conf')['5309']?.['host.hostname'], '5309');
    assert.equal(jails('freebsd-tests-name-jid.conf').basejail?.jid, 5309);
    assert.deepEqual(jails('freebsd-tests-param-consistency.conf').basejail?.['exec.poststop'], ['echo JID=$JID']);
    const c = jails('freebsd-tests-commands.conf').basejail;
    assert.equal(c?.path, '/tmp/atf-commands');
    assert.deepEqual(c?.['exec.prestart'], ['echo START']);
  });
  test('FreeBSD 14 layout: defaults, then .include of jail.conf.d/*.conf (sorted; a [.] glob may match nothing)', () => {
    const j = jails('freebsd14-jail.conf.5-layout.conf');
    assert.deepEqual(Object.keys(j), ['bar', 'www']);
    assert.equal(j.bar?.path, '/');
    assert.equal(j.bar?.['mount.devfs'], false);
    assert.deepEqual(j.bar?.['exec.start'], ['']);
    assert.equal(j.www?.path, '/var/jail/www');
    assert.deepEqual(j.www?.['exec.stop'], ['/bin/sh /etc/rc.shutdown jail']);
  });
  test('global-only files (no jail block) define no jail', () => {
    assert.deepEqual(jails('nihr43-jm.conf'), {});
    assert.deepEqual(jails('larafercue-ansible-playbooks.conf'), {});
  });
});

describe('real-world rc.conf snippets import as rc.d/jail reads them', () => {
  test('ezjail: `export` lines, a dotted jail name, exec_stop="" kept empty, devfsrules_jail left out', () => {
    const j = rcJails('ezjail-writejailinfo.rc.conf');
    assert.deepEqual(Object.keys(j), ['web_example_org']);
    const w = j.web_example_org;
    assert.deepEqual(w?.['exec.stop'], ['']);
    assert.deepEqual(w?.['ip4.addr'], ['lo1|127.0.1.1/32', 'em0|192.0.2.5/32']);
    assert.equal(w?.devfs_ruleset, undefined);
    assert.equal(w?.['mount.devfs'], true);
    assert.equal(w?.['allow.mount'], true);
  });
  test('handbook 9.x: a named devfs ruleset is left out, devfs still mounted', () => {
    const w = rcJails('handbook-9x-www.rc.conf').www;
    assert.equal(w?.devfs_ruleset, undefined);
    assert.equal(w?.['mount.devfs'], true);
    assert.equal(w?.['allow.raw_sockets'], false);
  });
  test('legacy _exec replaces exec.start and empties exec.stop; global _allow switches apply', () => {
    const o = rcJails('rcconf5-exec-legacy.rc.conf').old;
    assert.deepEqual(o?.['exec.start'], ['/bin/sh /etc/rc.local']);
    assert.deepEqual(o?.['exec.stop'], ['']);
    assert.equal(o?.['allow.sysvipc'], true);
    assert.equal(o?.enforce_statfs, 1);
  });
  test('_ip with addresses separated by spaces: each an address, with a note (rc.d/jail made the second the interface)', () => {
    const text = [
      'jail_enable="YES"',
      'jail_list="sp"',
      'jail_sp_rootdir="/j/sp"',
      'jail_sp_hostname="sp"',
      'jail_sp_ip="192.0.2.1 em1|192.0.2.2, 192.0.2.5 netmask 255.255.255.0"',
    ].join('\n');
    const { specs, notes } = importRcConfSpecs(text, 'rc.conf', { platform: 'freebsd' });
    assert.deepEqual(specs[0]?.params['ip4.addr'], [
      '192.0.2.1/32',
      'em1|192.0.2.2/32',
      '192.0.2.5 netmask 255.255.255.0',
    ]);
    assert.ok(
      notes.some((n) => n.includes('$jail_sp_ip lists "192.0.2.1 em1|192.0.2.2" with spaces')),
      notes.join('\n'),
    );
  });
  test('jail_list naming a jail with no rootdir/hostname, or an empty jail_list, imports nothing', () => {
    assert.deepEqual(rcJails('chinese-blog-jail-list.rc.conf'), {});
    assert.deepEqual(rcJails('asepready-vnet-guide.rc.conf'), {});
  });
});

describe('empty values, as libjail and jail(8) read them', () => {
  const one = (text: string) => parseConfString(text, 't.conf')[0]?.params;
  test('ip4.addr = "" / "-" is the empty address list (jailparam_import); "" next to an address is not', () => {
    assert.deepEqual(one('a { ip4.addr = ""; ip6.addr = "-"; }'), { name: 'a', 'ip4.addr': [], 'ip6.addr': [] });
    const e = err(() => one('a { ip4.addr = "", 10.0.0.1; }'));
    assert.equal(e.code, 'JY_ERR_PARAM_VALUE');
    assert.deepEqual([e.place.pos?.line, e.place.pos?.col], [1, 16]);
  });
  test('an empty jailsys value is "new"; an empty boolean is false (strtol)', () => {
    assert.deepEqual(one('a { vnet = ""; persist = ""; mount.devfs = ""; allow.mount = ""; }'), {
      name: 'a',
      vnet: 'new',
      persist: false,
      'mount.devfs': false,
      'allow.mount': false,
    });
  });
  test('an IPv6 address with a %zone is refused, as inet_pton(3) refuses it', () => {
    const e = err(() => one('a { ip6.addr = "em0|fe80::1%em0/64"; }'));
    assert.equal(e.code, 'JY_ERR_PARAM_VALUE');
    assert.match(e.message, /not an IPv6 address/);
  });
});

describe('variables as config.c collects them', () => {
  const one = (text: string) => parseConfString(text, 't.conf')[0]?.params;
  test("a variable named like one of jail(8)'s own parameters is refused, set or not (add_param)", () => {
    for (const [text, col] of [
      ['a { $path = "/j"; persist; }', 5],
      ['$interface = em0;\na { ip4.addr = "$interface|10.0.0.1"; }', 1],
      ['a { $nopersist = 1; }', 5],
    ] as const) {
      const e = err(() => one(text));
      assert.equal(e.code, 'JY_ERR_CONF_VARIABLE', text);
      assert.match(e.message, /cannot have the same name as a parameter/);
      assert.deepEqual([e.place.pos?.line, e.place.pos?.col], [1, col], text);
    }
    // other names, the ones real configs use, are variables
    assert.deepEqual(one('a { $ip = 1; $epair = "epair$ip"; $if_name = "$name"; vnet.interface = $epair; }'), {
      name: 'a',
      'vnet.interface': ['epair1'],
    });
  });
  test('`$x;` is a variable with no value (jailparse.y): only using it fails', () => {
    assert.deepEqual(one('a { $x; persist; }'), { name: 'a', persist: true });
    const e = err(() => one('a { $x; path = "/$x"; }'));
    assert.equal(e.code, 'JY_ERR_CONF_VARIABLE');
    assert.deepEqual([e.place.pos?.line, e.place.pos?.col], [1, 18]);
  });
});
