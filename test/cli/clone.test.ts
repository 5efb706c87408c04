// clone: a copy of a stopped jail with its own name, hostname and address runs beside the
// original; the copy has the original's files, meta and env, and changes to one are not seen
// in the other.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFor, runBin } from '../helpers/cli.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';
import { miniTree } from '../helpers/mini-skeleton.ts';

let state: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);

function sh(jail: string, script: string): string {
  const r = runBin(state, ['exec', jail, '/bin/sh', '-c', script]);
  assert.equal(r.code, 0, `${jail}: ${script}: ${r.stderr}`);
  return r.stdout;
}

async function params(name: string): Promise<Record<string, unknown>> {
  const r = await jy('ls', '-a', '--json', '-j', name, 'name', 'state', 'host.hostname', 'ip4.addr', 'meta', 'env');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { 'jail-information': { jail: Record<string, unknown>[] } };
  return j['jail-information'].jail[0]!;
}

before(async () => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-clone-'));
  miniTree(join(state, 'src'));
  const r = await jy('skel', 'create', 'mini', '--copy', join(state, 'src'));
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await jy('remove', 'cl1', 'cl2', 'cl3');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
});

test('clone runs beside the original with its own name, hostname and address', { timeout: 120_000 }, async () => {
  let r = await jy(
    'create',
    'cl1',
    'skeleton=mini',
    'persist',
    'ip4.addr=198.51.100.241/24',
    'host.hostname=cl1.example',
    'meta.app=db',
    'env.role=primary',
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await jy('start', 'cl1')).code, 0);
  sh(
    'cl1',
    'echo rows > /root/db.txt && echo conf > /etc/db.conf && rm /etc/group && rm -r /etc/sub && mkdir /etc/sub && echo b > /etc/sub/b.conf',
  );
  // running: refused without --restart, nothing made
  r = await jy('clone', 'cl1', 'cl2');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /running.*--restart/);
  assert.equal(existsSync(join(state, 'jails/cl2')), false);
  assert.deepEqual(
    readdirSync(state).filter((n) => n.startsWith('.clone-')),
    [],
  );
  // --restart: the original stops for the copy and runs again; the clone gets the next free
  // address of the range, its name as hostname
  r = await jy('clone', 'cl1', 'cl2', '--restart');
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await params('cl1')).state, 'running');
  const p2 = await params('cl2');
  assert.equal(p2['host.hostname'], 'cl2');
  assert.notEqual(p2['ip4.addr'], '198.51.100.241');
  assert.match(String(p2['ip4.addr']), /^198\.51\.100\.\d+$/);
  assert.match(String(p2.meta), /app=db/);
  // a given address and hostname; the clone starts beside the running original
  assert.equal((await jy('stop', 'cl1')).code, 0);
  r = await jy('clone', 'cl1', 'cl3', 'ip4.addr=198.51.100.242/24', 'host.hostname=replica', 'env.role=replica');
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await jy('start', 'cl1', 'cl3')).code, 0);
  assert.equal(sh('cl3', 'cat /root/db.txt /etc/db.conf'), 'rows\nconf\n');
  assert.equal(sh('cl3', 'ls /etc/group 2>/dev/null || echo gone'), 'gone\n');
  assert.equal(sh('cl3', 'ls /etc/sub'), 'b.conf\n', 'the opaque mark is copied');
  assert.equal(sh('cl3', 'hostname').trim(), 'replica');
  assert.equal(sh('cl1', 'hostname').trim(), 'cl1.example');
  assert.match(sh('cl3', 'cat /run/jailyard/env'), /role=replica/);
  assert.match(sh('cl1', 'cat /run/jailyard/env'), /role=primary/);
  // each has its own address inside its own network stack
  assert.match(sh('cl3', 'cat /proc/net/fib_trie'), /198\.51\.100\.242/);
  assert.doesNotMatch(sh('cl3', 'cat /proc/net/fib_trie'), /198\.51\.100\.241/);
  // their files are their own from now on
  sh('cl3', 'echo changed > /root/db.txt');
  assert.equal(sh('cl1', 'cat /root/db.txt'), 'rows\n');
  // a name that exists: refused
  assert.equal((await jy('stop', 'cl1')).code, 0);
  r = await jy('clone', 'cl1', 'cl3');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /already exists/);
  assert.equal((await jy('stop', 'cl3')).code, 0);
});

test("a jail with a path of its own: its clone needs one, and gets the root's copy there", {
  timeout: 60_000,
}, async () => {
  let r = await jy('create', 'pj1', 'skeleton=mini', 'persist', `path=${join(state, 'roots/pj1')}`);
  assert.equal(r.code, 0, r.stderr);
  writeFileSync(join(state, 'roots/pj1/root/mine.txt'), 'mine\n');
  r = await jy('clone', 'pj1', 'pj2');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /its own path .*give the clone one \(path=DIR\)/);
  assert.equal(existsSync(join(state, 'jails/pj2')), false);
  // an admin's folder that is not empty is never overwritten
  mkdirSync(join(state, 'roots/busy'), { recursive: true });
  writeFileSync(join(state, 'roots/busy/keep'), 'x');
  r = await jy('clone', 'pj1', 'pj2', `path=${join(state, 'roots/busy')}`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /exists and is not empty/);
  assert.deepEqual(readdirSync(join(state, 'roots/busy')), ['keep']);
  assert.equal((await jy('ls', '-j', 'pj2')).code, 1, 'no jail left');
  r = await jy('clone', 'pj1', 'pj2', `path=${join(state, 'roots/pj2')}`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(state, 'roots/pj2/root/mine.txt'), 'utf8'), 'mine\n');
  assert.equal((await jy('remove', 'pj1', 'pj2')).code, 0);
});
