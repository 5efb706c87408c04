// Recipes (issue #17): the Jailfile parser (errors with file:line:col, arguments, INCLUDE,
// paths that cannot leave the recipe's folder or the jail's root) and `jailyard recipe
// apply` on real jails: the shipped web and db examples work and are idempotent, a failing
// step stops the recipe naming its line, MOUNT before the jail starts, CP never follows a
// symlink the jail placed, and nothing is left behind.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binFor, cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';
import { loadRecipe, parseRecipe } from '../../src/conf/recipe.ts';
import { JailyardError } from '../../src/errors.ts';

const EXAMPLES = join(import.meta.dirname, '../../examples/recipes');

/** loadRecipe over an in-memory folder of files. */
function load(files: Record<string, string>, args?: Record<string, string>) {
  return loadRecipe('/r/Jailfile', {
    ...(args ? { args } : {}),
    read: (f) => {
      const t = files[f];
      if (t === undefined) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
      return t;
    },
  });
}
/** The error's code and its file:line:col. */
function failure(fn: () => unknown): { code: string; at: string; message: string } {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof JailyardError, String(e));
    const p = e.place.pos;
    return { code: e.code, at: p ? `${p.file}:${p.line}:${p.col}` : '', message: e.message };
  }
  assert.fail('no error');
}

describe('recipe parser', () => {
  test('steps in order, ARG defaults and --arg, ${} and $$, quotes, continuation lines', () => {
    const steps = load(
      {
        '/r/Jailfile': [
          '# comment',
          'ARG port=80',
          'arg name="my site"',
          'META app=${name} port=${port}',
          'RUN echo "it\'s ${name}" \\',
          '    costs $$5',
          'CP files/a.conf /etc/a.conf',
          'SYSRC -f /etc/web.conf port=${port}',
          'SYSRC sshd_enable=YES',
          'PKG busybox sqlite3',
          'MOUNT /srv/data /mnt/data rw',
          'EXPOSE tcp:8080:80 udp:5353:53',
          'ENV GREETING="hello world"',
          'SET host.hostname=web.test',
        ].join('\n'),
      },
      { port: '8080' },
    );
    assert.deepEqual(
      steps.map((s) => {
        const { pos, ...rest } = s;
        return { ...rest, at: `${pos.line}:${pos.col}` };
      }),
      [
        { kind: 'META', key: 'app', value: 'my site', at: '4:6' },
        { kind: 'META', key: 'port', value: '8080', at: '4:18' },
        { kind: 'RUN', command: `echo "it's my site"      costs $5`, at: '5:1' },
        { kind: 'CP', src: '/r/files/a.conf', dst: '/etc/a.conf', at: '7:1' },
        { kind: 'SYSRC', file: '/etc/web.conf', key: 'port', value: '8080', at: '8:1' },
        { kind: 'SYSRC', file: '/etc/rc.conf', key: 'sshd_enable', value: 'YES', at: '9:1' },
        { kind: 'PKG', packages: ['busybox', 'sqlite3'], at: '10:1' },
        { kind: 'MOUNT', src: '/srv/data', dst: '/mnt/data', readonly: false, at: '11:1' },
        { kind: 'EXPOSE', entry: 'tcp:8080:80', at: '12:8' },
        { kind: 'EXPOSE', entry: 'udp:5353:53', at: '12:20' },
        { kind: 'ENV', key: 'GREETING', value: 'hello world', at: '13:5' },
        { kind: 'SET', param: 'host.hostname', value: 'web.test', at: '14:5' },
      ],
    );
  });

  test('INCLUDE: relative to the including file, its own arguments, cycles refused', () => {
    const steps = load({
      '/r/Jailfile': 'ARG role=web\nINCLUDE lib/base role=${role}\nMETA last=1',
      '/r/lib/base': 'ARG role\nMETA role=${role}\nCP motd /etc/motd',
    });
    assert.deepEqual(
      steps.map((s) => [s.kind, s.pos.file, s.pos.line]),
      [
        ['META', '/r/lib/base', 2],
        ['CP', '/r/lib/base', 3],
        ['META', '/r/Jailfile', 3],
      ],
    );
    assert.equal((steps[1] as { src: string }).src, '/r/lib/motd');
    assert.deepEqual(
      failure(() => load({ '/r/Jailfile': 'INCLUDE a', '/r/a': 'META x=1\nINCLUDE Jailfile' })),
      { code: 'JY_ERR_CONF_SYNTAX', at: '/r/a:2:9', message: 'INCLUDE cycle: /r/Jailfile -> /r/a -> /r/Jailfile' },
    );
    assert.equal(failure(() => load({ '/r/Jailfile': '\n  INCLUDE nope' })).at, '/r/Jailfile:2:11');
    assert.match(failure(() => load({ '/r/Jailfile': 'INCLUDE a x=1', '/r/a': 'META y=2' })).message, /no ARG x/);
  });

  test('errors name file:line:col and nothing is returned', () => {
    const cases: [string, string, RegExp][] = [
      ['META a=1\nFROB x', '2:1', /unknown instruction "FROB"/],
      ['RUN true\nMETA a="unterminated', '2:8', /unterminated double quote/],
      ['ARG a=1\nMETA x=${a}-${b}', '2:13', /unknown argument \$\{b\}/],
      ['META x=${1bad}', '1:8', /not an argument reference/],
      ['ARG need\n', '1:5', /ARG need has no default/],
      ['ARG a=1\nARG a=2', '2:5', /declared twice/],
      ['CP ../secret /etc/x', '1:4', /relative path without "\.\."/],
      ['CP /etc/shadow /etc/x', '1:4', /relative path/],
      ['CP a etc/x', '1:6', /absolute path in the jail/],
      ['CP a /etc/../../x', '1:6', /must not contain "\.\."/],
      ['CP a /', '1:6', /root itself/],
      ['CP a', '1:1', /CP takes SOURCE/],
      ['SYSRC x="a"b"', '1:13', /unterminated/],
      ["SYSRC 'x=$(reboot)'", '1:7', /cannot hold/],
      ['SYSRC 1x=2', '1:7', /not a valid rc.conf key/],
      ['PKG -o=evil', '1:5', /not a package name/],
      ['MOUNT relative /mnt', '1:7', /absolute host path/],
      ['MOUNT /a /mnt xx', '1:15', /ro or rw/],
      ['META noequals', '1:6', /KEY=VALUE/],
      ['SET Bad=1', '1:5', /not a valid jail parameter name/],
      ['RUN   ', '1:1', /RUN needs a command/],
    ];
    for (const [text, at, re] of cases) {
      const f = failure(() => load({ '/r/Jailfile': text }));
      assert.equal(f.code, 'JY_ERR_CONF_SYNTAX', text);
      assert.equal(f.at, `/r/Jailfile:${at}`, text);
      assert.match(f.message, re, text);
    }
    // a caller's --arg that the recipe does not declare (a typo) is a usage error
    assert.equal(failure(() => load({ '/r/Jailfile': 'ARG port=1' }, { prot: '2' })).code, 'JY_ERR_USAGE');
    // the parser alone keeps RUN's text whole (the jail's shell splits it)
    assert.equal(parseRecipe('RUN echo "a  b" \'c\'', 'f')[0]!.rest.text, 'echo "a  b" \'c\'');
  });
});

describe('recipe apply on real jails', () => {
  let state: string;
  let work: string;
  let baseline: SystemSnapshot;
  const jy = cliFor(() => state);
  const jyBin = binFor(() => state);

  before(async () => {
    baseline = snapshot();
    state = mkdtempSync(join(tmpdir(), 'jy-cli-recipe-'));
    work = mkdtempSync(join(tmpdir(), 'jy-recipe-work-'));
    const r = await jy('skel', 'create', 'host', '--from', '/');
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await jy('remove', '-l', 'test=recipe');
    assertNoLeaks(baseline, state);
    rmSync(state, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  test('examples/recipes/web: a web server that answers; applied again, nothing changes but RUN', async () => {
    let r = await jy('create', 'rweb', 'skeleton=host', 'persist', 'meta.test=recipe', 'ip4.addr=198.51.100.61/24');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('recipe', 'apply', join(EXAMPLES, 'web'), 'rweb', '--arg', 'port=8080', '--json');
    assert.equal(r.code, 0, r.stderr);
    const first = JSON.parse(r.stdout) as { started: boolean; steps: { kind: string; result: string }[] };
    assert.equal(first.started, true, 'the stopped jail was started for the first step inside it');
    assert.equal(
      jyBin('exec', 'rweb', 'busybox', 'wget', '-qO-', 'http://127.0.0.1:8080/'),
      readFileSync(join(EXAMPLES, 'web/index.html'), 'utf8'),
    );
    assert.equal(jyBin('exec', 'rweb', 'cat', '/etc/jailyard/web.conf'), 'port="8080"\ndocroot="/var/www/site"\n');
    r = await jy('ls', '-j', 'rweb', 'meta.role', 'meta.app', 'env.PORT');
    assert.equal(r.stdout, 'web web 8080\n');
    r = await jy('recipe', 'apply', join(EXAMPLES, 'web'), 'rweb', '--arg', 'port=8080', '--json');
    assert.equal(r.code, 0, r.stderr);
    const again = JSON.parse(r.stdout) as { started: boolean; steps: { kind: string; result: string }[] };
    assert.equal(again.started, false);
    assert.deepEqual(
      again.steps.filter((s) => s.result === 'changed').map((s) => s.kind),
      ['RUN'],
    );
    assert.equal(again.steps.length, first.steps.length);
    // the RUN checked before it acted: one server, still answering
    assert.match(jyBin('exec', 'rweb', 'busybox', 'wget', '-qO-', 'http://127.0.0.1:8080/'), /web recipe/);
    // a changed argument changes what it touches
    r = await jy('recipe', 'apply', join(EXAMPLES, 'web'), 'rweb', '--arg', 'port=8081', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jyBin('exec', 'rweb', 'cat', '/etc/jailyard/web.conf'), 'port="8081"\ndocroot="/var/www/site"\n');
    assert.match(jyBin('exec', 'rweb', 'busybox', 'wget', '-qO-', 'http://127.0.0.1:8081/'), /web recipe/);
    r = await jy('remove', 'rweb');
    assert.equal(r.code, 0, r.stderr);
  });

  test('examples/recipes/db: sqlite with a schema and seed rows; applied again, the rows stay', async () => {
    let r = await jy('create', 'rdb', 'skeleton=host', 'persist', 'meta.test=recipe');
    assert.equal(r.code, 0, r.stderr);
    for (let i = 0; i < 2; i++) {
      r = await jy('recipe', 'apply', join(EXAMPLES, 'db'), 'rdb');
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal(
      jyBin('exec', 'rdb', 'sqlite3', '/var/db/app/app.sqlite', 'select name from items order by id'),
      'apple\npear\nplum\n',
    );
    r = await jy('ls', '-j', 'rdb', 'meta.role', 'env.DB_PATH');
    assert.equal(r.stdout, 'db /var/db/app/app.sqlite\n');
    r = await jy('remove', 'rdb');
    assert.equal(r.code, 0, r.stderr);
  });

  test('the first failing step stops the recipe, naming its line; what came before stays', async () => {
    const dir = join(work, 'fail');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'Jailfile'),
      'META before=1\nRUN echo about to fail; exit 3\nMETA after=1\nPKG jy-no-such-package-x\n',
    );
    let r = await jy('create', 'rfail', 'skeleton=host', 'persist', 'meta.test=recipe');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('recipe', 'apply', dir, 'rfail');
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `${join(dir, 'Jailfile')}:2:1, jail "rfail", step recipe RUN: RUN echo about to fail; exit 3 failed: exited with status 3`,
      ),
    );
    assert.match(r.stderr, /about to fail/);
    r = await jy('ls', '-j', 'rfail', 'meta.before', 'meta.after');
    assert.equal(r.stdout, '1 \n', 'META before ran, META after did not');
    // a package that is not there (not installed, apt cannot find it): the PKG line
    writeFileSync(join(dir, 'Jailfile'), 'META before=1\n\nPKG jy-no-such-package-x\n');
    r = await jy('recipe', 'apply', dir, 'rfail');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Jailfile:3:1, jail "rfail", step recipe PKG: PKG jy-no-such-package-x failed/);
    // a syntax error: nothing runs (META changed stays unapplied)
    writeFileSync(join(dir, 'Jailfile'), 'META syntax=1\nBOGUS\n');
    r = await jy('recipe', 'apply', dir, 'rfail');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Jailfile:2:1: unknown instruction "BOGUS"/);
    r = await jy('ls', '-j', 'rfail', 'meta.syntax');
    assert.equal(r.stdout, '\n');
    // a jail that does not exist
    writeFileSync(join(dir, 'Jailfile'), 'META x=1\n');
    r = await jy('recipe', 'apply', dir, 'no-such-jail');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no-such-jail.*not found/);
    r = await jy('remove', 'rfail');
    assert.equal(r.code, 0, r.stderr);
  });

  test('CP: never through a symlink the jail placed, never a source out of the recipe folder', async () => {
    const dir = join(work, 'cp');
    mkdirSync(dir);
    writeFileSync(join(dir, 'payload'), 'payload\n');
    const victim = join(work, 'host-victim');
    writeFileSync(victim, 'host file\n');
    let r = await jy('create', 'rcp', 'skeleton=host', 'persist', 'meta.test=recipe');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('start', 'rcp');
    assert.equal(r.code, 0, r.stderr);
    // the jail plants links: a folder on the way and the name itself, to its /etc and to
    // the host's path of the victim (which inside the jail is nothing of the host's)
    jyBin('exec', 'rcp', 'sh', '-c', `mkdir -p /var/x && ln -s /etc /var/x/dir && ln -s ${victim} /var/x/file`);
    for (const dst of ['/var/x/dir/payload', '/var/x/file']) {
      writeFileSync(join(dir, 'Jailfile'), `CP payload ${dst}\n`);
      r = await jy('recipe', 'apply', dir, 'rcp');
      assert.equal(r.code, 1, dst);
      assert.match(r.stderr, /symbolic link: not followed/, dst);
    }
    assert.equal(readFileSync(victim, 'utf8'), 'host file\n');
    assert.throws(() => jyBin('exec', 'rcp', 'test', '-e', '/etc/payload'));
    // a source that is a symlink out of the recipe's folder
    symlinkSync(victim, join(dir, 'sneaky'));
    writeFileSync(join(dir, 'Jailfile'), 'CP sneaky /tmp/sneaky\n');
    r = await jy('recipe', 'apply', dir, 'rcp');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /leads out of the recipe's folder/);
    // a good copy, with the source's mode; a second apply leaves it
    writeFileSync(join(dir, 'Jailfile'), 'CP payload /opt/app/payload\n');
    r = await jy('recipe', 'apply', dir, 'rcp', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jyBin('exec', 'rcp', 'cat', '/opt/app/payload'), 'payload\n');
    r = await jy('recipe', 'apply', dir, 'rcp', '--json');
    assert.equal(JSON.parse(r.stdout).steps[0].result, 'unchanged');
    r = await jy('remove', 'rcp');
    assert.equal(r.code, 0, r.stderr);
  });

  test('EXPOSE, SET, ENV on a stopped jail: its parameters; applied again, unchanged', async () => {
    const dir = join(work, 'expose');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'Jailfile'),
      'ARG port=8080\nEXPOSE tcp:${port}:80 udp:5353:53\nSET host.hostname=recipe.test\nENV PORT=${port}\n',
    );
    let r = await jy('create', 'rexp', 'skeleton=host', 'persist', 'meta.test=recipe', 'ip4.addr=198.51.100.62/24');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('recipe', 'apply', dir, 'rexp', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).started, false, 'no step inside the jail: it stays stopped');
    r = await jy('ls', '-a', '-j', 'rexp', '--json', 'expose', 'host.hostname', 'env.PORT', 'state');
    assert.deepEqual(JSON.parse(r.stdout)['jail-information'].jail[0], {
      expose: 'tcp:8080:80,udp:5353:53',
      'host.hostname': 'recipe.test',
      'env.PORT': '8080',
      state: 'stopped',
    });
    r = await jy('recipe', 'apply', dir, 'rexp', '--json');
    assert.deepEqual(
      JSON.parse(r.stdout).steps.map((s: { result: string }) => s.result),
      ['unchanged', 'unchanged', 'unchanged', 'unchanged'],
    );
    // an entry the parameter refuses: the EXPOSE line, with the parameter's reason
    writeFileSync(join(dir, 'Jailfile'), 'META ok=1\nEXPOSE tcp:99999:80\n');
    r = await jy('recipe', 'apply', dir, 'rexp');
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /Jailfile:2:8, jail "rexp", step recipe EXPOSE: EXPOSE tcp:99999:80 failed: .*\(parameter expose\)/,
    );
    r = await jy('remove', 'rexp');
    assert.equal(r.code, 0, r.stderr);
  });

  test('MOUNT before the jail starts; applied again on the running jail, unchanged', async () => {
    const dir = join(work, 'mount');
    const data = join(work, 'data');
    mkdirSync(dir);
    mkdirSync(data);
    writeFileSync(join(data, 'hello'), 'from the host\n');
    writeFileSync(join(dir, 'Jailfile'), `MOUNT ${data} /mnt/data ro\nRUN cat /mnt/data/hello\n`);
    let r = await jy('create', 'rmnt', 'skeleton=host', 'persist', 'meta.test=recipe');
    assert.equal(r.code, 0, r.stderr);
    r = await jy('recipe', 'apply', dir, 'rmnt');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /from the host/);
    r = await jy('recipe', 'apply', dir, 'rmnt', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).steps[0].result, 'unchanged');
    // another MOUNT while it runs: refused, naming the line and what to do
    writeFileSync(join(dir, 'Jailfile'), `MOUNT ${data} /mnt/other\n`);
    r = await jy('recipe', 'apply', dir, 'rmnt');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Jailfile:1:1.*mount cannot change while the jail is running/);
    r = await jy('remove', 'rmnt');
    assert.equal(r.code, 0, r.stderr);
  });
});
