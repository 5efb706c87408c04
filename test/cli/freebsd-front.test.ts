// The jail(8) / jls(8) / jexec(8) front (issue #15): FreeBSD's argument forms, output bytes,
// error texts and exit codes, over real path-less jails (namespaces, mounts) in a state
// folder of this file; the in-jail scope (a caller inside "parent" sees and names only its
// descendants, bounded by children.max); the package bins and compat/freebsd/bin as a shell
// runs them. Nothing of its own is left at the end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runJail, runJexec, runJls, type FrontIO, type FrontScope } from '../../src/cli/freebsd/index.ts';
import { getopt } from '../../src/cli/freebsd/getopt.ts';
import { libxoJson } from '../../src/cli/jls.ts';
import { createLocalService } from '../../src/runtime/service.ts';
import { skeletonHooks } from '../../src/skeleton/hooks.ts';
import { openStore } from '../../src/store/sqlite.ts';
import type { Store } from '../../src/store/types.ts';
import { cliFor, runBin } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

const REPO = join(import.meta.dirname, '../..');
const ADDR = '198.51.100.160';

let state: string;
let work: string;
let baseline: SystemSnapshot;
let store: Store;
let scope: FrontScope;
const jy = cliFor(() => state);

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

function capture(): FrontIO & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stdout: (t: string) => void (io.out += t),
    stderr: (t: string) => void (io.err += t),
  };
  return io;
}

/** A front command in this process, as the caller inside `root` (the host without). */
async function front(cmd: 'jail' | 'jls' | 'jexec', argv: string[], root?: string): Promise<Out> {
  const io = capture();
  const run = cmd === 'jail' ? runJail : cmd === 'jls' ? runJls : runJexec;
  const code = await run(argv, { ...io, stdin: 'pipe' as never }, { ...scope, ...(root ? { root } : {}) });
  return { code, stdout: io.out, stderr: io.err };
}
const jail = (...a: string[]) => front('jail', a);
const jls = (...a: string[]) => front('jls', a);

/** compat/freebsd/bin/NAME as a shell runs it (its sh lines, the symlink, bin/jailyard.js). */
function bin(name: string, args: string[]): Out {
  const env: NodeJS.ProcessEnv = { ...process.env, JAILYARD_STATE: state };
  delete env.JAILYARD_HOST;
  const r = spawnSync(join(REPO, 'compat/freebsd/bin', name), args, { env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  baseline = snapshot();
  state = mkdtempSync(join(tmpdir(), 'jy-front-'));
  work = mkdtempSync(join(tmpdir(), 'jy-front-work-'));
  store = openStore(state);
  scope = { service: createLocalService({ store, stateDir: state, skeletons: skeletonHooks() }), stateDir: state };
});

after(async () => {
  try {
    for (const j of store.listJails().sort((a, b) => b.name.length - a.name.length))
      await scope.service.remove([j.name]).catch(() => undefined);
    await jy('skel', 'rm', 'host-root');
    store.close();
    assertNoLeaks(baseline, state);
  } finally {
    // never a recursive removal through something still mounted (a root bind of the host's /)
    const mounted = readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${state}/`);
    if (!mounted) rmSync(state, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
});

test('getopt as FreeBSD: clusters, attached and separate arguments, the first operand ends options', () => {
  assert.deepEqual(getopt('jls', ['-jj', '-sn', 'meta'], 'j:sn'), {
    opts: [
      ['j', 'j'],
      ['s', undefined],
      ['n', undefined],
    ],
    rest: ['meta'],
  });
  assert.deepEqual(getopt('jail', ['-f', 'c', '-qc', 'x', '-r'], 'cf:qr').rest, ['x', '-r']);
  assert.throws(() => getopt('jls', ['-x'], 'j:'), /^Error: jls: illegal option -- x$/);
  assert.throws(() => getopt('jls', ['-j'], 'j:'), /^Error: jls: option requires an argument -- j$/);
});

test('libxo JSON bytes: plain and pretty', () => {
  assert.equal(
    libxoJson([{ name: 'j', meta: 'a b c' }, {}], false),
    '{"__version": "2", "jail-information": {"jail": [{"name":"j","meta":"a b c"}, {}]}}',
  );
  assert.equal(
    libxoJson([{ jid: 1, 'ip4.addr': ['10.0.0.1'] }], true),
    '{\n  "__version": "2", \n  "jail-information": {\n    "jail": [\n      {\n        "jid": 1,\n        "ip4.addr": ["10.0.0.1"]\n      }\n    ]\n  }\n}',
  );
});

test('usage and errors change nothing and read as FreeBSD writes them', async () => {
  const usage = await jail();
  assert.equal(usage.code, 1);
  assert.match(usage.stderr, /^usage: jail \[-dhilqv\] \[-J jid_file\]/);
  assert.deepEqual(await jail('-r', 'nope'), { code: 1, stdout: '', stderr: 'jail: "nope" not found\n' });
  assert.deepEqual(await jail('-qr', 'nope'), { code: 1, stdout: '', stderr: '' });
  assert.deepEqual(await jail('-m', 'name=nope', 'persist'), {
    code: 1,
    stdout: '',
    stderr: 'jail: "nope" not found\n',
  });
  assert.deepEqual(await jail('-c', 'name=x', 'no.such.param=1'), {
    code: 1,
    stdout: '',
    stderr: 'jail: unknown parameter: no.such.param\n',
  });
  assert.deepEqual(await jls('-j', 'x'), { code: 1, stdout: '', stderr: 'jls: jail "x" not found\n' });
  assert.deepEqual(await jls('-c', '-j', 'x'), { code: 1, stdout: '', stderr: '' });
  assert.deepEqual(await front('jexec', ['x', 'true']), { code: 1, stdout: '', stderr: 'jexec: jail "x" not found\n' });
  assert.equal((await jls('-Z')).stderr.split('\n')[0], 'jls: illegal option -- Z');
  assert.equal(store.listJails().length, 0);
});

test('jail -c creates and starts, quietly; meta and env as jailmeta.sh reads them; -m key operations in order', async () => {
  assert.deepEqual(await jail('-c', 'name=j', 'persist', `ip4.addr=${ADDR}`, 'meta=a b c', 'env=C B A'), {
    code: 0,
    stdout: '',
    stderr: '',
  });
  assert.equal((await jls('-jj', 'meta')).stdout, 'a b c\n');
  assert.equal((await jls('-jj', 'env')).stdout, 'C B A\n');
  assert.equal(
    (await jls('-jj', '--libxo', 'json', 'name', 'meta')).stdout,
    '{"__version": "2", "jail-information": {"jail": [{"name":"j","meta":"a b c"}]}}\n',
  );
  assert.deepEqual(await jail('-m', 'name=j', 'meta=a=2\nb=3'), { code: 0, stdout: '', stderr: '' });
  assert.equal((await jls('-jj', 'meta.b', 'meta', 'meta.a')).stdout, '3 a=2\nb=3 2\n');
  assert.equal((await jls('-jj', 'meta.c')).stdout, '\n');
  assert.equal((await jls('-jj', '-s', 'meta.missing')).stdout, 'meta.missing\n');
  assert.equal(
    (await jls('-jj', '--libxo=json', 'meta.c', 'meta.d')).stdout,
    '{"__version": "2", "jail-information": {"jail": [{}]}}\n',
  );
  await jail('-m', 'name=j', 'meta=');
  assert.equal((await jls('-jj', 'meta.c', 'meta', 'meta.a')).stdout, ' "" \n');
  // order matters: the whole buffer replaced between two key operations
  await jail('-m', 'name=j', 'meta.a=1', 'meta=ttt', 'meta.b=2');
  assert.equal((await jls('-jj', 'meta')).stdout, 'b=2\nttt\n');
  await jail('-m', 'name=j', 'meta.b');
  assert.equal((await jls('-jj', 'meta')).stdout, 'ttt\n');
  // a running jail named by its jid; the default table; jls -c
  const jid = (await jls('-j', 'j', 'jid')).stdout.trim();
  assert.match(jid, /^[1-9][0-9]*$/);
  assert.equal((await jls('-j', jid, 'name')).stdout, 'j\n');
  assert.deepEqual(await jls('-c', '-j', jid), { code: 0, stdout: '', stderr: '' });
  assert.match(
    (await jls()).stdout,
    new RegExp(`^   JID  IP Address      Hostname                      Path\\n +${jid}  ${ADDR} +j +`),
  );
  // a second -c of the same jail fails and changes nothing
  assert.deepEqual(await jail('-c', 'name=j', 'persist'), {
    code: 1,
    stdout: '',
    stderr: 'jail: "j" already exists\n',
  });
  // a parameter a running jail keeps
  assert.deepEqual(await jail('-m', 'name=j', 'ip4.addr=198.51.100.161'), {
    code: 1,
    stdout: '',
    stderr: 'jail: ip4.addr cannot be changed after creation\n',
  });
  // jexec by name and by jid: the command's output and exit status
  const r = await front('jexec', [jid, 'sh', '-c', 'echo "$JNAME"; exit 7']);
  assert.deepEqual(r, { code: 7, stdout: 'j\n', stderr: '' });
  assert.deepEqual(await front('jexec', ['-U', 'nosuchuser', 'j', 'id']), {
    code: 1,
    stdout: '',
    stderr: 'jexec: nosuchuser: no such user\n',
  });
  assert.deepEqual(await front('jexec', ['-d', '/tmp', 'j', 'pwd']), { code: 0, stdout: '/tmp\n', stderr: '' });
  // -rc restarts (a new jid is fine, the jail is the same name); -r by jid removes quietly
  assert.deepEqual(await jail('-rc', 'name=j', 'persist', `ip4.addr=${ADDR}`), { code: 0, stdout: '', stderr: '' });
  assert.equal((await jls('-j', 'j', 'meta')).stdout, '""\n', 'a restarted jail is a new jail');
  const jid2 = (await jls('-j', 'j', 'jid')).stdout.trim();
  assert.deepEqual(await jail('-r', jid2), { code: 0, stdout: '', stderr: '' });
  assert.equal(store.listJails().length, 0, 'jail -r forgets the jail');
});

test('a jail without persist runs its command, passes its output through and is gone', async () => {
  assert.deepEqual(await jail('-c', 'name=once', 'command=/bin/echo', 'a b', "it's"), {
    code: 0,
    stdout: "a b it's\n",
    stderr: '',
  });
  assert.equal(store.getJail('once'), undefined);
  assert.equal((await jls('-j', 'once')).code, 1);
});

test('a failed jail -c leaves nothing: no record, no folder', async () => {
  const r = await jail('-c', 'name=bad', 'persist', 'exec.prestart=false');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^jail: .*false/);
  assert.equal(store.getJail('bad'), undefined);
  assert.deepEqual((await jls('-j', 'bad')).code, 1);
});

test('jail.conf: numeric blocks, -q, the output of exec.* commands on stdout, notes by block name', async () => {
  const conf = join(work, 'jail.conf');
  writeFileSync(
    conf,
    // path-less: the output of a persist jail's init in an empty path (tini finding no
    // program there) is not what this test is about
    'exec.prestop = "echo STOP";\nexec.prestart = "echo START";\nexec.poststart = "env";\npersist;\nbasejail {}\n',
  );
  const c = await jail('-f', conf, '-qc', 'basejail');
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, /^START$/m);
  assert.match(c.stdout, /^JID=[0-9]+$/m);
  assert.match(c.stdout, /^JNAME=basejail$/m);
  assert.deepEqual(await jail('-f', conf, '-qr', 'basejail'), { code: 0, stdout: 'STOP\n', stderr: '' });

  writeFileSync(conf, '5309 { name = basejail; persist; }\n');
  assert.deepEqual(await jail('-f', conf, '-c', '5309'), { code: 0, stdout: '5309: created\n', stderr: '' });
  assert.equal((await jls('-j', '5309', 'name')).stdout, 'basejail\n');
  assert.deepEqual(await jail('-f', conf, '-r', '5309'), { code: 0, stdout: '5309: removed\n', stderr: '' });
  writeFileSync(conf, `basejail { jid = 5309; persist; }\n`);
  assert.deepEqual(await jail('-f', conf, '-c', 'basejail'), { code: 0, stdout: 'basejail: created\n', stderr: '' });
  assert.equal((await jls('-j', 'basejail', 'jid')).stdout, '5309\n');
  // -cm of a running jail modifies it ("updated" for a config jail); -m -v names it
  assert.deepEqual(await jail('-f', conf, '-cm', 'basejail'), { code: 0, stdout: 'basejail: updated\n', stderr: '' });
  assert.deepEqual(await jail('-f', conf, '-r', 'basejail'), { code: 0, stdout: 'basejail: removed\n', stderr: '' });
  // -e: the configured jails, parameters separated, nothing started
  writeFileSync(conf, 'a { persist; host.hostname = "h a"; }\n');
  assert.deepEqual(await jail('-f', conf, '-e', ';'), {
    code: 0,
    stdout: 'name=a;persist;host.hostname="h a"\n',
    stderr: '',
  });
  assert.equal(store.listJails().length, 0);
});

test('inside a jail: names relative to it, only its descendants, children.max bounds what it creates', async () => {
  assert.equal((await jail('-c', 'name=parent', 'persist', 'children.max=1')).code, 0);
  assert.equal((await jail('-c', 'name=nochild', 'persist')).code, 0);
  assert.deepEqual(await front('jail', ['-c', 'name=nested', 'persist'], 'parent'), {
    code: 0,
    stdout: '',
    stderr: '',
  });
  assert.ok(store.getJail('parent.nested'), 'the host names it parent.nested');
  assert.equal(
    (await jls('-n', '-j', 'parent', 'children.max', 'children.cur', 'parent')).stdout,
    'children.max=1 children.cur=1 parent=0\n',
  );
  assert.deepEqual(await front('jail', ['-c', 'name=second', 'persist'], 'parent'), {
    code: 1,
    stdout: '',
    stderr: 'jail: prison limit exceeded\n',
  });
  assert.deepEqual(await front('jail', ['-c', 'name=nested', 'persist'], 'nochild'), {
    code: 1,
    stdout: '',
    stderr: 'jail: jail_set: Operation not permitted\n',
  });
  const inside = await front('jls', ['-N'], 'parent');
  assert.match(inside.stdout, /\n nested +/);
  assert.doesNotMatch(inside.stdout, /parent|nochild/);
  assert.equal((await front('jls', ['-j', 'nested', 'name'], 'parent')).stdout, 'nested\n');
  assert.equal((await front('jls', ['-j', 'nochild'], 'parent')).code, 1, 'a sibling is out of sight');
  assert.equal((await jls('-j', 'parent.nested', 'meta')).stdout, '""\n');
  // path as jls(8) prints the kernel's: on the host the root a running jail was made in (here
  // the state folder's, a thin jail of the host's root), and the nested one without a path
  // has its parent's; inside the parent no host path, its child's root is its own "/"
  const root = join(state, 'jails/parent/root');
  assert.equal((await jls('-j', 'parent', 'path')).stdout, `${root}\n`);
  assert.equal((await jls('-n', '-j', 'parent.nested', 'name', 'path')).stdout, `name=parent.nested path=${root}\n`);
  assert.equal((await front('jls', ['-j', 'nested', 'path'], 'parent')).stdout, '/\n');
  assert.doesNotMatch((await front('jls', ['-v'], 'parent')).stdout, new RegExp(state));
  assert.equal(bin('jls', ['-j', 'parent', 'path']).stdout, `${root}\n`, 'the fast path prints it too');
  assert.equal(
    (await front('jexec', ['parent', 'sh', '-c', 'echo inside > /tmp/jls-path-mark'])).code,
    0,
    'a file made inside the jail',
  );
  assert.equal(
    readFileSync(join(root, 'tmp/jls-path-mark'), 'utf8'),
    'inside\n',
    'is found under the path jls printed',
  );
  assert.equal((await front('jail', ['-r', 'nested'], 'parent')).code, 0);
  assert.equal(store.getJail('parent.nested'), undefined);
  assert.equal((await jail('-r', 'parent', 'nochild')).stdout, 'parent: removed\nnochild: removed\n');
});

test('the bins as a shell runs them: compat/freebsd/bin/{jail,jls,jexec} and `jailyard jail`', async () => {
  const c = bin('jail', ['-c', 'name=binj', 'persist', `ip4.addr=${ADDR}`, 'meta=x y']);
  assert.deepEqual(c, { code: 0, stdout: '', stderr: '' });
  assert.deepEqual(bin('jls', ['-jbinj', 'meta']), { code: 0, stdout: 'x y\n', stderr: '' });
  const e = bin('jexec', ['binj', 'sh', '-c', 'echo in; echo err >&2; exit 3']);
  assert.deepEqual(e, { code: 3, stdout: 'in\n', stderr: 'err\n' });
  // `jailyard jls` as a process: its read-only store is node:sqlite, and a second SQLite
  // library in this process (this file's better-sqlite3 store) would drop the other's locks
  const v = runBin(state, ['jls', '-j', 'binj', '--libxo', 'json', 'meta']);
  assert.deepEqual(v, {
    code: 0,
    stdout: '{"__version": "2", "jail-information": {"jail": [{"meta":"x y"}]}}\n',
    stderr: '',
  });
  assert.deepEqual(await jy('jail', '-r', 'binj'), { code: 0, stdout: '', stderr: '' });
  assert.deepEqual(bin('jls', ['-j', 'binj']), { code: 1, stdout: '', stderr: 'jls: jail "binj" not found\n' });
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  assert.deepEqual([pkg.bin.jail, pkg.bin.jls, pkg.bin.jexec], ['bin/jail', 'bin/jls', 'bin/jexec']);
});

test("jexec gives the command the jail's own jail(8) and jls(8), answered for that jail only", () => {
  assert.equal(bin('jail', ['-c', 'name=outer', 'persist', 'children.max=1']).code, 0);
  assert.deepEqual(bin('jexec', ['outer', 'jail', '-c', 'name=inner', 'persist']), { code: 0, stdout: '', stderr: '' });
  assert.deepEqual(bin('jexec', ['outer', 'jail', '-c', 'name=second', 'persist']), {
    code: 1,
    stdout: '',
    stderr: 'jail: prison limit exceeded\n',
  });
  // jls' output begins with blanks: they cross as they are
  const inside = bin('jexec', ['outer', 'jls', '-N']);
  assert.equal(inside.code, 0, inside.stderr);
  assert.match(inside.stdout, /^ JID {13}IP Address {6}Hostname {22}Path\n inner {11}/);
  assert.equal(bin('jls', ['-j', 'outer.inner', 'name']).stdout, 'outer.inner\n');
  assert.deepEqual(bin('jexec', ['outer', 'jail', '-r', 'inner']), { code: 0, stdout: '', stderr: '' });
  assert.deepEqual(bin('jail', ['-r', 'outer']), { code: 0, stdout: '', stderr: '' });
});
