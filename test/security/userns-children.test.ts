// A child of a user-namespace jail (red-team finding of 2026-12-04): the child joined its
// parent's pid, net, uts and ipc namespaces but stayed in the host's user namespace, so a
// jail whose root is an unprivileged range uid made, through its own `jail -c`, a child whose
// root was host root. A child now enters its parent's user namespace: its root is its
// parent's root (the range's first uid on the host), whoever made it (the jail through its
// guest tools, or the operator on the host), and so are its hooks' commands.
// Addresses: none (the children share their parent's network).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SecurityHost, toolsDaemon, type ToolsDaemon } from './helpers.ts';
import { recordedRange } from '../../src/platform/linux/userns.ts';

/** Real, effective, saved and fs uid of a process, as the host sees them. */
function uids(pid: number): number[] {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Uid:'))!;
  return line.split(/\s+/).slice(1).map(Number);
}

describe('children of a user-namespace jail', () => {
  let h: SecurityHost;
  let d: ToolsDaemon;
  let base: number;

  const run = (jail: string, argv: string[]) => d.run(jail, argv);
  const initOf = (jail: string): number => {
    const pid = d.store.requireJail(jail).runtime?.create?.initPid;
    assert.ok(pid, `${jail} is not running`);
    return pid;
  };

  before(async () => {
    h = await SecurityHost.open('unkids');
    await h.jail('unp', { params: ['userns', 'children.max=2'] });
    d = await toolsDaemon(h, ['unp']);
    const range = recordedRange(h.jailDir('unp'));
    assert.ok(range, 'the parent has a range');
    base = range.base;
    assert.deepEqual(uids(initOf('unp')), [base, base, base, base], "the parent's root is its range's first uid");
  });
  after(async () => {
    await d?.close();
    await h?.close();
  });

  /** The child runs in its parent's user namespace, its root the parent's range uid. */
  const confined = async (child: string): Promise<void> => {
    const pid = initOf(child);
    assert.equal(
      readlinkSync(`/proc/${pid}/ns/user`),
      readlinkSync(`/proc/${initOf('unp')}/ns/user`),
      `${child} is in its parent's user namespace`,
    );
    assert.notEqual(readlinkSync(`/proc/${pid}/ns/user`), readlinkSync('/proc/self/ns/user'));
    assert.deepEqual(uids(pid), [base, base, base, base], `${child}'s pid 1 is not host root`);
    // a command run in the child: uid 0 inside, the range's uid outside, no host privilege
    const r = await run(child, [
      '/bin/sh',
      '-c',
      'id -u; cat /proc/self/uid_map; echo x > /tmp/jy-owner-probe; hostname evil 2>/dev/null && echo set-hostname; exit 0',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [id, map, ...rest] = r.stdout.trim().split('\n');
    assert.equal(id, '0');
    assert.deepEqual(map!.trim().split(/\s+/).map(Number).slice(0, 2), [0, base], 'uid 0 maps to the range');
    assert.deepEqual(rest, [], "the child's root cannot set the (shared) hostname");
  };

  test("a child made by the jail's own `jail -c` enters the parent's user namespace", async () => {
    const r = await run('unp', ['jail', '-c', 'name=kid', 'persist', 'exec.start=id -u > /tmp/kid-start']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(d.store.getJail('unp.kid')?.state, 'running');
    await confined('unp.kid');
    // its exec.start ran as the jail's root, not the host's: the file it wrote is the range's
    const rootOf = d.service.contextOf('unp.kid').path;
    const written = join(rootOf, 'tmp', 'kid-start');
    assert.equal(readFileSync(written, 'utf8').trim(), '0');
    assert.equal(statSync(written).uid, base, "exec.start's file is owned by the range, not by host root");
    const rm = await run('unp', ['jail', '-r', 'kid']);
    assert.equal(rm.code, 0, rm.stderr);
  });

  test('a child the operator makes on the host enters it too', async () => {
    await h.jail('unp.op', { skeleton: null });
    await confined('unp.op');
    for (const verb of ['stop', 'remove']) {
      const r = await h.jy(verb, 'unp.op');
      assert.equal(r.code, 0, `${verb}: ${r.stderr}`);
    }
  });
});
