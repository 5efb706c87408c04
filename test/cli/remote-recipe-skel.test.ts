// `recipe apply` and `skel create --oci-archive` over --host (issue #17: every verb works over
// --host and the API as well as locally), against a real `jailyard serve --listen` with a
// token. The recipe is parsed on the caller's side (its INCLUDE and CP files are the
// caller's), sent as a bundle, and run by the daemon with the local executor: a failing step
// names its file:line:col, CP never writes through a symlink the jail placed, and a bundle
// that names files of the daemon's host (INCLUDE /etc/passwd, a CP source it does not hold)
// is refused without reading them. An image archive streamed to the daemon becomes a
// skeleton there; a hostile archive and a body over maxSize are refused, nothing left.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { request } from 'undici';
import { binArgs, cliFor, runBin } from '../helpers/cli.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';
import { ociLayout, tar, tarOfFiles } from '../skeleton/oci-fixtures.ts';

let A: string; // the daemon's state folder (the jail host)
let C: string; // the caller's state folder (never used with --host)
let work: string; // the caller's files
let baseline: SystemSnapshot;
let daemon: ChildProcess;
let url: string;
const token = `remote-test-${process.pid}-${Date.now()}`;
const jyA = cliFor(() => A);
const jyC = cliFor(() => C);
const remote = (...args: string[]) => jyC('--host', url, ...args);

function sh(jail: string, script: string): string {
  const r = runBin(A, ['exec', jail, '/bin/sh', '-c', script]);
  assert.equal(r.code, 0, `${jail}: ${script}: ${r.stderr}`);
  return r.stdout;
}

async function api(method: 'POST' | 'GET', path: string, body?: unknown) {
  const res = await request(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.statusCode, text: await res.body.text() };
}

/** What an upload must not leave in the daemon's state folder. */
function noUploads(): void {
  assert.deepEqual(
    readdirSync(A).filter((n) => n.startsWith('.upload-')),
    [],
    'no spooled upload left',
  );
}

before(async () => {
  baseline = snapshot();
  A = mkdtempSync(join(tmpdir(), 'jy-remote-a-'));
  C = mkdtempSync(join(tmpdir(), 'jy-remote-c-'));
  work = mkdtempSync(join(tmpdir(), 'jy-remote-work-'));
  const r = await jyA('skel', 'create', 'host', '--from', '/');
  assert.equal(r.code, 0, r.stderr);
  const tokenFile = join(A, 'token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  daemon = spawn(process.execPath, binArgs(A, 'serve', '--listen', '127.0.0.1:0', '--token-file', tokenFile), {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 30_000);
    daemon.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
      const m = / and (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    daemon.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited ${code}: ${stderr}`));
    });
  });
  process.env.JAILYARD_TOKEN = token;
});

after(async () => {
  delete process.env.JAILYARD_TOKEN;
  await jyA('remove', '-l', 'test=remote');
  if (daemon.exitCode === null && daemon.signalCode === null) {
    daemon.kill('SIGTERM');
    await once(daemon, 'exit');
  }
  assert.deepEqual(readdirSync(C), [], "the caller's state folder was never used");
  assertNoLeaks(baseline, A);
  rmSync(A, { recursive: true, force: true });
  rmSync(C, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

test("recipe apply over --host: INCLUDE and CP are the caller's files, steps run in the jail on the daemon's host", {
  timeout: 180_000,
}, async () => {
  const dir = join(work, 'site');
  mkdirSync(join(dir, 'lib'), { recursive: true });
  writeFileSync(join(dir, 'lib/Jailfile'), 'ARG who\nMETA owner=${who}\nENV GREETING="hello ${who}"\n');
  writeFileSync(join(dir, 'page.html'), '<p>remote</p>\n');
  chmodSync(join(dir, 'page.html'), 0o640);
  writeFileSync(
    join(dir, 'Jailfile'),
    [
      'ARG port=80',
      'INCLUDE lib/Jailfile who=caller',
      'CP page.html /srv/www/index.html',
      'SYSRC -f /etc/site.conf port=${port}',
      'RUN echo ran in $(hostname)',
    ].join('\n'),
  );
  let r = await remote('create', 'rr1', 'skeleton=host', 'persist', 'meta.test=remote');
  assert.equal(r.code, 0, r.stderr);
  r = await remote('recipe', 'apply', dir, 'rr1', '--arg', 'port=8080', '--json');
  assert.equal(r.code, 0, r.stderr);
  const first = JSON.parse(r.stdout) as { started: boolean; steps: { kind: string; result: string; place: string }[] };
  assert.equal(first.started, true);
  assert.deepEqual(
    first.steps.map((s) => `${s.kind} ${s.result}`),
    ['META changed', 'ENV changed', 'CP changed', 'SYSRC changed', 'RUN changed'],
  );
  assert.equal(first.steps[0]!.place, `${join(dir, 'lib/Jailfile')}:2`, "the caller's file:line");
  assert.match(r.stderr, /ran in rr1/, "RUN's output comes back");
  assert.match(r.stderr, /Jailfile:3 CP page\.html \/srv\/www\/index\.html: changed/);
  assert.equal(sh('rr1', 'cat /srv/www/index.html; stat -c %a /srv/www/index.html'), '<p>remote</p>\n640\n');
  assert.equal(sh('rr1', 'cat /etc/site.conf'), 'port="8080"\n');
  r = await jyA('ls', '-j', 'rr1', 'meta.owner', 'env.GREETING');
  assert.equal(r.stdout, 'caller hello caller\n');
  // again: nothing changes but RUN
  r = await remote('recipe', 'apply', dir, 'rr1', '--arg', 'port=8080', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    (JSON.parse(r.stdout) as { steps: { kind: string; result: string }[] }).steps
      .filter((s) => s.result === 'changed')
      .map((s) => s.kind),
    ['RUN'],
  );

  // a failing step: its file:line:col and its output, what came before stays done
  const fail = join(work, 'fail');
  mkdirSync(fail);
  writeFileSync(join(fail, 'Jailfile'), 'META before=1\nRUN echo about to fail; exit 3\nMETA after=1\n');
  r = await remote('recipe', 'apply', fail, 'rr1');
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(
      `${join(fail, 'Jailfile')}:2:1, jail "rr1", step recipe RUN: RUN echo about to fail; exit 3 failed: exited with status 3`,
    ),
  );
  assert.match(r.stderr, /about to fail/);
  r = await jyA('ls', '-j', 'rr1', 'meta.before', 'meta.after');
  assert.equal(r.stdout, '1 \n');
  // a syntax error: refused on the caller's side, nothing sent
  writeFileSync(join(fail, 'Jailfile'), 'META syntax=1\nBOGUS\n');
  r = await remote('recipe', 'apply', fail, 'rr1');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Jailfile:2:1: unknown instruction "BOGUS"/);
  // an unknown jail: the daemon's 404
  writeFileSync(join(fail, 'Jailfile'), 'META x=1\n');
  r = await remote('recipe', 'apply', fail, 'no-such-jail');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no-such-jail.*not found/);

  // CP: never through a symlink the jail placed; never a source out of the caller's folder
  const victim = join(work, 'host-victim');
  writeFileSync(victim, 'host file\n');
  const cp = join(work, 'cp');
  mkdirSync(cp);
  writeFileSync(join(cp, 'payload'), 'payload\n');
  sh('rr1', `mkdir -p /var/x && ln -s /etc /var/x/dir && ln -s ${victim} /var/x/file`);
  for (const dst of ['/var/x/dir/payload', '/var/x/file']) {
    writeFileSync(join(cp, 'Jailfile'), `CP payload ${dst}\n`);
    r = await remote('recipe', 'apply', cp, 'rr1');
    assert.equal(r.code, 1, dst);
    assert.match(r.stderr, /Jailfile:1:1, jail "rr1", step recipe CP.*symbolic link: not followed/s, dst);
  }
  assert.equal(readFileSync(victim, 'utf8'), 'host file\n');
  assert.equal(runBin(A, ['exec', 'rr1', 'test', '-e', '/etc/payload']).code, 1);
  symlinkSync(victim, join(cp, 'sneaky'));
  writeFileSync(join(cp, 'Jailfile'), 'CP sneaky /tmp/sneaky\n');
  r = await remote('recipe', 'apply', cp, 'rr1');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /leads out of the recipe's folder/);
  assert.equal(runBin(A, ['exec', 'rr1', 'test', '-e', '/tmp/sneaky']).code, 1);

  // a bundle made by hand: the daemon parses it again and reads no file of its own
  const hostile: [unknown, RegExp][] = [
    [
      { file: '/r/Jailfile', recipes: { '/r/Jailfile': 'INCLUDE /etc/passwd\n' } },
      /cannot read the included recipe \/etc\/passwd/,
    ],
    [{ file: '/etc/passwd', recipes: {} }, /cannot read the recipe \/etc\/passwd/],
    [
      { file: '/r/Jailfile', recipes: { '/r/Jailfile': 'CP a /etc/x\n' }, sources: {} },
      /does not hold the CP source \/r\/a/,
    ],
    [
      { file: '/r/Jailfile', recipes: { '/r/Jailfile': 'CP ../../etc/shadow /x\n' }, sources: {} },
      /relative path without "\.\."/,
    ],
    [
      {
        file: '/r/Jailfile',
        recipes: { '/r/Jailfile': 'CP a /../../x\n' },
        sources: { '/r/a': { mode: 420, data: '' } },
      },
      /must not contain "\.\."/,
    ],
  ];
  for (const [body, why] of hostile) {
    const res = await api('POST', '/v1/jails/rr1/recipe', body);
    assert.equal(res.status, 400, res.text);
    assert.match((JSON.parse(res.text) as { message: string }).message, why);
  }
  // a setuid mode in the bundle: the copy in the jail drops it
  const suid = await api('POST', '/v1/jails/rr1/recipe', {
    file: '/r/Jailfile',
    recipes: { '/r/Jailfile': 'CP a /opt/suid\n' },
    sources: { '/r/a': { mode: 0o4755, data: Buffer.from('#!/bin/sh\n').toString('base64') } },
  });
  assert.equal(suid.status, 200);
  assert.match(suid.text, /"report"/);
  assert.equal(sh('rr1', 'stat -c %a /opt/suid'), '755\n');
  // no token: nothing runs
  const denied = await request(`${url}/v1/jails/rr1/recipe`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ file: '/r/Jailfile', recipes: { '/r/Jailfile': 'META denied=1\n' } }),
  });
  assert.equal(denied.statusCode, 401);
  await denied.body.text();
  r = await jyA('ls', '-j', 'rr1', 'meta.denied');
  assert.equal(r.stdout, '\n');
  r = await remote('remove', 'rr1');
  assert.equal(r.code, 0, r.stderr);
});

/** An OCI layout tar with one small layer. */
function imageTar(file: string, entries: Parameters<typeof tar>[0]): string {
  const dir = mkdtempSync(join(work, 'layout-'));
  ociLayout(dir, [{ tar: tar(entries) }]);
  const files: Record<string, Buffer> = {};
  const walk = (rel: string): void => {
    for (const f of readdirSync(join(dir, rel))) {
      const p = rel ? `${rel}/${f}` : f;
      if (statSync(join(dir, p)).isDirectory()) walk(p);
      else files[p] = readFileSync(join(dir, p));
    }
  };
  walk('');
  writeFileSync(file, tarOfFiles(files));
  rmSync(dir, { recursive: true, force: true });
  return file;
}

test('skel create --oci-archive over --host: the archive is sent; hostile and too large ones are refused, nothing left', {
  timeout: 120_000,
}, async () => {
  const good = imageTar(join(work, 'small.tar'), [
    { name: 'etc/', type: '5' },
    { name: 'etc/motd', data: 'from the image\n' },
    { name: 'bin/', type: '5' },
  ]);
  let r = await remote('skel', 'create', 'img', '--oci-archive', good, '--json');
  assert.equal(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout) as { name: string; version: number; kind: string; root: string };
  assert.deepEqual([v.name, v.version, v.kind], ['img', 1, 'owned']);
  assert.match(r.stderr, /skeleton img@1 on http:.*oci-archive upload:small\.tar/);
  assert.equal(readFileSync(join(A, 'skeletons/img/1/root/etc/motd'), 'utf8'), 'from the image\n');
  const list = await api('GET', '/v1/skeletons');
  const img = (JSON.parse(list.text) as { items: { name: string; versions: { source: string }[] }[] }).items.find(
    (s) => s.name === 'img',
  );
  assert.equal(img?.versions[0]?.source, 'oci-archive upload:small.tar');
  assert.equal(existsSync(join(C, 'skeletons')), false, "nothing made on the caller's side");
  noUploads();

  // hostile: a layer entry that climbs out of the tree
  const victim = join(work, 'img-victim');
  mkdirSync(victim);
  const evil = imageTar(join(work, 'evil.tar'), [{ name: `${'../'.repeat(12)}${victim.slice(1)}/evil`, data: 'x' }]);
  r = await remote('skel', 'create', 'evil', '--oci-archive', evil);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /layer 1 .*entry ".*evil".*"\.\."/);
  assert.equal(existsSync(join(A, 'skeletons/evil')), false, 'nothing of the skeleton left');
  assert.deepEqual(readdirSync(victim), []);
  noUploads();

  // over maxSize: refused while it comes, nothing left
  // (random bytes: the layer's gzip does not make them smaller)
  const big = imageTar(join(work, 'big.tar'), [{ name: 'blob', data: randomBytes(256 * 1024) }]);
  r = await remote('skel', 'create', 'big', '--oci-archive', big, '--max-size', '64K');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /larger than 65536 bytes.*no skeleton was made/);
  assert.equal(existsSync(join(A, 'skeletons/big')), false);
  noUploads();
  // the same without a content-length (chunked): read to its end, written up to the cap, 413
  const chunked = await request(`${url}/v1/skeletons/big?maxSize=64K`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-tar' },
    body: Readable.from([readFileSync(big)]),
  });
  const answer = await chunked.body.text();
  assert.equal(chunked.statusCode, 413, answer);
  assert.match(answer, /JY_ERR_BODY_TOO_LARGE/);
  assert.equal(existsSync(join(A, 'skeletons/big')), false);
  noUploads();
  // the other sources are folders of the caller: refused over --host
  r = await remote('skel', 'create', 'nope', '--copy', work);
  assert.equal(r.code, 2, 'a usage error');
  assert.match(r.stderr, /over --host, skel create takes --oci-archive/);
  // a layout folder is not sent: tar it
  r = await remote('skel', 'create', 'nope', '--oci-archive', work);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /one archive file/);
  r = await jyA('skel', 'rm', 'img');
  assert.equal(r.code, 0, r.stderr);
});
