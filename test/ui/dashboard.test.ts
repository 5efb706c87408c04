// The web dashboard (/ui, docs/ui.md) in headless Debian chromium against a real `jailyard
// serve` on loopback TCP with a token, real jails, and the CLI as a second writer in
// processes of its own: the table follows the watch stream (no polling), a label selector
// filters and a bad one shows the parser's error at the field, a stale edit is refused with
// the daemon's 412 and nothing is overwritten, actions ask first. Set
// JAILYARD_UI_SCREENSHOT=FILE to keep a picture of the jails page (docs/img/dashboard.png).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { BrowserContext, Locator, Page, Request } from 'playwright-core';
import { parseSelector } from '../../src/meta/selector.ts';
import { assertNoLeaks, snapshot, type SystemSnapshot } from '../helpers/leaks.ts';
import { browserMissing, cliProcess, launchBrowser, serve, type Served, waitForLive } from './browser.ts';

const missing = browserMissing();
const text = async (l: Locator): Promise<string> => (await l.textContent()) ?? '';

describe('dashboard in chromium', { skip: missing ?? false, timeout: 300_000 }, () => {
  let state = '';
  let leaksBefore: SystemSnapshot;
  let served: Served;
  let browser: { context: BrowserContext; close(): Promise<void> };
  let page: Page;
  const TIMEOUT = 20_000;
  let jy: (...args: string[]) => Promise<string>;
  const requests: Request[] = [];
  const consoleErrors: string[] = [];

  const row = (name: string) => page.locator(`tr[data-jail="${name}"]`);
  const api = async (path: string): Promise<Response> =>
    fetch(`${served.url}${path}`, { headers: { authorization: `Bearer ${served.token}` } });

  before(async () => {
    leaksBefore = snapshot();
    state = mkdtempSync(join(tmpdir(), 'jy-ui-'));
    jy = cliProcess(state);
    await jy('skel', 'create', 'host', '--from', '/');
    await jy(
      'create',
      'web1',
      'skeleton=host',
      'persist',
      'ip4.addr=198.51.100.171/24',
      'exec.start=echo ui-log-line',
      'meta.app=www',
      'meta.version=v1',
    );
    await jy(
      'create',
      'web2',
      'skeleton=host',
      'persist',
      'ip4.addr=198.51.100.172/24',
      'meta.app=www',
      'meta.version=v2',
    );
    await jy(
      'create',
      'db1',
      'skeleton=host',
      'skeleton.strategy=overlay',
      'persist',
      'meta.app=db',
      'env.role=primary',
    );
    served = await serve(state);
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.on('request', (r) => requests.push(r));
    // a script error or a refused inline script/style (the CSP) would be a console error
    page.on('console', (m) => void (m.type() === 'error' && consoleErrors.push(m.text())));
    page.on('pageerror', (e) => void consoleErrors.push(e.message));
  });

  after(async () => {
    await browser?.close();
    await served?.stop();
    // what the tests left (a failed test may leave any of them)
    for (const name of ['web1', 'web2', 'db1', 'web3', 'ro-v1-1', 'ro-v2-1', 'ro-v2-2'])
      await jy('remove', name).catch(() => {});
    assertNoLeaks(leaksBefore, state);
    rmSync(state, { recursive: true, force: true });
  });

  test('the page and its files need no token, the API behind them does: the login asks for it', async () => {
    const res = await fetch(`${served.url}/ui/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.equal((await fetch(`${served.url}/v1/jails`)).status, 401);
    await page.goto(`${served.url}/ui/`);
    const token = page.locator('input[name="token"]');
    await token.fill('wrong');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText('The daemon refused the token.').waitFor();
    await token.fill(served.token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await waitForLive(page, requests, consoleErrors);
    for (const name of ['web1', 'web2', 'db1']) await row(name).waitFor();
    assert.equal(await row('web1').getAttribute('data-state'), 'stopped');
    assert.match(await text(row('web1')), /198\.51\.100\.171\/24/);
    assert.match(await text(row('db1')), /overlay/);
    assert.match(await text(row('db1')), /role=primary/);
    // the token is the tab's: sessionStorage, sent as the API's bearer token
    assert.equal(await page.evaluate(() => sessionStorage.getItem('jailyard.token')), served.token);
    // the wrong token's 401 is the one error the console shows
    assert.deepEqual(
      consoleErrors.filter((e) => !/401/.test(e)),
      [],
    );
  });

  test('the table follows the CLI live: start, a label change, create, remove; one list, no polling', async () => {
    const lists = () => requests.filter((r) => /\/v1\/jails(\?(?!watch)|$)/.test(r.url()) && r.method() === 'GET');
    const listsBefore = lists().length;
    await jy('start', 'web1');
    await page.locator('tr[data-jail="web1"][data-state="running"]').waitFor({ timeout: 30_000 });
    await jy('set', 'web2', 'meta.version=v3');
    await row('web2').getByText('version=v3').waitFor();
    await jy('create', 'web3', 'skeleton=host', 'meta.app=www', 'meta.version=v1');
    await row('web3').waitFor();
    await jy('remove', 'web3');
    await row('web3').waitFor({ state: 'detached' });
    // every change came over the one watch stream: the table never listed again
    assert.equal(lists().length, listsBefore);
    assert.equal(requests.filter((r) => r.url().includes('watch=1')).length, 1);
  });

  test('a label selector filters as on the CLI; a bad one shows the parser error at the field', async () => {
    const input = page.locator('input[name="selector"]');
    await input.fill('app=www,version in (v1,v2)');
    await row('web2').waitFor({ state: 'detached' });
    assert.equal(await row('web1').count(), 1);
    assert.equal(await row('db1').count(), 0);
    assert.match(page.url(), /#\/jails\?l=app%3Dwww/);
    const bad = 'app=www,version in (v1';
    await input.fill(bad);
    const error = page.locator('[data-testid="selector-error"]');
    await error.waitFor();
    let expected = '';
    try {
      parseSelector(bad);
    } catch (e) {
      expected = (e as Error).message;
    }
    assert.match(expected, /column/);
    assert.match(await text(error), new RegExp(expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    assert.equal(await input.getAttribute('aria-invalid'), 'true');
    // the table keeps the last good filter
    assert.equal(await row('web1').count(), 1);
    assert.equal(await row('db1').count(), 0);
    await input.fill('');
    await row('db1').waitFor();
    assert.equal(await error.count(), 0);
  });

  test('actions ask first: cancel changes nothing, confirm stops the jail', async () => {
    await row('web1').locator('button[data-action="stop"]').click();
    await page.getByRole('dialog').waitFor();
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    assert.equal(await row('web1').getAttribute('data-state'), 'running');
    await row('web1').locator('button[data-action="stop"]').click();
    await page.locator('[data-testid="confirm"]').click();
    await page.locator('tr[data-jail="web1"][data-state="stopped"]').waitFor({ timeout: 30_000 });
  });

  test('a stale edit is refused (412), shown, and overwrites nothing; after a reload it saves', async () => {
    await page.goto(`${served.url}/ui/#/jail/web2`);
    const version = page.locator('input[data-field="meta.version"]');
    await version.waitFor();
    const readAt = Number(await page.locator('[data-testid="read-revision"]').textContent()) ?? '';
    await version.fill('v4');
    // another writer comes first
    await jy('set', 'web2', 'meta.owner=cli', 'meta.version=v5');
    await page.locator('[data-testid="changed-since"]').waitFor();
    await page.locator('[data-testid="save"]').click();
    const conflict = page.locator('[data-testid="conflict"]');
    await conflict.waitFor();
    assert.match(await text(conflict), new RegExp(`revision ${readAt}`));
    // the edit is kept on the page, the jail has the other writer's values
    assert.equal(await version.inputValue(), 'v4');
    const now = (await (await api('/v1/jails/web2')).json()) as { labels: Record<string, string>; revision: number };
    assert.equal(now.labels.version, 'v5');
    assert.equal(now.labels.owner, 'cli');
    const patch = requests.filter((r) => r.method() === 'PATCH').at(-1)!;
    assert.equal(patch.headers()['if-match'], `"${readAt}"`);
    const file = process.env.JAILYARD_UI_SCREENSHOT;
    if (file) await page.screenshot({ path: file.replace(/(\.png)?$/, '-conflict.png'), fullPage: false });
    // reload, edit again: saved with the new revision
    await conflict.getByRole('button', { name: 'reload' }).click();
    await page.locator('[data-testid="conflict"]').waitFor({ state: 'detached' });
    assert.equal(await version.inputValue(), 'v5');
    await version.fill('v6');
    await page.locator('[data-testid="save"]').click();
    await page.getByText(/Saved: revision \d+/).waitFor();
    const saved = (await (await api('/v1/jails/web2')).json()) as { labels: Record<string, string> };
    assert.equal(saved.labels.version, 'v6');
    assert.equal(saved.labels.owner, 'cli');
  });

  test('a parameter typed as on the CLI: a bad value is shown at its row and nothing is sent', async () => {
    const patches = () => requests.filter((r) => r.method() === 'PATCH').length;
    const before = patches();
    const host = page.locator('input[data-field="params.persist"]');
    await host.fill('maybe');
    await page.locator('[data-testid="save"]').click();
    await page.getByText('unknown boolean value "maybe"', { exact: false }).waitFor();
    assert.equal(patches(), before);
    await page.getByRole('button', { name: 'Undo edits' }).click();
  });

  test('recent events of the jail; skeletons and nodes pages', async () => {
    const events = page.locator('[data-testid="events"] tbody tr');
    await events.first().waitFor();
    assert.ok((await events.count()) >= 2);
    await page.goto(`${served.url}/ui/#/skeletons`);
    const skel = page.locator('tr[data-skeleton="host@1"]');
    await skel.waitFor();
    assert.match(await text(skel), /web1/);
    await page.goto(`${served.url}/ui/#/nodes`);
    await page.getByText('not a cluster').waitFor();
  });

  test("a jail's console log: its last lines, then what it writes, live", async () => {
    await jy('start', 'web1');
    await page.goto(`${served.url}/ui/#/jail/web1`);
    const log = page.locator('[data-testid="console-log"]');
    await log.getByText('ui-log-line').waitFor();
    const count = async () => (await text(log)).split('ui-log-line').length - 1;
    const before = await count();
    assert.ok(before >= 1);
    // the page stays open while the jail runs its exec.start again
    await jy('restart', 'web1');
    const until = Date.now() + TIMEOUT;
    while ((await count()) <= before) {
      assert.ok(Date.now() < until, "the restart's line did not reach the page");
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await text(page.locator('[data-testid="log-status"]')), 'following (last 200 lines, then live)');
    // the mount plan a start would execute: the skeleton's binds into the jail's root
    const plan = await text(page.locator('[data-testid="mount-plan"]'));
    assert.match(plan, new RegExp(`^root ${state.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/`, 'm'));
    assert.match(plan, /^mount (ro|rw) bind \S+ \S+ \(skeleton/m);
    await page.goto(`${served.url}/ui/#/jail/db1`);
    await page.locator('[data-testid="mount-plan"]', { hasText: 'mount overlay' }).waitFor();
  });

  test('a rollout shows its steps as it saves them, and the pool as the jails show it', async () => {
    const PORT = 8080;
    const web = (v: string) =>
      `mkdir -p /etc/jyweb && echo ${v} > /etc/jyweb/index.html && /usr/bin/python3 -m http.server ${PORT} -d /etc/jyweb >/dev/null 2>&1 &`;
    const template = join(state, 'ro.conf');
    writeFileSync(
      template,
      `ro { skeleton = host; persist; ip4.addr = 198.51.100.2/24; exec.start = "${web('v2')}"; }\n`,
    );
    await jy(
      'create',
      'ro-v1-1',
      'skeleton=host',
      'persist',
      'ip4.addr=198.51.100.174/24',
      `exec.start=${web('v1')}`,
      'meta.app=ro',
      'meta.version=v1',
    );
    await jy('start', 'ro-v1-1');
    await page.goto(`${served.url}/ui/#/rollout`);
    await page.getByText('No rollout saved').waitFor();
    let finished = false;
    const run = jy(
      'rollout',
      '-l',
      'app=ro',
      '--from',
      'version=v1',
      '--to',
      'version=v2',
      '--replicas',
      '1',
      '--template',
      template,
      '--port',
      String(PORT),
      '--health-timeout',
      '30',
      '--address-range',
      '175-176',
    ).finally(() => (finished = true));
    const steps = page.locator('[data-testid="steps"] li');
    // the page shows steps while the rollout still runs (it is not read once at the end)
    // phase and steps read in one turn of the page: read apart, the page could show the last
    // step and 'done' between the two reads, and the count taken as 'while running' be the last
    let stepsWhileRunning = 0;
    while (!finished) {
      const seen: { phase?: string; steps: number } = await page.evaluate(`({
        phase: document.querySelector('[data-testid="phase"]')?.textContent?.trim(),
        steps: document.querySelectorAll('[data-testid="steps"] li').length,
      })`);
      if (seen.phase === 'running') stepsWhileRunning = seen.steps;
      await new Promise((r) => setTimeout(r, 50));
    }
    await run;
    assert.ok(stepsWhileRunning >= 1, 'no step shown while the rollout ran');
    await page.locator('[data-testid="phase"]', { hasText: 'done' }).waitFor();
    assert.ok((await steps.count()) > stepsWhileRunning);
    assert.match(await text(steps.first()), /rollout app=ro,version=v1 → app=ro,version=v2/);
    // the new jail serves, the old one is gone
    await page.locator('tr[data-pool-jail="ro-v2-1"][data-pool="up"]').waitFor();
    await page.locator('tr[data-pool-jail="ro-v1-1"]').waitFor({ state: 'detached' });
    const file = process.env.JAILYARD_UI_SCREENSHOT;
    if (file) await page.screenshot({ path: file.replace(/(\.png)?$/, '-rollout.png'), fullPage: true });
  });

  test('screenshot of the jails page (JAILYARD_UI_SCREENSHOT=FILE)', async (t) => {
    const file = process.env.JAILYARD_UI_SCREENSHOT;
    if (!file) return t.skip('JAILYARD_UI_SCREENSHOT not set');
    await jy('start', 'db1');
    await page.setViewportSize({ width: 1300, height: 330 });
    await page.goto(`${served.url}/ui/#/jails`);
    await page.locator('tr[data-jail="web1"][data-state="running"]').waitFor({ timeout: 30_000 });
    await page.locator('tr[data-jail="db1"][data-state="running"]').waitFor({ timeout: 30_000 });
    mkdirSync(dirname(file), { recursive: true });
    await page.screenshot({ path: file });
    assert.deepEqual(
      consoleErrors.filter((e) => !/401|412/.test(e)),
      [],
    );
  });
});
