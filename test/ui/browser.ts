// What the dashboard tests share: Debian's chromium driven by playwright-core (no browser of
// playwright's own: `npx playwright install` cannot download here), and a real `jailyard
// serve` on loopback TCP with a token, as an operator would run it.

import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BrowserContext, Page, Request } from 'playwright-core';
import { binArgs } from '../helpers/cli.ts';

export const CHROMIUM = '/usr/bin/chromium';
const ROOT = join(import.meta.dirname, '../..');

/**
 * Why the browser tests cannot run, or undefined when they can. A missing chromium is
 * installed first (scripts/system-deps.sh, as `npm test` does), so only a machine that
 * cannot install it skips.
 */
export function browserMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  if (process.getuid?.() === 0) spawnSync('bash', [join(ROOT, 'scripts/system-deps.sh')], { stdio: 'inherit' });
  if (existsSync(CHROMIUM)) return undefined;
  return `no ${CHROMIUM}, and scripts/system-deps.sh could not install Debian's chromium`;
}

/** Headless chromium with a fresh profile; close() also removes the profile. */
export async function launchBrowser(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'jy-ui-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 800 },
    // no connection of chromium's own: this machine's network is closed
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export interface Served {
  url: string;
  token: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** `jailyard --state STATE serve --listen 127.0.0.1:0 --token-file F`, once it serves. */
export async function serve(state: string): Promise<Served> {
  const token = `ui-test-${process.pid}-${Date.now()}`;
  const tokenFile = join(state, 'ui-token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const child = spawn(process.execPath, binArgs(state, 'serve', '--listen', '127.0.0.1:0', '--token-file', tokenFile), {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 30_000);
    child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
      const m = / and (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited ${code}: ${stderr}`));
    });
  });
  return {
    url,
    token,
    child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

const execFileP = promisify(execFile);

/** The CLI as a process of its own (so its writes reach the daemon through the store). */
export function cliProcess(state: string): (...args: string[]) => Promise<string> {
  return async (...args) => {
    try {
      const { stdout } = await execFileP(process.execPath, binArgs(state, ...args), { encoding: 'utf8' });
      return stdout;
    } catch (e) {
      const err = e as Error & { stderr?: string };
      throw new Error(`jailyard ${args.join(' ')}: ${err.stderr ?? err.message}`);
    }
  };
}

/**
 * Waits until the dashboard's header says its feed is live. On a timeout the error says what
 * the page showed instead and which API requests it made and how they ended (CI once waited
 * 20 s in vain after the login, and nothing else was known).
 */
export async function waitForLive(page: Page, requests: Request[], consoleErrors: string[]): Promise<void> {
  const status = page.locator('[data-testid="feed-status"]');
  try {
    await status.filter({ hasText: 'live' }).waitFor();
  } catch (e) {
    const shown = await status.textContent({ timeout: 1000 }).catch(() => '(no feed status on the page)');
    const api = await Promise.all(
      requests
        .filter((r) => r.url().includes('/v1/'))
        .map(async (r) => {
          const res = await r.response().catch(() => null);
          return `${r.method()} ${new URL(r.url()).pathname}${new URL(r.url()).search} -> ${res ? res.status() : (r.failure()?.errorText ?? 'no answer yet')}`;
        }),
    );
    throw new Error(
      `the feed did not become live (it shows "${shown}"): ${(e as Error).message}\nAPI requests:\n${api.join('\n')}\nconsole errors: ${consoleErrors.join(' | ') || 'none'}`,
    );
  }
}
