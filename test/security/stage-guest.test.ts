// What the host's side shows of a running jail (issue 11 items 8 and 13): the guest folder
// (env, guest socket) is bound only inside the jail's own mount namespace, so no host path
// below the jail's root leads to it; a parent jail's `ps` shows its nested child's jy-stage
// as just "jy-stage" (no host paths, cgroups or pids); the kernel surface holds for every
// thin strategy (read-only /proc/sys, masked /proc/keys, no sysfs). `full` is left out (a
// copy of the host's whole root): its copy stays on the root's filesystem, so /sys is an
// empty directory there too, and the stage mounts the same /proc for every strategy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SecurityHost, STRATEGIES } from './helpers.ts';

let h: SecurityHost;

before(async () => {
  h = await SecurityHost.open('stage-guest');
});

after(async () => {
  await h.close();
});

const hostMounts = () =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4]!);

test("the guest folder is bound in the jail only: readable there, read-only, no mount of it in the host's view", async () => {
  await h.jail('g1', { params: ['env.greeting=hello'] });
  const root = join(h.jailDir('g1'), 'root');
  assert.equal((await h.sh('g1', 'cat /run/jailyard/env')).stdout.trim(), 'greeting=hello');
  const w = await h.sh('g1', 'touch /run/jailyard/x');
  assert.notEqual(w.code, 0);
  assert.match(w.stderr, /Read-only file system/);
  assert.match(
    (await h.sh('g1', 'grep " /run/jailyard " /proc/self/mountinfo')).stdout,
    / \/run\/jailyard ro,nosuid,nodev,noexec/,
  );
  // the host: nothing mounted there, the jail's directory is an empty mount point
  assert.ok(!hostMounts().includes(`${root}/run/jailyard`), "no guest mount in the host's table");
  assert.deepEqual(readdirSync(`${root}/run/jailyard`), [], "no socket or env below the jail's host path");
  // env changes still reach the jail (the folder, not a copy, is bound)
  assert.equal((await h.jy('set', 'g1', 'env.greeting=again')).code, 0);
  assert.equal((await h.sh('g1', 'cat /run/jailyard/env')).stdout.trim(), 'greeting=again');
});

test('a jail that puts a symlink where its guest folder goes gets no bind elsewhere', async () => {
  await h.jail('g2');
  // the mount point itself cannot go while it is mounted: the jail moves its parent away
  const r = await h.sh('g2', 'mv /run /run.old && mkdir /run && ln -s /etc /run/jailyard && ls -ld /run/jailyard');
  assert.equal(r.code, 0, r.stderr);
  // at the next start what the jail put at jailyard's name is moved aside, never followed:
  // the guest folder is bound at a real /run/jailyard, and the jail's /etc is its own
  const restart = await h.jy('restart', 'g2');
  assert.equal(restart.code, 0, restart.stderr);
  const after = await h.sh(
    'g2',
    'test -d /run/jailyard && ! test -L /run/jailyard && ls -d /run/jailyard.moved-* && test -f /etc/passwd',
  );
  assert.equal(after.code, 0, `${after.stdout}${after.stderr}`);
  const mounts = (await h.sh('g2', 'cat /proc/self/mountinfo')).stdout.split('\n').map((l) => l.split(' ')[4]);
  assert.ok(mounts.includes('/run/jailyard'), 'the guest folder is bound at /run/jailyard');
  const etc = await h.sh('g2', 'test -w /etc && touch /etc/jy-own && rm /etc/jy-own');
  assert.equal(etc.code, 0, `the jail's /etc is its own, writable, not the read-only guest folder: ${etc.stderr}`);
});

test("a parent jail's ps shows its nested child's stage as jy-stage, without host paths", async () => {
  await h.jail('np', { params: ['children.max=1'] });
  await h.jail('np.c');
  const ps = await h.sh('np', 'ps -eo args=');
  assert.equal(ps.code, 0, ps.stderr);
  const lines = ps.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  assert.ok(lines.includes('jy-stage'), `the child's stage is listed by name: ${ps.stdout}`);
  for (const l of lines) {
    assert.ok(
      !l.includes(h.state) && !l.includes('/sys/fs/cgroup') && !l.includes('/proc/'),
      `a host path in the parent's ps: ${l}`,
    );
  }
});

for (const strategy of STRATEGIES.filter((s) => s !== 'full')) {
  test(`${strategy}: /proc/sys read-only, /proc/keys masked, no sysfs`, async () => {
    const name = `k${strategy}`;
    await h.jail(name, { strategy });
    const r = await h.sh(
      name,
      'echo core > /proc/sys/kernel/core_pattern; wc -c < /proc/keys; grep -c " sysfs " /proc/self/mountinfo; true',
    );
    assert.match(r.stderr, /Read-only file system/);
    assert.deepEqual(r.stdout.trim().split('\n'), ['0', '0']);
    assert.equal((await h.jy('remove', name)).code, 0);
    h.jails.delete(name);
  });
}
