// A jailed root owns its writable tree: it can replace the programs in it, or preload a
// library into them. jailyard must therefore never run a program of the jail's own tree with
// more than the jail's capabilities: at start (pid 1) and at every exec, jailyard's own host
// binaries (jy-stage, jy-enter) drop them before the first program of the jail's tree runs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binFor, cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { JAIL_KEEP_CAPS } from '../../src/platform/linux/caps.ts';

let state: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);
const jyBin = binFor(() => state);

/** The CapBnd mask (hex, as in /proc/PID/status) of the jail's kept capabilities. */
const JAIL_CAPBND = JAIL_KEEP_CAPS.split(',')
  .reduce((m, c) => m | (1n << BigInt(c)), 0n)
  .toString(16)
  .padStart(16, '0');

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-cli-caps-'));
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
});

after(async () => {
  await jy('remove', '-l', 'test=caps');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('a jailed root that replaces setpriv and umount in its tree gains no capability', {
  timeout: 120_000,
}, async () => {
  // overlay: the jail's /usr is copy-on-write, so its root can replace programs there
  let r = await jy('create', 'caps1', 'skeleton=host', 'skeleton.strategy=overlay', 'persist', 'meta.test=caps');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'caps1');
  assert.equal(r.code, 0, r.stderr);

  // the jail's own processes have the reduced bounding set
  assert.match(jyBin('exec', 'caps1', 'grep', 'CapBnd', '/proc/1/status'), new RegExp(`CapBnd:\\s+${JAIL_CAPBND}`));

  // the jailed root plants trojans that record the capabilities they run with
  for (const prog of ['setpriv', 'umount']) {
    jyBin(
      'exec',
      'caps1',
      'sh',
      '-c',
      `mv /usr/bin/${prog} /usr/bin/${prog}.real && printf '#!/bin/sh\\ngrep CapBnd /proc/self/status > /tmp/trojan-${prog}\\nexec /usr/bin/${prog}.real "$@"\\n' > /usr/bin/${prog} && chmod 755 /usr/bin/${prog}`,
    );
  }
  // exec as a user runs no program of the jail's to change the uid (jy-enter does it, after
  // the drop): the trojan setpriv never runs
  assert.equal(jyBin('exec', '-U', 'nobody', 'caps1', 'id', '-un').trim(), 'nobody');
  assert.equal(jyBin('exec', 'caps1', 'sh', '-c', 'ls /tmp/trojan-setpriv 2>/dev/null || echo none').trim(), 'none');

  // a restart runs nothing of the jail's tree before the drop (the old stage ran umount and
  // setpriv from it with every capability)
  r = await jy('restart', 'caps1');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(jyBin('exec', 'caps1', 'sh', '-c', 'ls /tmp/trojan-umount 2>/dev/null || echo none').trim(), 'none');
  assert.match(jyBin('exec', 'caps1', 'grep', 'CapBnd', '/proc/1/status'), new RegExp(`CapBnd:\\s+${JAIL_CAPBND}`));
  assert.equal(existsSync('/usr/bin/setpriv.real'), false, "the host's own tree is untouched");

  r = await jy('remove', 'caps1');
  assert.equal(r.code, 0, r.stderr);
  assertNoLeaks(baseline, state);
});

test('a jailed root that swaps /.jailyard for its own programs gains no capability (exec and restart)', {
  timeout: 120_000,
}, async () => {
  let r = await jy('create', 'caps2', 'skeleton=host', 'persist', 'meta.test=caps');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'caps2');
  assert.equal(r.code, 0, r.stderr);
  // /.jailyard holds host binaries bound read-only; the jailed root cannot unmount them, but
  // it owns the directory entry: it moves the directory away and puts its own in its place,
  // with trojans under every name jailyard ever ran from there
  const trojan = (name: string) =>
    `printf '#!/bin/sh\ngrep -E "CapEff|CapBnd" /proc/self/status > /tmp/trojan-${name}\nshift 2 2>/dev/null; exec "$@"\n' > /.jailyard/${name} && chmod 755 /.jailyard/${name}`;
  jyBin(
    'exec',
    'caps2',
    'sh',
    '-c',
    `mv /.jailyard /.jailyard-moved && mkdir /.jailyard && ${trojan('capdrop')} && ${trojan('tini')}`,
  );
  // the next exec runs nothing of it with more than the jail's set
  assert.equal(jyBin('exec', 'caps2', 'echo', 'ok').trim(), 'ok');
  const after = jyBin('exec', 'caps2', 'sh', '-c', 'cat /tmp/trojan-capdrop 2>/dev/null || echo none');
  assert.ok(
    after.trim() === 'none' || new RegExp(`CapBnd:\\s+${JAIL_CAPBND}`).test(after),
    `a trojan ran with more than the jail's capabilities: ${after}`,
  );
  // the same with a symlink in its place (pointing into the jail's /tmp), across a restart
  jyBin(
    'exec',
    'caps2',
    'sh',
    '-c',
    `rm -rf /tmp/fake && mkdir /tmp/fake && rmdir /.jailyard 2>/dev/null; rm -rf /.jailyard; mv /.jailyard-moved /tmp/moved; ln -s /tmp/fake /.jailyard && ${trojan('capdrop')} && ${trojan('tini')}`,
  );
  r = await jy('restart', 'caps2');
  assert.equal(r.code, 0, r.stderr);
  const pid1 = jyBin('exec', 'caps2', 'grep', 'CapBnd', '/proc/1/status');
  assert.match(pid1, new RegExp(`CapBnd:\\s+${JAIL_CAPBND}`));
  for (const name of ['capdrop', 'tini']) {
    const seen = jyBin('exec', 'caps2', 'sh', '-c', `cat /tmp/trojan-${name} 2>/dev/null || echo none`);
    assert.ok(
      seen.trim() === 'none' || new RegExp(`CapBnd:\\s+${JAIL_CAPBND}`).test(seen),
      `the ${name} trojan ran with more than the jail's capabilities: ${seen}`,
    );
  }
  r = await jy('remove', 'caps2');
  assert.equal(r.code, 0, r.stderr);
  assertNoLeaks(baseline, state);
});

test('CAP_NET_RAW only with allow.raw_sockets, for pid 1 and for every exec (one jailSecurity for jy-stage and jy-enter)', {
  timeout: 120_000,
}, async () => {
  const bit13 = (status: string) => (BigInt(`0x${/CapBnd:\s+([0-9a-f]+)/.exec(status)![1]}`) >> 13n) & 1n;
  for (const [name, extra, want] of [
    ['caps3', [], 0n],
    ['caps4', ['allow.raw_sockets'], 1n],
  ] as const) {
    let r = await jy('create', name, 'skeleton=host', 'persist', 'meta.test=caps', ...extra);
    assert.equal(r.code, 0, r.stderr);
    r = await jy('start', name);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(bit13(jyBin('exec', name, 'cat', '/proc/1/status')), want, `${name}: pid 1`);
    assert.equal(bit13(jyBin('exec', name, 'cat', '/proc/self/status')), want, `${name}: exec`);
    r = await jy('remove', name);
    assert.equal(r.code, 0, r.stderr);
  }
  assertNoLeaks(baseline, state);
});
