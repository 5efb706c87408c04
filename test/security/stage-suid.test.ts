// Setuid in the jail's view (issue 11 item 8, the jail's side): the host-side mounts of a
// jail are nosuid (a local user never runs a setuid program the jailed root planted), and
// jy-stage clears nosuid on exactly the mounts of MountFacts.suid in the jail's own mount
// namespace: su/sudo-style setuid works inside the jail as before.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { StageHost, consoleLog, sh, waitForLog, type StageJail } from './stage-fixture.ts';

let host: StageHost;

before(() => {
  host = new StageHost('stage-suid');
});

after(async () => {
  await host.close();
});

/** The mount options (field 6 of mountinfo) of the mount at `target` in /proc/PID's view. */
function mountOptions(pid: number | 'self', target: string): string | undefined {
  const line = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4] === target)
    .pop();
  return line?.split(' ')[5];
}

test('a setuid-root copy of id run as nobody: euid 0 inside the jail, not for a local user on the host', async () => {
  const jail: StageJail = host.define();
  await host.start(jail, {
    beforeCreate: (j) => {
      copyFileSync('/usr/bin/id', `${j.root}/tmp/id-suid`);
      chmodSync(`${j.root}/tmp/id-suid`, 0o4755);
    },
    holder: [
      '/bin/sh',
      '-c',
      'echo "euid=$(setpriv --reuid 65534 --regid 65534 --clear-groups /tmp/id-suid -u)"; echo suid-done; exec sleep infinity',
    ],
  });
  const log = await waitForLog(jail, 'suid-done');
  const suid = jail.mounts!.suid ?? [];
  assert.ok(suid.includes(jail.root), `the root is one of the setuid mounts: ${suid}`);
  // the host's view: nosuid (the mount step's part), so a local user gains nothing
  assert.match(mountOptions('self', jail.root) ?? '', /(^|,)nosuid(,|$)/, 'the host sees the jail root nosuid');
  const local = spawnSync(
    'setpriv',
    ['--reuid', '65534', '--regid', '65534', '--clear-groups', `${jail.root}/tmp/id-suid`, '-u'],
    { encoding: 'utf8' },
  );
  assert.equal(local.stdout.trim(), '65534', `a local user gets no euid 0: ${local.stdout} ${local.stderr}`);
  // the jail's view: setuid honoured
  assert.match(log, /^euid=0$/m, consoleLog(jail));
  assert.doesNotMatch(
    mountOptions(jail.facts!.initPid, '/') ?? 'nosuid',
    /(^|,)nosuid(,|$)/,
    'the jail sees its root without nosuid',
  );
  // and in a program started by exec
  const r = await sh(jail, 'setpriv --reuid 65534 --regid 65534 --clear-groups /tmp/id-suid -u');
  assert.equal(r.stdout.trim(), '0', r.stderr);
  await host.stop(jail);
});

test('a mount the user asked nosuid stays nosuid in the jail', async () => {
  const jail: StageJail = host.define();
  jail.plan.mkdirs.push(`${jail.root}/mnt`);
  jail.plan.mounts.push({
    kind: 'tmpfs',
    target: `${jail.root}/mnt`,
    options: ['nosuid', 'mode=755'],
    origin: 'mount',
  });
  await host.start(jail);
  assert.ok(!(jail.mounts!.suid ?? []).includes(`${jail.root}/mnt`));
  assert.match(mountOptions(jail.facts!.initPid, '/mnt') ?? '', /(^|,)nosuid(,|$)/);
  await host.stop(jail);
});
