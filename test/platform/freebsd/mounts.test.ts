import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createFreeBSDDriver, createFakeRunner } from '../../../src/platform/freebsd/index.ts';
import { mountCommands } from '../../../src/platform/freebsd/commands.ts';
import type { MountPlan } from '../../../src/skeleton/plan.ts';
import { JailyardError } from '../../../src/errors.ts';
import { sandbox } from './fixture.ts';

const NAME = 'jyfb-mnt';

describe('FreeBSD driver: mounts (mocked FreeBSD)', () => {
  test('a failing mount throws JY_ERR_MOUNT naming source and target, undoes what it mounted and made (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME);
    const { root, ctx } = sb;
    const plan: MountPlan = {
      root,
      mkdirs: [join(root, 'bin'), join(root, 'srv/www')],
      symlinks: [],
      mounts: [
        { kind: 'bind', source: '/skel/bin', target: join(root, 'bin'), readonly: true, origin: 'skeleton-ro' },
        {
          kind: 'bind',
          source: '/nonexistent/www',
          target: join(root, 'srv/www'),
          readonly: false,
          origin: 'mount.fstab',
        },
        { kind: 'devfs', target: join(root, 'dev'), origin: 'mount.devfs' },
      ],
    };
    const fake = createFakeRunner([
      { argv: ['/sbin/mount_nullfs', '-o', 'ro', '/skel/bin', join(root, 'bin')] },
      {
        argv: ['/sbin/mount_nullfs', '/nonexistent/www', join(root, 'srv/www')],
        result: { code: 1, stderr: 'mount_nullfs: /nonexistent/www: No such file or directory\n' },
      },
      { argv: ['/sbin/umount', join(root, 'bin')] },
    ]);
    const driver = createFreeBSDDriver({ runner: fake });
    await assert.rejects(driver.mount(ctx, plan), (e: unknown) => {
      assert.ok(e instanceof JailyardError);
      assert.equal(e.code, 'JY_ERR_MOUNT');
      assert.equal(e.place.jail, NAME);
      assert.equal(e.place.step, 'mounts');
      assert.equal(e.place.param, 'mount.fstab');
      assert.match(e.message, /mounting \/nonexistent\/www on .*\/root\/srv\/www failed/);
      assert.match(e.message, new RegExp(`had mounted ${join(root, 'bin')}; all undone`));
      assert.match(e.place.output ?? '', /No such file or directory/);
      return true;
    });
    fake.verify();
    assert.equal(existsSync(join(root, 'bin')), false, 'directories the plan made are removed');
    assert.equal(existsSync(join(root, 'srv')), false);
    assert.equal(existsSync(root), true);
  });

  test('when undoing fails too, the error lists what is still mounted (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME);
    const { root, ctx } = sb;
    mkdirSync(join(root, 'a'));
    mkdirSync(join(root, 'b'));
    const plan: MountPlan = {
      root,
      mkdirs: [],
      symlinks: [],
      mounts: [
        { kind: 'bind', source: '/x', target: join(root, 'a'), readonly: true, origin: 'skeleton-ro' },
        { kind: 'tmpfs', target: join(root, 'b'), options: ['size=64m', 'mode=1777'], origin: 'mount' },
      ],
    };
    const fake = createFakeRunner([
      { argv: ['/sbin/mount_nullfs', '-o', 'ro', '/x', join(root, 'a')] },
      {
        argv: ['/sbin/mount', '-t', 'tmpfs', '-o', 'size=64m,mode=1777', 'tmpfs', join(root, 'b')],
        result: { code: 1, stderr: 'mount: tmpfs: Operation not permitted\n' },
      },
      {
        argv: ['/sbin/umount', join(root, 'a')],
        result: { code: 1, stderr: 'umount: unmount of /a failed: Device busy\n' },
      },
    ]);
    const driver = createFreeBSDDriver({ runner: fake });
    await assert.rejects(driver.mount(ctx, plan), (e: unknown) => {
      assert.ok(e instanceof JailyardError);
      assert.equal(e.code, 'JY_ERR_MOUNT');
      assert.match(e.message, /mounting tmpfs on .*\/b failed/);
      assert.match(e.message, new RegExp(`still mounted \\(run jailyard reconcile\\): ${join(root, 'a')}`));
      return true;
    });
    fake.verify();
  });

  test('a mount point below a symlink inside the jail is refused before mounting (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME);
    const { root, ctx } = sb;
    symlinkSync('/etc', join(root, 'evil'));
    const plan: MountPlan = {
      root,
      mkdirs: [],
      symlinks: [],
      mounts: [{ kind: 'bind', source: '/skel/etc', target: join(root, 'evil/ssl'), readonly: true, origin: 'mount' }],
    };
    const fake = createFakeRunner([]);
    const driver = createFreeBSDDriver({ runner: fake });
    await assert.rejects(driver.mount(ctx, plan), (e: unknown) => {
      assert.ok(e instanceof JailyardError);
      assert.equal(e.code, 'JY_ERR_PATH');
      assert.match(e.message, /is a symbolic link/);
      return true;
    });
    fake.verify();
  });

  test("a source in another jail's tree passing a symlink of that jail's is refused before mounting (mocked FreeBSD)", async (t) => {
    const sb = sandbox(t, NAME);
    const { root, ctx } = sb;
    // the other jail's tree: a folder of this sandbox, with its link to a host path
    const other = join(root, '..', 'other-root');
    mkdirSync(join(other, 'srv'), { recursive: true });
    symlinkSync('/etc', join(other, 'srv/share'));
    const plan: MountPlan = {
      root,
      mkdirs: [],
      symlinks: [],
      mounts: [
        {
          kind: 'bind',
          source: join(other, 'srv/share'),
          target: join(root, 'mnt'),
          readonly: false,
          origin: 'mount',
          within: other,
        },
      ],
    };
    const fake = createFakeRunner([]);
    const driver = createFreeBSDDriver({ runner: fake });
    await assert.rejects(driver.mount(ctx, plan), (e: unknown) => {
      assert.ok(e instanceof JailyardError);
      assert.equal(e.code, 'JY_ERR_PATH');
      assert.match(e.message, /mount source in a jail's tree .*share is a symbolic link/);
      return true;
    });
    fake.verify();
  });

  test('basejail: one ro nullfs plus symlinks; unmount skips targets already gone (mocked FreeBSD)', async (t) => {
    const sb = sandbox(t, NAME);
    const { root, ctx } = sb;
    const plan: MountPlan = {
      root,
      mkdirs: [join(root, 'basejail'), join(root, 'proc')],
      symlinks: [
        { path: join(root, 'bin'), target: '/basejail/bin' },
        { path: join(root, 'usr/lib'), target: '/basejail/usr/lib' },
      ],
      mounts: [
        { kind: 'bind', source: '/skel/14.2', target: join(root, 'basejail'), readonly: true, origin: 'skeleton-ro' },
        { kind: 'proc', target: join(root, 'proc'), origin: 'mount.procfs' },
      ],
    };
    const fake = createFakeRunner([
      { argv: ['/sbin/mount_nullfs', '-o', 'ro', '/skel/14.2', join(root, 'basejail')] },
      { argv: ['/sbin/mount', '-t', 'procfs', '.', join(root, 'proc')] },
    ]);
    const driver = createFreeBSDDriver({ runner: fake });
    const facts = await driver.mount(ctx, plan);
    assert.equal(readlinkSync(join(root, 'bin')), '/basejail/bin');
    assert.ok(lstatSync(join(root, 'usr/lib')).isSymbolicLink());
    fake.verify();
    // procfs is already gone (e.g. unmounted by hand): only the nullfs is unmounted
    fake.expect(
      { argv: ['/sbin/mount', '-p'], result: { stdout: `/skel/14.2\t${join(root, 'basejail')}\tnullfs\tro\t0 0\n` } },
      { argv: ['/sbin/umount', join(root, 'basejail')] },
    );
    await driver.unmount(ctx, facts);
    fake.verify();
    assert.equal(existsSync(join(root, 'bin')), false);
    assert.equal(existsSync(join(root, 'usr')), false);
    assert.equal(existsSync(join(root, 'basejail')), false);
  });

  test('overlay: skeleton below as ro nullfs, writable upper on top with unionfs (mocked FreeBSD)', () => {
    const cmds = mountCommands(
      {
        kind: 'overlay',
        lower: ['/skel/top', '/skel/base'],
        upper: '/state/web/upper',
        work: '/state/web/work',
        target: '/jails/web',
        origin: 'skeleton-overlay',
      },
      '4',
    );
    assert.deepEqual(
      cmds.map((c) => c.argv),
      [
        ['/sbin/mount_nullfs', '-o', 'ro', '/skel/base', '/jails/web'],
        ['/sbin/mount_unionfs', '-o', 'ro', '/skel/top', '/jails/web'],
        ['/sbin/mount_unionfs', '/state/web/upper', '/jails/web'],
      ],
    );
    const fs = mountCommands(
      { kind: 'fs', fstype: 'fdescfs', source: 'fdesc', target: '/jails/web/dev/fd', options: [], origin: 'mount' },
      '4',
    );
    assert.deepEqual(fs[0]!.argv, ['/sbin/mount', '-t', 'fdescfs', 'fdesc', '/jails/web/dev/fd']);
  });
});
