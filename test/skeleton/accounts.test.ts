// What a skeleton takes from a live root: account files regenerated (system accounts only,
// passwords locked) and the allow-list narrowing of the seed rules. Pure functions, plus one
// seed of a small tree with the default rules.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { keptGroups, keptUsers, regenerateAccountFile } from '../../src/skeleton/accounts.ts';
import { liveSeedRules, seedWritable } from '../../src/skeleton/writable.ts';
import { loadDefaults } from '../../src/defaults.ts';
import { tempDir, makeSkeleton, makeTree } from './fixtures.ts';

const passwd =
  'root:x:0:0:root:/root:/bin/bash\n# comment\nbin:x:2:2::/bin:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\nweird:x:notanumber:1::/:/bin/sh\n';
const group = 'root:x:0:\nadm:x:4:alice,bin\nalice:x:1000:\nnogroup:x:65534:\n';

describe('account files', () => {
  const users = keptUsers(passwd);
  const groups = keptGroups(group);
  test('system accounts and nobody are kept, humans and malformed lines are not', () => {
    assert.deepEqual([...users], ['root', 'bin', 'nobody']);
    assert.deepEqual([...groups], ['root', 'adm', 'nogroup']);
  });
  test('passwd and group: dropped users leave member lists too', () => {
    assert.equal(
      regenerateAccountFile('passwd', passwd, users, groups),
      'root:x:0:0:root:/root:/bin/bash\nbin:x:2:2::/bin:/usr/sbin/nologin\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n',
    );
    assert.equal(regenerateAccountFile('group', group, users, groups), 'root:x:0:\nadm:x:4:bin\nnogroup:x:65534:\n');
  });
  test("shadow '*', gshadow '!', master.passwd '*': no hash survives", () => {
    const shadow = 'root:$6$a$hash:19000:0:99999:7:::\nalice:$y$j9T$x$y:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n';
    assert.equal(
      regenerateAccountFile('shadow', shadow, users, groups),
      'root:*:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n',
    );
    assert.equal(
      regenerateAccountFile('gshadow', 'adm:$6$x:alice:alice,bin\nalice:!::\n', users, groups),
      'adm:!::bin\n',
    );
    assert.equal(
      regenerateAccountFile('master.passwd', 'root:$2b$hash:0:0::0:0:Charlie &:/root:/bin/csh\n', users, groups),
      'root:*:0:0::0:0:Charlie &:/root:/bin/csh\n',
    );
  });
});

describe('liveSeedRules', () => {
  test('a copied dir with allowed entries below becomes empty, the entries copied', () => {
    const r = liveSeedRules(
      { copy: ['etc', 'root'], structure: ['var'], skip: ['etc/ssh/ssh_host_*', 'etc/x/y'] },
      { allow: ['etc/hosts', 'etc/ssh'], accounts: ['etc/passwd'], secret: ['*.key'] },
    );
    assert.deepEqual(r.copy, ['root', 'etc/hosts', 'etc/ssh']);
    assert.deepEqual(r.empty, ['etc']);
    assert.deepEqual(r.accounts, ['etc/passwd']);
    assert.deepEqual(r.skip, ['etc/ssh/ssh_host_*'], 'a skip outside every allowed entry is dropped');
    assert.deepEqual(r.secret, ['*.key']);
  });
});

describe('seeding a live root with the default rules', () => {
  const t = tempDir('accounts');
  after(t.cleanup);
  const src = join(t.dir, 'src');
  const dest = join(t.dir, 'dest');
  makeSkeleton(src, {
    'etc/shadow': 'root:$6$salt$hash:1::::::\nalice:$6$salt$hash2:1::::::\n',
    'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n',
    'etc/group': 'root:x:0:\n',
    'etc/ssl/private/x.key': 'KEY',
    'etc/ssl/certs/ca.pem': 'CA',
    'etc/app-token': 'T',
    'etc/unknown.conf': 'not on the allow-list',
  });
  chmodSync(join(src, 'etc/shadow'), 0o640);
  mkdirSync(dest);
  const d = loadDefaults().skeleton;
  const res = seedWritable(src, dest, d.writable.linux, { rules: liveSeedRules(d.seed!.linux, d.live!.linux) });
  test('allowed entries only; accounts regenerated with their mode; secrets reported', () => {
    assert.equal(readFileSync(join(dest, 'etc/hosts'), 'utf8'), '127.0.0.1 localhost\n');
    assert.equal(readFileSync(join(dest, 'etc/shadow'), 'utf8'), 'root:*:1::::::\n');
    assert.equal(lstatSync(join(dest, 'etc/shadow')).mode & 0o777, 0o640);
    assert.equal(readFileSync(join(dest, 'etc/ssl/certs/ca.pem'), 'utf8'), 'CA');
    for (const gone of [
      'etc/ssl/private',
      'etc/app-token',
      'etc/unknown.conf',
      'etc/ssh/ssh_host_ed25519_key',
      'etc/ssh',
    ]) {
      assert.equal(existsSync(join(dest, gone)), false, gone);
    }
    assert.ok(res.secret.includes('etc/ssl/private'));
  });
  test('re-seeding a jail leaves its own account files alone', () => {
    makeTree(join(t.dir, 'jail'), { 'etc/passwd': 'mine\n' });
    seedWritable(src, join(t.dir, 'jail'), ['etc'], { rules: liveSeedRules(d.seed!.linux, d.live!.linux) });
    assert.equal(readFileSync(join(t.dir, 'jail/etc/passwd'), 'utf8'), 'mine\n');
  });
});
