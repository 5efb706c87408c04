// Inputs the fuzz suites found, kept as fixed cases (each with the oracle of its target), so
// a fix stays fixed whatever the generators draw next time.
import { test } from 'node:test';
import { checkConf } from './targets/conf.ts';
import { checkRc } from './targets/rcconf.ts';
import { checkSelector } from './targets/selector.ts';

test('rc.conf: two listed names that map to one jail name (a.b and a_b) import one jail', () => {
  // the written jail.conf defined "a_b" twice and could not be read back
  checkRc("jail_list='a_b a.b'\njail_a_b_rootdir=/j\njail_a_b_hostname=h\n");
  checkRc('jail_list="x/y x.y x_y"\njail_x_y_rootdir=/j\njail_x_y_hostname=h\n');
});

test('jail.conf and selector oracles hold on the seeds themselves', () => {
  checkConf('www { path = /j; persist; ip4.addr = 198.51.100.120/24; }');
  checkSelector({ selector: 'app=www,version in (v1,v2),!legacy', labels: { app: 'www', version: 'v1' } });
});

test('rc.conf: a NUL in a value is refused where it is (the jail.conf written for it could not be read)', () => {
  checkRc('jail_list=www\njail_www_rootdir=/j\njail_www_hostname=h\njail_www_exec_prestart0=\0"logger x"\n');
  checkRc('jail_list=www # \0\n');
});

test('jail.conf: a jail named "0" keeps a jid it was given when printed (0 is no implicit jid)', () => {
  // the printer left out jid = 0 as if the name had set it, so it read back without one
  checkConf('0 {  } jid = 0 ; www {  }');
  checkConf('05 { persist; }');
});

test('jail.conf: a numeric block that sets name prints as that block (it read back as another block)', () => {
  checkConf('5309 { name = basejail; host.hostname = "{h-${name}"; persist; }');
});
