import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatJls, jlsJson } from '../../src/cli/jls.ts';
import type { JailRecord } from '../../src/store/types.ts';

function jail(name: string, over: Partial<JailRecord> = {}): JailRecord {
  return {
    name,
    jid: 1,
    state: 'running',
    params: { path: `/jails/${name}`, 'host.hostname': `${name}.example.org`, 'ip4.addr': ['198.51.100.10/24'], persist: true },
    meta: 'app=www\nversion=v1',
    env: 'greeting=hello world',
    revision: 3,
    runtime: null,
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
  const out = formatJls([jail('www', { params: { persist: false, 'allow.mount': true } })], { params: ['name', 'persist', 'allow.mount', 'meta.app'], nameval: true });
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
  assert.deepEqual(doc, { __version: '2', 'jail-information': { jail: [{ name: 'www', 'meta.app': 'www', 'ip4.addr': ['198.51.100.10'], persist: true }] } });
  const def = JSON.parse(jlsJson([jail('www')], { params: [] }));
  assert.deepEqual(def['jail-information'].jail[0], { jid: 1, ipv4: '198.51.100.10', hostname: 'www.example.org', path: '/jails/www' });
});

test('an empty value prints "" like jls; a new jail\'s meta is ""', () => {
  const out = formatJls([jail('www', { meta: '' })], { params: ['meta'] });
  assert.equal(out, '""\n');
  assert.equal(formatJls([jail('www', { meta: '' })], { params: ['meta'], nameval: true }), 'meta=""\n');
});
