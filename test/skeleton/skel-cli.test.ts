// jailyard skel, through commander with only this verb registered (other verbs are not needed).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { register } from '../../src/cli/commands/skel.ts';
import { JailyardError } from '../../src/errors.ts';
import { tempDir, makeSkeleton } from './fixtures.ts';

const t = tempDir('cli');
after(t.cleanup);
const src = join(t.dir, 'src');
makeSkeleton(src);
const state = join(t.dir, 'state');

async function run(...args: string[]): Promise<{ out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const program = new Command('jailyard').option('--state <dir>').exitOverride();
  register(program, { out: (s) => out.push(s), err: (s) => err.push(s) });
  await program.parseAsync(['--state', state, ...args], { from: 'user' });
  return { out, err };
}

describe('jailyard skel', () => {
  test('create --copy, --from; ls --json; show; show --verify', async () => {
    const c = await run('skel', 'create', 'mini', '--copy', src, '--json');
    assert.equal(JSON.parse(c.out[0]!).version, 1);
    await run('skel', 'create', 'ref', '--from', src);
    const ls = JSON.parse((await run('skel', 'ls', '--json')).out[0]!);
    assert.deepEqual(
      ls.map((s: { name: string }) => s.name),
      ['mini', 'ref'],
    );
    const text = (await run('skel', 'ls')).out.join('\n');
    assert.match(text, /^NAME\s+LATEST\s+VERSIONS\s+KIND\s+SOURCE/);
    assert.match(text, /ref\s+1\s+1\s+reference\s+from /);
    const show = JSON.parse((await run('skel', 'show', 'mini@1', '--json', '--verify')).out[0]!);
    assert.equal(show.version.kind, 'owned');
    assert.equal(show.verify.ok, true);
  });
  test('usage errors', async () => {
    await assert.rejects(
      run('skel', 'create', 'x', '--copy', src, '--from', src),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_USAGE',
    );
    await assert.rejects(
      run('skel', 'show', 'nope'),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_SKELETON_NOT_FOUND',
    );
  });
  test('rm refuses while a jail in the store names the skeleton (JY_ERR_SKELETON_IN_USE naming it)', async () => {
    const { openStore } = await import('../../src/store/sqlite.ts');
    const store = openStore(state);
    store.createJail({ name: 'web', params: { skeleton: 'mini@1', path: '/nonexistent/web' } });
    store.close();
    await assert.rejects(
      run('skel', 'rm', 'mini'),
      (e: unknown) => e instanceof JailyardError && e.code === 'JY_ERR_SKELETON_IN_USE' && e.message.includes('web'),
    );
    const again = openStore(state);
    again.removeJail('web');
    again.close();
  });
  test('rm checks the store for users (none now) and removes', async () => {
    await run('skel', 'rm', 'mini');
    assert.ok(!existsSync(join(state, 'skeletons/mini')));
  });
});
