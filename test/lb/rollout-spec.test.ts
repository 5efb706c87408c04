import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freeAddress, specForNewJail } from '../../src/lb/rollout.ts';
import { parseConfString } from '../../src/conf/evaluate.ts';

test('a new jail from a template takes its own name where $name stood, and its own address', () => {
  const [template] = parseConfString(
    'www { skeleton = host; persist; host.hostname = "$name.jailyard.test"; path = "/jails/$name/root"; ip4.addr = 198.51.100.9/24; }\n',
    't.conf',
  );
  const spec = specForNewJail(template!, 'www-v2-1', '198.51.100.7');
  assert.equal(spec.name, 'www-v2-1');
  assert.equal(spec.params['host.hostname'], 'www-v2-1.jailyard.test');
  assert.equal(spec.params.path, '/jails/www-v2-1/root');
  assert.deepEqual(spec.params['ip4.addr'], ['198.51.100.7/24']);
  assert.equal(spec.params.skeleton, 'host');
});

test('freeAddress skips addresses other jails hold', () => {
  const jails = [{ params: { 'ip4.addr': ['198.51.100.2/24'] } }, { params: { 'ip4.addr': ['198.51.100.3/24'] } }];
  assert.equal(freeAddress(jails), '198.51.100.4');
});
