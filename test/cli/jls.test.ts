import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatJls, jlsJson } from '../../src/cli/jls.ts';
import type { JailRecord } from '../../src/store/types.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { cliFor } from '../helpers/cli.ts';

function jail(name: string, over: Partial<JailRecord> = {}): JailRecord {
  return {
    name,
    jid: 1,
    state: 'running',
    params: {
      path: `/jails/${name}`,
      'host.hostname': `${name}.example.org`,
      'ip4.addr': ['198.51.100.10/24'],
      persist: true,
    },
    meta: 'app=www\nversion=v1',
    env: 'greeting=hello world',
    revision: 3,
    runtime: null,
    ready: false,
    lastError: null,
    createdAt: '',
    updatedAt: '',
    ...over,
  };
}

test('default listing has jls(8) columns and widths', () => {
  const out = formatJls([jail('www')], { params: [] });
  assert.equal(
    out,
    '   JID  IP Address      Hostname                      Path\n' +
      '     1  198.51.100.10   www.example.org               /jails/www\n',
  );
});

test('-n prints name=value, booleans as name / noname', () => {
  const out = formatJls([jail('www', { params: { persist: false, 'allow.mount': true } })], {
    params: ['name', 'persist', 'allow.mount', 'meta.app'],
    nameval: true,
  });
  assert.equal(out, 'name=www nopersist allow.mount meta.app=www\n');
});

test('-q quotes values with spaces; a missing meta key prints an empty field', () => {
  const out = formatJls([jail('www')], { params: ['env', 'meta.nope'], quoted: true });
  assert.equal(out, '"greeting=hello world" ""\n');
  const plain = formatJls([jail('www')], { params: ['meta.version', 'meta.nope'] });
  assert.equal(plain, 'v1 \n');
});

test('JSON has the libxo shape; a missing key is left out; ip4.addr is a list', () => {
  const doc = JSON.parse(jlsJson([jail('www')], { params: ['name', 'meta.app', 'meta.nope', 'ip4.addr', 'persist'] }));
  assert.deepEqual(doc, {
    __version: '2',
    'jail-information': { jail: [{ name: 'www', 'meta.app': 'www', 'ip4.addr': ['198.51.100.10'], persist: true }] },
  });
  const def = JSON.parse(jlsJson([jail('www')], { params: [] }));
  assert.deepEqual(def['jail-information'].jail[0], {
    jid: 1,
    ipv4: '198.51.100.10',
    hostname: 'www.example.org',
    path: '/jails/www',
  });
});

test('an empty value prints "" like jls; a new jail\'s meta is ""', () => {
  const out = formatJls([jail('www', { meta: '' })], { params: ['meta'] });
  assert.equal(out, '""\n');
  assert.equal(formatJls([jail('www', { meta: '' })], { params: ['meta'], nameval: true }), 'meta=""\n');
});

test('ready is a boolean pseudo-parameter: plain, -n (ready / noready), JSON; -s leaves it out', () => {
  const jails = [jail('a', { ready: true }), jail('b', { ready: false }), jail('c', { ready: undefined })];
  assert.equal(formatJls(jails, { params: ['name', 'ready'] }), 'a true\nb false\nc false\n');
  assert.equal(
    formatJls(jails, { params: ['name', 'ready'], nameval: true }),
    'name=a ready\nname=b noready\nname=c noready\n',
  );
  const doc = JSON.parse(jlsJson(jails, { params: ['name', 'ready'] }));
  assert.deepEqual(doc['jail-information'].jail, [
    { name: 'a', ready: true },
    { name: 'b', ready: false },
    { name: 'c', ready: false },
  ]);
  assert.equal(formatJls([jail('a', { ready: true })], { params: ['name', 'ready'], skip: true }), 'a\n');
});

test('jailyard ls shows the readiness a jail signalled (read from the store, no daemon)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jy-cli-ready-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // the state machine only: no real jail is needed to show a stored value
  const store = openStore(dir);
  store.createJail({ name: 'r1', params: { path: '/nonexistent' } });
  store.transition('r1', 'stopped', 'starting');
  store.transition('r1', 'starting', 'running');
  store.close();
  const jy = cliFor(() => dir);
  assert.deepEqual(await jy('ls', '-n', 'name', 'ready'), { code: 0, stdout: 'name=r1 noready\n', stderr: '' });
  const writer = openStore(dir);
  writer.setReady('r1', true);
  writer.close();
  assert.equal((await jy('ls', 'name', 'ready')).stdout, 'r1 true\n');
  const doc = JSON.parse((await jy('ls', '--json', 'name', 'ready')).stdout);
  assert.deepEqual(doc['jail-information'].jail, [{ name: 'r1', ready: true }]);
});
