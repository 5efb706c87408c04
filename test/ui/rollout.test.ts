// The dashboard's rollout page (docs/ui.md) in headless Debian chromium against a real
// `jailyard serve`, real jails, a real HAProxy and its controller (`jailyard lb haproxy`) and a
// real `jailyard rollout` in processes of their own: the pool as HAProxy has it (a new jail
// that never passes its check is not UP there, though the jails would call it up), an abort
// clicked in the page (after a confirmation) stops the running rollout, which goes back itself:
// the old pool serves, the new jail is removed; with HAProxy gone the page says its pool is
// computed from the jails. Leak checks at the end.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page, Request } from 'playwright-core';
import { startHaproxy, type HaproxyProcess } from '../../src/lb/haproxy-process.ts';
import { serverStatus } from '../../src/lb/haproxy-runtime.ts';
import { binArgs } from '../helpers/cli.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';
import { freePort } from '../lb/fixtures.ts';
import { browserMissing, cliProcess, launchBrowser, serve, type Served, waitForLive } from './browser.ts';

const haproxyMissing = spawnSync('haproxy', ['-v']).status === 0 ? undefined : 'no haproxy binary';
const missing = browserMissing() ?? haproxyMissing;
const PORT = 8080;
const web = (v: string) =>
  `mkdir -p /etc/jyweb && echo ${v} > /etc/jyweb/index.html && /usr/bin/python3 -m http.server ${PORT} -d /etc/jyweb >/dev/null 2>&1 &`;

describe('rollout abort and HAProxy pool in chromium', { skip: missing ?? false, timeout: 300_000 }, () => {
  let state = '';
  let leaksBefore: SystemSnapshot;
  let served: Served;
  let hp: HaproxyProcess | undefined;
  let lb: ChildProcess | undefined;
  let lbLog = '';
  let fePort = 0;
  let browser: { context: BrowserContext; close(): Promise<void> };
  let page: Page;
  let jy: (...args: string[]) => Promise<string>;
  const requests: Request[] = [];
  const consoleErrors: string[] = [];
  const TIMEOUT = 30_000;

  const serving = async () =>
    (await hp!.runtime.showServersState('www'))
      .filter((s) => serverStatus(s) === 'up')
      .map((s) => s.name)
      .sort();
  const until = async (what: string, ok: () => boolean | Promise<boolean>, ms = TIMEOUT): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; lb: ${lbLog.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  before(async () => {
    leaksBefore = snapshot();
    state = mkdtempSync(join(tmpdir(), 'jy-uiro-'));
    jy = cliProcess(state);
    await jy('skel', 'create', 'host', '--from', '/');
    for (const n of [1, 2]) {
      await jy(
        'create',
        `rb-v1-${n}`,
        'skeleton=host',
        'persist',
        `ip4.addr=198.51.100.${220 + n}/24`,
        `exec.start=${web('v1')}`,
        'meta.app=rb',
        'meta.version=v1',
        `meta.port=${PORT}`,
      );
    }
    await jy('start', 'rb-v1-1', 'rb-v1-2');
    fePort = await freePort('127.0.0.60');
    hp = await startHaproxy({ dir: join(state, 'haproxy'), port: fePort, bindAddress: '127.0.0.60' });
    lb = spawn(
      process.execPath,
      binArgs(state, 'lb', 'haproxy', '-l', 'app=rb', '--admin-socket', hp.adminSocket, '--drain-timeout', '5'),
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    lb.stderr!.on('data', (b: Buffer) => void (lbLog += b.toString()));
    served = await serve(state);
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.on('request', (r) => requests.push(r));
    page.on('console', (m) => void (m.type() === 'error' && consoleErrors.push(m.text())));
    page.on('pageerror', (e) => void consoleErrors.push(e.message));
    await page.goto(`${served.url}/ui/`);
    await page.locator('input[name="token"]').fill(served.token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await waitForLive(page, requests, consoleErrors);
  });

  after(async () => {
    await browser?.close();
    if (lb && lb.exitCode === null && lb.signalCode === null) {
      lb.kill('SIGTERM');
      await once(lb, 'exit');
    }
    await served?.stop();
    for (const name of ['rb-v1-1', 'rb-v1-2', 'rb-v2-1', 'rb-v2-2']) await jy('remove', name).catch(() => {});
    await hp?.stop();
    assertNoLeaks(leaksBefore, state);
    rmSync(state, { recursive: true, force: true });
  });

  test('a running rollout: the pool as HAProxy has it; the abort clicked in the page takes it back', async () => {
    await until('the v1 jails UP in HAProxy', async () => (await serving()).length === 2);
    const template = join(state, 'rb.conf');
    // the new version never answers its health check: the rollout waits there until aborted
    writeFileSync(template, `rb { skeleton = host; persist; ip4.addr = 198.51.100.2/24; exec.start = "true"; }\n`);
    let exit: { code: number | null; err: string } | undefined;
    const run = spawn(
      process.execPath,
      binArgs(
        state,
        'rollout',
        '-l',
        'app=rb',
        '--from',
        'version=v1',
        '--to',
        'version=v2',
        '--replicas',
        '2',
        '--template',
        template,
        '--port',
        String(PORT),
        '--health-timeout',
        '120',
        '--admin-socket',
        hp!.adminSocket,
        '--address-range',
        '223-224',
      ),
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let runErr = '';
    run.stderr!.on('data', (b: Buffer) => void (runErr += b.toString()));
    const exited = once(run, 'exit').then(([code]) => (exit = { code: code as number | null, err: runErr }));
    try {
      // the rollout's first steps saved (or its failure said)
      await until(
        'the rollout to start',
        () => existsSync(join(state, 'rollouts', 'app_rb.json')) || exit !== undefined,
      );
      assert.equal(exit, undefined, `the rollout ended at once: ${runErr}`);
      await page.goto(`${served.url}/ui/#/rollout`);
      const section = page.locator('section[data-rollout-id="app_rb"]');
      await section.locator('[data-testid="phase"]', { hasText: 'running' }).waitFor();
      // HAProxy's view: its reading, not the jails' (the running v2 jail would be "up" there)
      await section.locator('[data-testid="pool-source"][data-source="haproxy"]').waitFor();
      await section.locator('tr[data-haproxy-server="jy-rb-v1-1"][data-haproxy-status="up"]').waitFor();
      await section.locator('tr[data-haproxy-server="jy-rb-v1-2"][data-haproxy-status="up"]').waitFor();
      const v2 = section.locator('tr[data-haproxy-server="jy-rb-v2-1"]');
      await v2.waitFor();
      const shown = await v2.getAttribute('data-haproxy-status');
      const actual = (await hp!.runtime.showServersState('www')).find((s) => s.name === 'jy-rb-v2-1');
      assert.ok(shown === 'down' || shown === 'maint', `v2 shown ${shown}`);
      assert.ok(actual && serverStatus(actual) !== 'up', 'HAProxy has v2 UP');
      assert.equal(exit, undefined, `the rollout ended before the abort: ${runErr}`);

      // progress arrives on the stream (GET /v1/rollouts/watch), not by reading the list again:
      // no list read from here to the end, over more than one 2 s poll period
      const lists = () =>
        requests.filter((r) => r.method() === 'GET' && new URL(r.url()).pathname === '/v1/rollouts').length;
      assert.ok(requests.some((r) => new URL(r.url()).pathname === '/v1/rollouts/watch'));
      const listsBefore = lists();
      await new Promise((r) => setTimeout(r, 2500));

      // cancelled: nothing sent
      const posts = () => requests.filter((r) => r.method() === 'POST' && /\/abort$/.test(r.url())).length;
      await section.locator('[data-testid="abort"]').click();
      await page.getByRole('button', { name: 'Cancel' }).click();
      assert.equal(posts(), 0);
      // confirmed: the process running the rollout is asked, and goes back itself
      await section.locator('[data-testid="abort"]').click();
      await page.locator('[data-testid="confirm"]').click();
      // the notice (the text alone also matches the rollout's own '(abort requested)' marker
      // once the stream has brought the request back: two elements, a strict-mode error)
      await page.getByRole('status').filter({ hasText: 'Abort requested:' }).waitFor();
      assert.equal(posts(), 1);
      await section.locator('[data-testid="phase"]', { hasText: 'aborted' }).waitFor({ timeout: 60_000 });
      assert.equal(lists(), listsBefore, 'the page read the rollouts list again (polling)');
      await exited;
      assert.notEqual(exit!.code, 0);
      assert.match(exit!.err, /aborted on request/);
      // the old pool serves, the new jail is gone (from the jails and from HAProxy)
      const listed = await fetch(`${served.url}/v1/jails?labelSelector=app%3Drb`, {
        headers: { authorization: `Bearer ${served.token}` },
      });
      const { items } = (await listed.json()) as { items: { name: string; state: string }[] };
      assert.deepEqual(items.map((j) => `${j.name} ${j.state}`).sort(), ['rb-v1-1 running', 'rb-v1-2 running']);
      await until('only v1 in HAProxy', async () => {
        const all = (await hp!.runtime.showServersState('www')).map((s) => s.name).sort();
        return all.join() === 'jy-rb-v1-1,jy-rb-v1-2';
      });
      assert.deepEqual(await serving(), ['jy-rb-v1-1', 'jy-rb-v1-2']);
      const answer = await fetch(`http://127.0.0.60:${fePort}/`);
      assert.equal((await answer.text()).trim(), 'v1');
      await section.locator('tr[data-haproxy-server="jy-rb-v2-1"]').waitFor({ state: 'detached' });
      await section.locator('[data-testid="steps"] li', { hasText: /^.*aborted: old jails serve/ }).waitFor();
      // nothing left to abort
      assert.equal(await section.locator('[data-testid="abort"]').count(), 0);
      const file = process.env.JAILYARD_UI_SCREENSHOT;
      if (file) await page.screenshot({ path: file.replace(/(\.png)?$/, '-rollout-abort.png'), fullPage: true });
    } finally {
      if (run.exitCode === null && run.signalCode === null) run.kill('SIGTERM');
      await exited;
    }
  });

  test('HAProxy gone: the pool is computed from the jails, and the page says so', async () => {
    await hp!.stop();
    hp = undefined;
    await page.goto(`${served.url}/ui/#/rollout`);
    const section = page.locator('section[data-rollout-id="app_rb"]');
    const source = section.locator('[data-testid="pool-source"][data-source="jails"]');
    await source.waitFor();
    assert.match((await source.textContent()) ?? '', /not read from HAProxy \(HAProxy not reachable/);
    await section.locator('tr[data-pool-jail="rb-v1-1"][data-pool="up"]').waitFor();
    assert.deepEqual(
      consoleErrors.filter((e) => !/401/.test(e)),
      [],
    );
  });
});
