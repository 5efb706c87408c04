// A batch verb naming a jail that does not exist changes nothing: `remove a b` with no b
// keeps a (stopped or running), and start/stop/restart check every name before acting.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);

/** The names and states `ls -a --json name state` reports. */
async function states(): Promise<Record<string, string>> {
  const r = await jy('ls', '-a', '--json', 'name', 'state');
  assert.equal(r.code, 0, r.stderr);
  const jails = (JSON.parse(r.stdout) as { 'jail-information': { jail: { name: string; state: string }[] } })[
    'jail-information'
  ].jail;
  return Object.fromEntries(jails.map((j) => [j.name, j.state]));
}

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-cli-remove-'));
  let r = await jy('skel', 'create', 'host', '--from', '/');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('create', 'rma', 'skeleton=host', 'persist', 'meta.test=remove');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('create', 'rmc', 'skeleton=host', 'persist', 'meta.test=remove');
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await jy('remove', '-l', 'test=remove');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('remove a b, b missing: an error naming b, and a (stopped) is kept', async () => {
  const r = await jy('remove', 'rma', 'nosuch');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /jail "nosuch" not found/);
  assert.doesNotMatch(r.stderr, /rma: removed/);
  assert.deepEqual(await states(), { rma: 'stopped', rmc: 'stopped' });
});

test('several missing names are all named, nothing is changed', async () => {
  const r = await jy('remove', 'nosuch1', 'rma', 'nosuch2');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /jails "nosuch1", "nosuch2" not found; nothing was changed/);
  assert.deepEqual(await states(), { rma: 'stopped', rmc: 'stopped' });
});

test('--if-revision: not an integer is a usage error; a stale revision changes nothing', async () => {
  for (const args of [
    ['remove', 'rmc'],
    ['set', 'rmc', 'meta.k=v'],
  ]) {
    const r = await jy(...args, '--if-revision', 'x');
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /--if-revision needs an integer, not "x"/);
  }
  const ls = await jy('ls', '-a', '-j', 'rmc', '--json', 'revision');
  const rev = Number(JSON.parse(ls.stdout)['jail-information'].jail[0].revision);
  assert.ok(Number.isInteger(rev), ls.stdout);
  for (const args of [
    ['remove', 'rmc'],
    ['set', 'rmc', 'meta.k=v'],
  ]) {
    const r = await jy(...args, '--if-revision', String(rev + 5));
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, new RegExp(`revision conflict: expected revision ${rev + 5}, jail is at revision ${rev}`));
  }
  assert.deepEqual(await states(), { rma: 'stopped', rmc: 'stopped' });
  const r = await jy('set', 'rmc', 'meta.k=v', '--if-revision', String(rev));
  assert.equal(r.code, 0, r.stderr);
});

test('start/stop/restart/remove with a missing name leave running and stopped jails as they are', async () => {
  let r = await jy('start', 'rma', 'nosuch');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /jail "nosuch" not found/);
  assert.deepEqual(await states(), { rma: 'stopped', rmc: 'stopped' });

  r = await jy('start', 'rma');
  assert.equal(r.code, 0, r.stderr);
  for (const verb of ['stop', 'restart', 'remove']) {
    r = await jy(verb, 'rma', 'rmc', 'nosuch');
    assert.equal(r.code, 1, verb);
    assert.match(r.stderr, /jail "nosuch" not found/, verb);
    assert.deepEqual(await states(), { rma: 'running', rmc: 'stopped' }, verb);
  }

  // the same names without the missing one: both go
  r = await jy('remove', 'rma', 'rmc');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /rma: removed/);
  assert.match(r.stderr, /rmc: removed/);
  assert.deepEqual(await states(), {});
});
