// `jailyard logs` (issue #17, Logs): a real jail writes to its console log; logs prints it,
// -n and --since pick from it, -f follows it across a rotation (like tail -F) and ends when
// the jail is removed; the daemon streams the same (GET /v1/jails/:name/logs, over --host,
// with the API's auth); an unknown jail is a clear error; the reader never follows a symlink
// at the log's name; a terminal gets the jail's control characters escaped.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { binArgs, cliFor } from '../helpers/cli.ts';
import { snapshot, assertNoLeaks, processesMentioning, type SystemSnapshot } from '../helpers/leaks.ts';
import { parseIndex, parseSince, readConsoleLog, startOffset } from '../../src/runtime/logs.ts';
import { printable } from '../../src/errors.ts';
import { logs as remoteLogs } from '../../src/api/client.ts';
import { consoleRelays } from '../../src/platform/linux/console.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(30);
  }
}
/**
 * Until a follower started at the log's end (-n 0) is there: numbered sync lines are said,
 * one every 200 ms, until one comes out, then the last said is awaited and what was read
 * dropped. A line said before the follower has found the log's end would be before it and
 * never come: a fixed sleep is not enough for a Node start on a loaded machine.
 */
async function followerReady(say: (s: string) => void, got: () => string, clear: () => void): Promise<void> {
  let n = 0;
  do {
    assert.ok(n < 75, 'the follower printed none of the sync lines in 15 s');
    say(`sync-${++n}\n`);
    await sleep(200);
  } while (!got().includes('sync-'));
  await until(`sync-${n}`, () => got().includes(`sync-${n}\n`));
  clear();
}
async function collect(chunks: AsyncIterable<Buffer>): Promise<string> {
  let s = '';
  for await (const c of chunks) s += c.toString('utf8');
  return s;
}

describe('logs: the pure parts', () => {
  test('--since: durations, times, unix seconds; anything else is a usage error', () => {
    const now = Date.UTC(2026, 11, 2, 22, 0, 0);
    assert.equal(parseSince('90s', now), now - 90_000);
    assert.equal(parseSince('1h30m', now), now - 5_400_000);
    assert.equal(parseSince('2d', now), now - 2 * 86_400_000);
    assert.equal(parseSince('2026-12-02T21:00:00Z', now), now - 3_600_000);
    assert.equal(parseSince('@1796251794.5', now), 1_796_251_794_500);
    for (const bad of ['yesterday', '5', '-5m', '2026-13-45T99:00Z', '', '1h 30m'])
      assert.throws(() => parseSince(bad, now), { code: 'JY_ERR_USAGE' }, bad);
  });

  test('the time index: start at the first run whose last second is at or after --since', () => {
    const idx = parseIndex(
      '1000000000 1000000002 000000000010\n1000000005 1000000005 000000000100\n1000000009 1000000011 000000000200\n',
    );
    assert.equal(idx.length, 3);
    assert.equal(startOffset(idx, 300, 0, 999_000_000_000), 0, 'before everything: the whole file');
    assert.equal(startOffset(idx, 300, 0, 1_000_000_002_900), 10, 'same second as a run end: that run');
    assert.equal(startOffset(idx, 300, 0, 1_000_000_003_000), 100);
    assert.equal(startOffset(idx, 300, 0, 1_000_000_010_000), 200);
    assert.equal(startOffset(idx, 300, 0, 1_000_000_012_000), 300, 'after everything: nothing');
    // no index: the file's mtime decides, all or nothing
    assert.equal(startOffset(undefined, 300, 5000, 4000), 0);
    assert.equal(startOffset(undefined, 300, 5000, 6000), 300);
    // a torn last record ends the index
    assert.equal(parseIndex('1000000000 1000000002 000000000010\n10000').length, 1);
  });

  test('a terminal gets control characters as visible escapes, lines and tabs as they are', () => {
    assert.equal(
      printable('a\x1b]0;pwned\x07b\x1b[2J\r\nc\rd\u009b31m\te\x7f'),
      'a\\x1b]0;pwned\\x07b\\x1b[2J\r\nc\\rd\\u009b31m\te\\x7f',
    );
  });

  test('files: .1 then the current one, -n across both, never through a symlink or a FIFO', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jy-logs-unit-'));
    try {
      const log = join(dir, 'console.log');
      writeFileSync(`${log}.1`, 'one\ntwo\n');
      writeFileSync(log, 'three\nfour');
      assert.equal(await collect(readConsoleLog(log)), 'one\ntwo\nthree\nfour');
      assert.equal(await collect(readConsoleLog(log, { lines: 3 })), 'two\nthree\nfour');
      assert.equal(await collect(readConsoleLog(log, { lines: 1 })), 'four');
      assert.equal(await collect(readConsoleLog(log, { lines: 0 })), '');
      assert.equal(await collect(readConsoleLog(log, { lines: 10 })), 'one\ntwo\nthree\nfour');
      // a symlink at either name is not read (the secret is not printed)
      const secret = join(dir, 'secret');
      writeFileSync(secret, 'host secret\n');
      rmSync(log);
      symlinkSync(secret, log);
      rmSync(`${log}.1`);
      symlinkSync(secret, `${log}.1`);
      assert.equal(await collect(readConsoleLog(log)), '');
      rmSync(log);
      rmSync(`${log}.1`);
      execFileSync('mkfifo', [log]);
      assert.equal(await collect(readConsoleLog(log)), '', 'a FIFO is neither opened for long nor read');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('follow: a rotation is seen (old file finished, then the new one from its start)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jy-logs-unit-'));
    try {
      const log = join(dir, 'console.log');
      writeFileSync(log, 'a\n');
      const ac = new AbortController();
      let got = '';
      const done = (async () => {
        for await (const c of readConsoleLog(log, { follow: true, signal: ac.signal, pollMs: 20 })) got += c;
      })();
      await until('a', () => got === 'a\n');
      writeFileSync(log, 'a\nb\n');
      await until('b', () => got === 'a\nb\n');
      // rotate the way jy-log does when it cannot exchange: the old one's last line, then new
      writeFileSync(log, 'a\nb\nc\n');
      renameSync(log, `${log}.1`);
      writeFileSync(log, 'd\n');
      await until('d', () => got.endsWith('d\n'));
      assert.equal(got, 'a\nb\nc\nd\n');
      // the folder gone (the jail removed): the follow ends by itself
      rmSync(dir, { recursive: true, force: true });
      await done;
      ac.abort();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('logs: a real jail, the CLI, -f across a rotation, the API', () => {
  let state: string;
  let baseline: SystemSnapshot;
  const jy = cliFor(() => state);
  const root = () => join(state, 'jails/lg1/root');
  let said = 0;
  /** The --since test's mark (ms), read again through the API. */
  let sinceMark = 0;
  /** Has the jail's service print `text` (it cats files it finds in its /tmp). */
  const say = (text: string) => {
    const n = ++said;
    writeFileSync(join(root(), 'tmp', `.say.${n}`), text);
    renameSync(join(root(), 'tmp', `.say.${n}`), join(root(), 'tmp', `say.${n}`));
  };
  const logText = () => {
    let s = '';
    for (const f of ['console.log.1', 'console.log']) {
      try {
        s += readFileSync(join(state, 'jails/lg1', f), 'utf8');
      } catch {
        // none yet
      }
    }
    return s;
  };

  before(async () => {
    baseline = snapshot();
    state = mkdtempSync(join(tmpdir(), 'jy-cli-logs-'));
    let r = await jy('skel', 'create', 'host', '--from', '/');
    assert.equal(r.code, 0, r.stderr);
    r = await jy(
      'create',
      'lg1',
      'skeleton=host',
      'persist',
      'meta.test=logs',
      'limits.consolelog=64K',
      // a service that prints what the test hands it, and terminal escapes of its own
      'exec.start=printf "hello from lg1\\n\\033]0;pwned\\007title\\n"; (while :; do for f in /tmp/say.*; do [ -f "$f" ] && cat "$f" && rm -f "$f"; done; sleep 0.05; done) &',
    );
    assert.equal(r.code, 0, r.stderr);
    r = await jy('start', 'lg1');
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await jy('remove', '-l', 'test=logs');
    // the jail's relays end with it
    await until('relays gone', () => consoleRelays().every((x) => !x.log.startsWith(state)), 5000);
    assertNoLeaks(baseline, state);
    assert.deepEqual(processesMentioning(state), [], 'no logs -f or serve left');
    rmSync(state, { recursive: true, force: true });
  });

  test('logs prints what the jail wrote; -n the last lines; bytes untouched when not a terminal', async () => {
    let r = await jy('logs', 'lg1');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^# .* exec\.start: /m, 'the hook header jailyard writes');
    assert.match(r.stdout, /^hello from lg1$/m);
    assert.ok(r.stdout.includes('\x1b]0;pwned\x07title'), 'a pipe gets the bytes as they are');
    r = await jy('logs', '--escape', 'lg1');
    assert.ok(r.stdout.includes('\\x1b]0;pwned\\x07title'), r.stdout);
    assert.ok(!r.stdout.includes('\x1b'));
    say('line-a\nline-b\n');
    await until('line-b', () => logText().includes('line-b'));
    r = await jy('logs', '-n', '2', 'lg1');
    assert.equal(r.stdout, 'line-a\nline-b\n');
    // the log is in the host's state folder, not in the jail's tree
    assert.equal(existsSync(join(root(), 'console.log')), false);
    assert.ok(existsSync(join(state, 'jails/lg1/console.log.idx')), 'the time index beside it');
  });

  test('--since: only what was written since (to the second)', async () => {
    say('before-mark\n');
    await until('before-mark', () => logText().includes('before-mark'));
    await sleep(1100);
    const mark = Date.now();
    sinceMark = mark;
    say('after-mark\n');
    await until('after-mark', () => logText().includes('after-mark'));
    const r = await jy('logs', '--since', `@${mark / 1000}`, 'lg1');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'after-mark\n');
    const all = await jy('logs', '--since', '1h', 'lg1');
    assert.match(all.stdout, /hello from lg1[\s\S]*before-mark\nafter-mark\n/);
  });

  test('an unknown jail is a clear error and prints nothing', async () => {
    const r = await jy('logs', 'no-such-jail');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /no-such-jail.*not found/);
    const bad = await jy('logs', '-n', 'x', 'lg1');
    assert.equal(bad.code, 2);
  });

  test('the API streams the log (auth as every route), --host works, follow=1 sees new lines', async () => {
    const { openStore } = await import('../../src/store/sqlite.ts');
    const { createLocalService } = await import('../../src/runtime/service.ts');
    const { skeletonHooks } = await import('../../src/skeleton/hooks.ts');
    const { startDaemon } = await import('../../src/api/daemon.ts');
    const store = openStore(state);
    const token = 'logs-test-token-0123456789';
    const daemon = await startDaemon({
      store,
      service: createLocalService({ store, stateDir: state, skeletons: skeletonHooks() }),
      socketPath: join(state, 'api.sock'),
      listen: { host: '127.0.0.1', port: 0 },
      token,
    });
    try {
      const url = `unix://${join(state, 'api.sock')}`;
      const whole = await collect(remoteLogs(url, 'lg1'));
      assert.match(whole, /^hello from lg1$/m);
      assert.match(whole, /after-mark\n$/);
      // TCP: no token, no log
      const tcp = `http://127.0.0.1:${daemon.tcp!.port}`;
      const denied = await request(`${tcp}/v1/jails/lg1/logs`);
      assert.equal(denied.statusCode, 401);
      assert.doesNotMatch(await denied.body.text(), /hello/);
      assert.equal(await collect(remoteLogs(tcp, 'lg1', { token, lines: 1 })), 'after-mark\n');
      // unknown jail: 404 in the API's error form; over --host the same message
      const nf = await request(`${tcp}/v1/jails/nope/logs`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(nf.statusCode, 404);
      assert.equal(((await nf.body.json()) as { code: string }).code, 'JY_ERR_JAIL_NOT_FOUND');
      const bad = await request(`${tcp}/v1/jails/lg1/logs?since=bogus`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(bad.statusCode, 400);
      assert.equal(((await bad.body.json()) as { code: string }).code, 'JY_ERR_USAGE');
      let r = await jy('--host', url, 'logs', 'nope');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /nope.*not found/);
      r = await jy('--host', url, 'logs', '-n', '1', 'lg1');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'after-mark\n');
      r = await jy('--host', url, 'logs', '--since', `@${sinceMark / 1000}`, 'lg1');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'after-mark\n', '--since through the API');
      r = await jy('--host', url, 'logs', '--since', 'soon', 'lg1');
      assert.equal(r.code, 2, 'a bad --since is refused before the request');
      // follow: a new line arrives on the open stream
      const ac = new AbortController();
      let got = '';
      const reading = (async () => {
        for await (const c of remoteLogs(url, 'lg1', { follow: true, lines: 0, signal: ac.signal })) got += c;
      })();
      await followerReady(
        say,
        () => got,
        () => (got = ''),
      );
      say('streamed-line\n');
      await until('streamed line over the API', () => got.includes('streamed-line\n'));
      assert.equal(got, 'streamed-line\n');
      ac.abort();
      await reading;
    } finally {
      await daemon.close();
      store.close();
    }
  });

  test('-f follows across a rotation like tail -F and ends when the jail is removed', async () => {
    const child = spawn(process.execPath, binArgs(state, 'logs', '-f', '-n', '0', 'lg1'), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (err += b));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await followerReady(
        say,
        () => out,
        () => (out = ''),
      );
      say('follow-1\n');
      await until('follow-1', () => out.includes('follow-1\n'));
      // 3 x 30000 bytes of numbered lines: the 64K log rotates at least once meanwhile
      const fill = (k: number) =>
        Array.from({ length: 2500 }, (_, i) => `fill ${k} ${String(i).padStart(4, '0')} ........\n`).join('');
      for (const k of [1, 2, 3]) {
        say(fill(k));
        await until(`fill ${k}`, () => out.includes(`fill ${k} 2499 `));
      }
      say('follow-2\n');
      await until('follow-2', () => out.includes('follow-2\n'));
      assert.ok(existsSync(join(state, 'jails/lg1/console.log.1')), 'the log rotated');
      assert.equal(out, `follow-1\n${fill(1)}${fill(2)}${fill(3)}follow-2\n`, 'every line once, in order');
      // the jail removed: its folder is gone and the follower ends by itself
      const r = await jy('remove', 'lg1');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await Promise.race([exited, sleep(5000).then(() => 'still running')]), 0, err);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
