// apply -f jail.conf: create-or-modify-and-start (jail -cm), --dry-run plans, depend order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;

const jy = cliFor(() => state);

const conf = (log: string, webAddr: string, webHost: string) => `
# two thin jails; web depends on db
skeleton = host;
persist;
meta = "test=apply";
exec.prestart = "echo $name >> ${log}";
db { ip4.addr = 198.51.100.51/24; }
web {
	depend = db;
	ip4.addr = ${webAddr};
	host.hostname = "${webHost}";
}
`;

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-cli-apply-'));
  assert.equal((await jy('skel', 'create', 'host', '--from', '/')).code, 0);
});

after(async () => {
  await jy('remove', '-l', 'test=apply');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test("apply --dry-run prints the plan with each jail's mounts and changes nothing", async () => {
  const file = join(state, 'jail.conf');
  writeFileSync(file, conf(join(state, 'order.log'), '198.51.100.52/24', 'web.test'));
  const r = await jy('apply', '-f', file, '--dry-run', '--json');
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.deepEqual(
    doc.actions.map((a: { jail: string; action: string }) => [a.jail, a.action]),
    [
      ['db', 'create'],
      ['web', 'create'],
    ],
  );
  const webMounts = doc.plans.web.mounts as { kind: string; target: string; readonly?: boolean; origin: string }[];
  assert.ok(
    webMounts.some((m) => m.kind === 'bind' && m.readonly && m.target.endsWith('/jails/web/root/usr/bin')),
    "the skeleton's read-only /usr/bin",
  );
  // the guest folder is bound by the stage in the jail's own namespace: the plan makes its mount point
  assert.ok(
    (doc.plans.web.mkdirs as string[]).some((d) => d.endsWith('/jails/web/root/run/jailyard')),
    "the guest folder's mount point",
  );
  assert.match(r.stderr, /web: create, start\n( {2}.*\n)* {2}set depend = \["db"\]/);
  assert.match(r.stderr, /mount ro bind \/usr\/bin .*\/jails\/web\/root\/usr\/bin \(skeleton-ro\)/);
  const ls = await jy('ls', '-a', '-q', 'name');
  assert.equal(ls.stdout, '', 'nothing was created');
});

test('apply creates and starts in depend order, modifies in place, restarts for fixed parameters', {
  timeout: 180_000,
}, async () => {
  const file = join(state, 'jail.conf');
  const log = join(state, 'order.log');
  writeFileSync(file, conf(log, '198.51.100.52/24', 'web.test'));
  let r = await jy('apply', '-f', file);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['db', 'web'], 'db (a dependency) started first');
  r = await jy('ls', '-l', 'test=apply', 'name', 'state', 'host.hostname');
  assert.equal(r.stdout, 'db running db\nweb running web.test\n');

  // hostname changes in place; nothing restarts
  writeFileSync(file, conf(log, '198.51.100.52/24', 'www.test'));
  r = await jy('apply', '-f', file);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /web: modified/);
  assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['db', 'web'], 'no restart');
  r = await jy('ls', '-j', 'web', 'host.hostname');
  assert.equal(r.stdout, 'www.test\n');

  // an address cannot change while running: apply restarts that jail only
  writeFileSync(file, conf(log, '198.51.100.53/24', 'www.test'));
  r = await jy('apply', '-f', file, '--dry-run');
  assert.match(r.stderr, /web: modify \(restart needed\)/);
  r = await jy('apply', '-f', file);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['db', 'web', 'web']);
  r = await jy('ls', '--json', '-j', 'web', 'ip4.addr');
  assert.deepEqual(JSON.parse(r.stdout)['jail-information'].jail[0]['ip4.addr'], ['198.51.100.53']);

  // the same file again: nothing to do
  r = await jy('apply', '-f', file, '--dry-run', '--json');
  assert.deepEqual(
    JSON.parse(r.stdout).actions.map((a: { action: string }) => a.action),
    ['unchanged', 'unchanged'],
  );

  r = await jy('stop', '-l', 'test=apply');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /web: exec\.release\n(.*\n)*db: exec\.prestop/, 'web (the dependent) stopped before db');
});
