// Issue 11 item 7: a skeleton made from a live root hands no host secret to its jails. Its
// /etc is an allow-list (defaults skeleton.live), the account files are regenerated (system
// accounts only, passwords locked, modes kept), key and credential material never copied;
// the same for a full copy of a live root. A FAKE root stands for a host with secrets (the
// real /etc is never written); a jail of the real host root still works (users, exec -U).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { binFor, cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

let state: string;
let fake: string;
let baseline: SystemSnapshot;
const jy = cliFor(() => state);
const HASH = `$6$saltsalt$${'h'.repeat(86)}`;
const MARKER = 'JY-SECRET-MARKER-7f3a';

const jyBin = binFor(() => state);

function put(rel: string, text: string, mode = 0o644): void {
  const p = join(fake, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
  chmodSync(p, mode);
}

/** Every file below `dir` whose content contains `needle` (relative paths). */
function filesContaining(dir: string, needle: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    const p = join(dir, rel);
    const st = lstatSync(p);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(rel ? `${rel}/${n}` : n);
    else if (st.isFile() && readFileSync(p).includes(needle)) out.push(rel);
  };
  walk('');
  return out;
}

const shadowGid = Number(execFileSync('getent', ['group', 'shadow'], { encoding: 'utf8' }).split(':')[2]);

before(() => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-fs-secrets-'));
  fake = mkdtempSync(join(tmpdir(), 'jy-fs-secrets-root-'));
  put('usr/bin/true', '#!/bin/sh\n', 0o755);
  put('etc/hostname', 'fakehost\n');
  put('etc/hosts', '127.0.0.1 localhost\n');
  put(
    'etc/passwd',
    'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
  );
  put('etc/group', 'root:x:0:\nsudo:x:27:alice\nshadow:x:42:\nalice:x:1000:\nnogroup:x:65534:\n');
  put(
    'etc/shadow',
    `root:${HASH}:20000:0:99999:7:::\ndaemon:*:20000:0:99999:7:::\nalice:${HASH}:20000:0:99999:7:::\nnobody:*:20000:0:99999:7:::\n`,
    0o640,
  );
  put('etc/gshadow', `root:*::\nsudo:*::alice\nshadow:*::\nalice:!::\nnogroup:*::\n`, 0o640);
  chownSync(join(fake, 'etc/shadow'), 0, shadowGid);
  put('etc/ssl/certs/ca.pem', 'PUBLIC CA\n');
  put('etc/ssl/private/site.key', `${MARKER} ssl\n`, 0o600);
  put('etc/ssh/ssh_host_ed25519_key', `${MARKER} ssh\n`, 0o600);
  put('etc/krb5.keytab', `${MARKER} keytab\n`, 0o600);
  put('etc/machine-id', 'deadbeef\n');
  put('etc/vault-token', `${MARKER} token\n`, 0o600);
  put('etc/myservice/credentials.json', `${MARKER} service\n`, 0o600);
  put('etc/security/opasswd', `${MARKER} old hashes\n`, 0o600);
  put('etc/security/limits.conf', '# limits\n');
  put('root/.bash_history', `${MARKER} history\n`);
  put('home/alice/.ssh/id_ed25519', `${MARKER} alice\n`);
  put('var/backups/shadow.bak', `${MARKER} backup\n`);
});

after(async () => {
  await jy('remove', '-l', 'test=fs-secrets');
  assertNoLeaks(baseline, state);
  rmSync(state, { recursive: true, force: true });
  rmSync(fake, { recursive: true, force: true });
});

function checkEtc(etc: string, where: string): void {
  assert.deepEqual(filesContaining(join(etc, '..'), MARKER), [], `${where}: no secret marker anywhere`);
  assert.equal(existsSync(join(etc, 'ssl/private')), false, `${where}: no ssl/private`);
  assert.equal(existsSync(join(etc, 'machine-id')), false, `${where}: no machine-id`);
  assert.equal(
    readFileSync(join(etc, 'ssl/certs/ca.pem'), 'utf8'),
    'PUBLIC CA\n',
    `${where}: public certificates kept`,
  );
  assert.equal(readFileSync(join(etc, 'hosts'), 'utf8'), '127.0.0.1 localhost\n');
  assert.equal(readFileSync(join(etc, 'security/limits.conf'), 'utf8'), '# limits\n');
  const shadow = readFileSync(join(etc, 'shadow'), 'utf8');
  assert.equal(shadow.includes(HASH), false, `${where}: no password hash`);
  assert.equal(shadow, 'root:*:20000:0:99999:7:::\ndaemon:*:20000:0:99999:7:::\nnobody:*:20000:0:99999:7:::\n');
  const st = lstatSync(join(etc, 'shadow'));
  assert.equal(st.mode & 0o777, 0o640, `${where}: shadow keeps its mode`);
  assert.equal(st.gid, shadowGid, `${where}: shadow keeps its group`);
  assert.equal(readFileSync(join(etc, 'passwd'), 'utf8').includes('alice'), false, `${where}: no human user`);
  assert.equal(readFileSync(join(etc, 'group'), 'utf8'), 'root:x:0:\nsudo:x:27:\nshadow:x:42:\nnogroup:x:65534:\n');
  assert.equal(readFileSync(join(etc, 'gshadow'), 'utf8'), 'root:!::\nsudo:!::\nshadow:!::\nnogroup:!::\n');
}

test('a skeleton from a live root: seed, thin jail and full copy carry no secret of it', async () => {
  let r = await jy('skel', 'create', 'fake', '--from', fake);
  assert.equal(r.code, 0, r.stderr);
  checkEtc(join(state, 'skeletons/fake/1/seed/etc'), 'seed');
  r = await jy('create', 'thin', 'skeleton=fake', 'skeleton.cow=', 'meta.test=fs-secrets');
  assert.equal(r.code, 0, r.stderr);
  checkEtc(join(state, 'jails/thin/root/etc'), 'thin jail');
  r = await jy('create', 'full', 'skeleton=fake', 'skeleton.strategy=full', 'meta.test=fs-secrets');
  assert.equal(r.code, 0, r.stderr);
  const full = join(state, 'jails/full/root');
  checkEtc(join(full, 'etc'), 'full jail');
  assert.equal(readFileSync(join(full, 'usr/bin/true'), 'utf8'), '#!/bin/sh\n', 'the rest of the root is copied');
  assert.deepEqual(readdirSync(join(full, 'root')), [], "root's home is not copied");
  assert.deepEqual(readdirSync(join(full, 'home')), [], 'homes are not copied');
  assert.equal(existsSync(join(full, 'var/backups/shadow.bak')), false, 'var holds no copied file');
});

test('a thin jail of the host root: locked accounts, no human user, and users still work', async () => {
  let r = await jy('skel', 'create', 'host', '--from', '/');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('create', 'hostjail', 'skeleton=host', 'persist', 'meta.test=fs-secrets');
  assert.equal(r.code, 0, r.stderr);
  r = await jy('start', 'hostjail');
  assert.equal(r.code, 0, r.stderr);
  const shadow = jyBin('exec', 'hostjail', 'cat', '/etc/shadow');
  const hostShadow = readFileSync('/etc/shadow', 'utf8');
  for (const line of shadow.split('\n').filter(Boolean)) assert.equal(line.split(':')[1], '*', `locked: ${line}`);
  for (const line of hostShadow.split('\n').filter(Boolean)) {
    const hash = line.split(':')[1]!;
    if (hash.startsWith('$')) assert.equal(shadow.includes(hash), false, 'no password hash of the host');
  }
  const humans = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => Number(f[2]) >= 1000 && f[0] !== 'nobody')
    .map((f) => f[0]!);
  const passwd = jyBin('exec', 'hostjail', 'cat', '/etc/passwd');
  for (const u of humans)
    assert.equal(
      passwd.split('\n').some((l) => l.startsWith(`${u}:`)),
      false,
      `host user ${u} absent`,
    );
  assert.equal(
    jyBin('exec', 'hostjail', 'sh', '-c', 'test -e /etc/machine-id && echo present || echo absent').trim(),
    'absent',
  );
  assert.equal(jyBin('exec', 'hostjail', 'sh', '-c', 'ls /etc/ssl/private 2>/dev/null | wc -l').trim(), '0');
  assert.equal(jyBin('exec', '-U', 'nobody', 'hostjail', 'id', '-un').trim(), 'nobody');
  assert.equal(jyBin('exec', 'hostjail', 'id', '-un').trim(), 'root');
  assert.match(jyBin('exec', 'hostjail', 'getent', 'group', 'nogroup'), /^nogroup:x:65534:/);
});
