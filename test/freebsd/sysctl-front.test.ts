// compat/freebsd/bin/sysctl: FreeBSD's jail sysctls answered by jailyard (through
// `jailyard sysctl --pass-unknown`), every other name by the system's sysctl. Run as the
// program a FreeBSD script runs, with a state folder of this file's own; no jail is started.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { jailTreeValue, sysctlMain } from '../../src/cli/freebsd/sysctl.ts';
import type { JailRecord } from '../../src/store/types.ts';

const sysctlFront = new URL('../../compat/freebsd/bin/sysctl', import.meta.url).pathname;

let dir: string;
let state: string;
before(() => {
  dir = mkdtempSync('/tmp/jy-sysctl-front-');
  state = join(dir, 'state');
});
after(() => rmSync(dir, { recursive: true, force: true }));

function sysctl(...args: string[]) {
  const r = spawnSync(sysctlFront, args, { encoding: 'utf8', env: { ...process.env, JAILYARD_STATE: state } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the sysctl front', () => {
  test('security.jail.meta_maxbufsize: read, and write as FreeBSD prints it', async () => {
    assert.deepEqual(sysctl('-n', 'security.jail.meta_maxbufsize'), { code: 0, stdout: '4096\n', stderr: '' });
    assert.equal(sysctl('security.jail.meta_maxbufsize').stdout, 'security.jail.meta_maxbufsize: 4096\n');
    assert.deepEqual(sysctl('security.jail.meta_maxbufsize=4097'), {
      code: 0,
      stdout: 'security.jail.meta_maxbufsize: 4096 -> 4097\n',
      stderr: '',
    });
    assert.equal(sysctl('-n', 'security.jail.meta_maxbufsize=4096').stdout, '4097 -> 4096\n');
    // the store is what jail(8) checks buffers against
    assert.equal((await runCli(['--state', state, 'sysctl', '-n', 'meta_maxbufsize'])).stdout, '4096\n');
  });

  test('a bad value or a read-only name: sysctl(8)-style error, exit 1, nothing changed', () => {
    const bad = sysctl('security.jail.meta_maxbufsize=abc');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^sysctl: invalid value "abc" for meta_maxbufsize: not an integer\n$/);
    const ro = sysctl('kern.features.vimage=1');
    assert.deepEqual(ro, { code: 1, stdout: '', stderr: "sysctl: oid 'kern.features.vimage' is read only\n" });
    assert.equal(sysctl('-n', 'security.jail.meta_maxbufsize').stdout, '4096\n');
  });

  test("security.jail.children.max/.cur on the host: prison0's JAIL_MAX and the jails that exist, read-only", () => {
    assert.deepEqual(sysctl('-n', 'security.jail.children.max', 'security.jail.children.cur'), {
      code: 0,
      stdout: '999999\n0\n',
      stderr: '',
    });
    assert.equal(
      sysctl('-d', 'security.jail.children.cur').stdout,
      'security.jail.children.cur: Current number of child jails\n',
    );
    assert.deepEqual(sysctl('security.jail.children.max=5'), {
      code: 1,
      stdout: '',
      stderr: "sysctl: oid 'security.jail.children.max' is read only\n",
    });
  });

  test('jailTreeValue and the in-jail sysctl: a jail counts the records below it at any depth (stopped ones too: children.max bounds them), never a sibling', async () => {
    const rec = (name: string, state: JailRecord['state'], params: JailRecord['params'] = {}) =>
      ({ name, state, params, jid: 0 }) as JailRecord;
    const all = [
      rec('a', 'running', { 'children.max': 5 }),
      rec('a.b', 'running', { 'children.max': 2 }),
      rec('a.b.c', 'running'),
      rec('a.d', 'stopped'),
      rec('e', 'running'),
      rec('e.f', 'running'),
      rec('g', 'stopped'),
    ];
    assert.equal(jailTreeValue('security.jail.children.max', all), 999999);
    assert.equal(jailTreeValue('security.jail.children.cur', all), 7, 'every jail, at any depth');
    assert.equal(jailTreeValue('security.jail.children.max', all, 'a'), 5);
    assert.equal(jailTreeValue('security.jail.children.cur', all, 'a'), 3, 'a.b, a.b.c and the stopped a.d');
    assert.equal(jailTreeValue('security.jail.children.cur', all, 'a.b'), 1);
    assert.equal(jailTreeValue('security.jail.children.max', all, 'e'), 0, 'unset: 0');
    // the front for a caller inside e: e's own values, forms as sysctl(8)
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) };
    const scope = { root: 'e', service: { list: async () => all, get: async () => all[0]! } };
    assert.equal(await sysctlMain(['-n', 'security.jail.children.max', 'security.jail.children.cur'], io, scope), 0);
    assert.equal(await sysctlMain(['-e', 'security.jail.children.cur'], io, scope), 0);
    assert.deepEqual(out, ['0\n', '1\n', 'security.jail.children.cur=1\n']);
    assert.equal(await sysctlMain(['security.jail.meta_maxbufsize', 'kern.ostype'], io, scope), 1);
    assert.deepEqual(err, [
      "sysctl: unknown oid 'security.jail.meta_maxbufsize'\n",
      "sysctl: unknown oid 'kern.ostype'\n",
    ]);
    assert.equal(await sysctlMain(['-x'], io, scope), 1);
  });

  test('kern.features.vimage is 0 (no epair(4)); the host has no env of its own', () => {
    assert.deepEqual(sysctl('-qn', 'kern.features.vimage'), { code: 0, stdout: '0\n', stderr: '' });
    assert.deepEqual(sysctl('-n', 'security.jail.env'), { code: 0, stdout: '\n', stderr: '' });
    assert.equal(sysctl('security.jail.env').stdout, 'security.jail.env: \n');
  });

  test('security.jail.param.meta/.env: the hard limit, or the longest stored buffer when that is longer', async () => {
    const path = join(dir, 'root');
    mkdirSync(path);
    assert.equal(sysctl('security.jail.meta_maxbufsize=4097').code, 0);
    // 4096 characters + NUL: allowed by 4097 only
    const r = await runCli(['--state', state, 'create', 'big', `path=${path}`, `meta=${'x'.repeat(4096)}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sysctl('security.jail.meta_maxbufsize=4096').code, 0);
    assert.equal(sysctl('-n', 'security.jail.param.meta', 'security.jail.param.env').stdout, '4097\n4097\n');
    assert.equal((await runCli(['--state', state, 'remove', 'big'])).code, 0);
    assert.equal(sysctl('-n', 'security.jail.param.meta').stdout, '4096\n');
  });

  test("any other name is the system's sysctl's, alone or beside jailyard's", () => {
    const system = spawnSync('sysctl', ['-n', 'kernel.ostype'], { encoding: 'utf8' }).stdout;
    assert.equal(system, 'Linux\n');
    assert.deepEqual(sysctl('-n', 'kernel.ostype'), { code: 0, stdout: system, stderr: '' });
    assert.deepEqual(sysctl('-n', 'kernel.ostype', 'security.jail.meta_maxbufsize'), {
      code: 0,
      stdout: 'Linux\n4096\n',
      stderr: '',
    });
    const missing = sysctl('-n', 'security.jail.meta_maxbufsize', 'no.such.oid');
    assert.notEqual(missing.code, 0);
    assert.equal(missing.stdout, '4096\n');
    assert.match(missing.stderr, /no\/such\/oid|no\.such\.oid/);
  });
});
