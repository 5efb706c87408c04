import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  planMounts,
  appendMounts,
  skeletonLists,
  type PlanInput,
  type SkeletonLayout,
} from '../../src/skeleton/planner.ts';
import { JailyardError } from '../../src/errors.ts';
import { loadDefaults } from '../../src/defaults.ts';

// merged-usr layout like this Debian host: bin, lib, lib64, sbin are symlinks into usr
const mergedUsr: SkeletonLayout = {
  bin: { type: 'symlink', target: 'usr/bin' },
  sbin: { type: 'symlink', target: 'usr/sbin' },
  lib: { type: 'symlink', target: 'usr/lib' },
  lib64: { type: 'symlink', target: 'usr/lib64' },
  etc: { type: 'dir' },
  usr: { type: 'dir' },
  'usr/bin': { type: 'dir' },
  'usr/sbin': { type: 'dir' },
  'usr/lib': { type: 'dir' },
  'usr/lib64': { type: 'dir' },
  'usr/share': { type: 'dir' },
};

function input(over: Partial<PlanInput> = {}): PlanInput {
  return {
    jail: 'web',
    root: '/jails/web',
    stateDir: '/state/jails/web',
    strategy: 'nullfs',
    skeletonRoot: '/skel/1/root',
    layout: mergedUsr,
    romounts: ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'usr/lib32', 'usr/share', 'bin', 'sbin', 'lib', 'lib64'],
    rwmounts: [],
    writable: ['etc', 'var', 'tmp'],
    platform: 'linux',
    ...over,
  };
}

function errorOf(fn: () => unknown): JailyardError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof JailyardError, `not a JailyardError: ${String(e)}`);
    return e;
  }
  assert.fail('did not throw');
}

describe('planMounts nullfs', () => {
  test('one read-only bind per existing dir, symlinks for symlinked entries, missing skipped', () => {
    const plan = planMounts(input());
    assert.deepEqual(
      plan.mounts.map((m) => m.kind === 'bind' && [m.source, m.target, m.readonly, m.origin]),
      ['bin', 'sbin', 'lib', 'lib64', 'share'].map((d) => [
        `/skel/1/root/usr/${d}`,
        `/jails/web/usr/${d}`,
        true,
        'skeleton-ro',
      ]),
    );
    assert.deepEqual(plan.symlinks, [
      { path: '/jails/web/bin', target: 'usr/bin' },
      { path: '/jails/web/sbin', target: 'usr/sbin' },
      { path: '/jails/web/lib', target: 'usr/lib' },
      { path: '/jails/web/lib64', target: 'usr/lib64' },
    ]);
    assert.equal(plan.root, '/jails/web');
    assert.equal(plan.mkdirs[0], '/jails/web');
    assert.ok(plan.mkdirs.indexOf('/jails/web/usr') < plan.mkdirs.indexOf('/jails/web/usr/bin'));
    assert.deepEqual(plan.notes, ['usr/lib32: missing in the skeleton, not mounted']);
  });

  test('rw list: read-write binds from the jail state dir; parents mounted before children', () => {
    const layout: SkeletonLayout = { ...mergedUsr, usr: { type: 'dir' }, 'usr/local': { type: 'dir' } };
    const plan = planMounts(input({ layout, romounts: ['usr/bin', 'usr'], rwmounts: ['usr/local'] }));
    assert.deepEqual(
      plan.mounts.map((m) => (m.kind === 'bind' ? `${m.readonly ? 'ro' : 'rw'} ${m.source} ${m.target}` : m.kind)),
      [
        'ro /skel/1/root/usr /jails/web/usr',
        'ro /skel/1/root/usr/bin /jails/web/usr/bin',
        'rw /state/jails/web/rw/usr/local /jails/web/usr/local',
      ],
    );
    // parents listed before children (a driver may mkdir them one by one)
    const i = (d: string) => plan.mkdirs.indexOf(d);
    assert.ok(
      i('/state/jails/web/rw') >= 0 &&
        i('/state/jails/web/rw') < i('/state/jails/web/rw/usr') &&
        i('/state/jails/web/rw/usr') < i('/state/jails/web/rw/usr/local'),
    );
  });

  test('entries under a symlinked entry are not mounted twice', () => {
    const plan = planMounts(input({ romounts: ['bin', 'lib/x86_64-linux-gnu'] }));
    assert.deepEqual(plan.mounts, []);
    assert.deepEqual(plan.notes, ['lib/x86_64-linux-gnu: under symlink lib in the skeleton, not mounted']);
  });

  test('lists are normalized and deduplicated', () => {
    const plan = planMounts(input({ romounts: ['./usr/bin/', 'usr//bin'] }));
    assert.equal(plan.mounts.length, 1);
  });
});

describe('planMounts basejail', () => {
  test('ONE read-only bind at /basejail plus relative symlinks into it', () => {
    const plan = planMounts(input({ strategy: 'basejail', basejail: '/basejail' }));
    assert.deepEqual(plan.mounts, [
      {
        kind: 'bind',
        source: '/skel/1/root',
        target: '/jails/web/basejail',
        readonly: true,
        origin: 'skeleton-basejail',
      },
    ]);
    const links = Object.fromEntries(plan.symlinks.map((s) => [s.path, s.target]));
    assert.equal(links['/jails/web/usr/bin'], '../basejail/usr/bin');
    assert.equal(links['/jails/web/bin'], 'basejail/bin');
    assert.equal(links['/jails/web/usr/lib32'], undefined);
    assert.ok(plan.mkdirs.includes('/jails/web/basejail') && plan.mkdirs.includes('/jails/web/usr'));
  });
});

describe('planMounts of a live tree (skel create --from): only the romounts dirs', () => {
  test('basejail: a bind per romounts dir below /basejail, the links into it as before', () => {
    const plan = planMounts(input({ strategy: 'basejail', basejail: '/basejail', live: true }));
    assert.ok(!plan.mounts.some((m) => m.kind === 'bind' && m.source === '/skel/1/root'), 'no bind of the whole tree');
    assert.deepEqual(
      plan.mounts.map((m) => m.kind === 'bind' && [m.source, m.target, m.readonly, m.origin]),
      ['bin', 'sbin', 'lib', 'lib64', 'share'].map((d) => [
        `/skel/1/root/usr/${d}`,
        `/jails/web/basejail/usr/${d}`,
        true,
        'skeleton-ro',
      ]),
    );
    const links = Object.fromEntries(plan.symlinks.map((s) => [s.path, s.target]));
    assert.equal(links['/jails/web/basejail/bin'], 'usr/bin');
    assert.equal(links['/jails/web/bin'], 'basejail/bin');
    assert.equal(links['/jails/web/usr/bin'], '../basejail/usr/bin');
    assert.ok(plan.mkdirs.includes('/jails/web/basejail/usr/share'));
    assert.equal(plan.notes?.filter((n) => n.startsWith('usr/lib32')).length, 1, 'one note per left-out entry');
  });

  test('overlay: an overlay per romounts dir (layers in the jail state), the root the jail own dir', () => {
    const plan = planMounts(input({ strategy: 'overlay', live: true, cow: { etc: '/skel/1/cow/etc/etc' } }));
    assert.ok(!plan.mounts.some((m) => m.target === '/jails/web'), 'no overlay of the whole tree at the root');
    const ovl = plan.mounts.filter((m) => m.kind === 'overlay');
    assert.deepEqual(
      ovl.map((m) => m.kind === 'overlay' && [m.lower, m.target]),
      [
        [['/skel/1/cow/etc/etc'], '/jails/web/etc'],
        ...['bin', 'sbin', 'lib', 'lib64', 'share'].map((d) => [[`/skel/1/root/usr/${d}`], `/jails/web/usr/${d}`]),
      ],
    );
    const bin = ovl[1]!;
    assert.ok(
      bin.kind === 'overlay' &&
        bin.upper === '/state/jails/web/overlay/ro/usr%2Fbin/upper' &&
        bin.work === '/state/jails/web/overlay/ro/usr%2Fbin/work',
    );
    assert.deepEqual(
      plan.symlinks.find((l) => l.path === '/jails/web/bin'),
      { path: '/jails/web/bin', target: 'usr/bin' },
    );
  });

  test('overlay with a disk image: the image holds the root (the writable part), romounts read-only', () => {
    const plan = planMounts(input({ strategy: 'overlay', live: true, disk: '/state/jails/web/disk.img' }));
    assert.deepEqual(plan.disk, { image: '/state/jails/web/disk.img', target: '/jails/web' });
    // no writable layer outside the image: the romounts dirs read-only
    assert.ok(
      plan.mounts.every((m) => m.kind === 'bind' && m.readonly),
      JSON.stringify(plan.mounts),
    );
  });

  test('owned trees are taken whole as before', () => {
    assert.equal(planMounts(input({ strategy: 'basejail', live: false })).mounts[0]!.origin, 'skeleton-basejail');
    assert.equal(planMounts(input({ strategy: 'overlay' })).mounts[0]!.target, '/jails/web');
  });
});

describe('planMounts overlay and full', () => {
  test('overlay: lower = skeleton, upper/work in the jail state dir, at the jail root', () => {
    const plan = planMounts(input({ strategy: 'overlay' }));
    assert.deepEqual(plan.mounts, [
      {
        kind: 'overlay',
        lower: ['/skel/1/root'],
        upper: '/state/jails/web/overlay/upper',
        work: '/state/jails/web/overlay/work',
        target: '/jails/web',
        origin: 'skeleton-overlay',
      },
    ]);
    assert.deepEqual(plan.symlinks, []);
  });

  test('overlay keeps rw binds on top of the overlay', () => {
    const plan = planMounts(input({ strategy: 'overlay', romounts: [], rwmounts: ['srv/data'] }));
    assert.deepEqual(
      plan.mounts.map((m) => m.kind),
      ['overlay', 'bind'],
    );
    assert.equal(plan.notes, undefined);
  });

  test('full: no skeleton mounts', () => {
    const plan = planMounts(input({ strategy: 'full' }));
    assert.deepEqual(plan.mounts, []);
    assert.deepEqual(plan.mkdirs, ['/jails/web']);
  });
});

describe('planMounts bad input', () => {
  for (const [param, over, entry] of [
    ['skeleton.romounts', { romounts: ['../etc'] }, '../etc'],
    ['skeleton.romounts', { romounts: ['usr/../../etc'] }, 'usr/../../etc'],
    ['skeleton.rwmounts', { rwmounts: ['/etc'] }, '/etc'],
    ['skeleton.writable', { writable: [''] }, ''],
  ] as const) {
    test(`${param} entry ${JSON.stringify(entry)} -> JY_ERR_PATH naming jail, parameter, entry`, () => {
      const e = errorOf(() => planMounts(input(over as unknown as Partial<PlanInput>)));
      assert.equal(e.code, 'JY_ERR_PATH');
      assert.equal(e.place.jail, 'web');
      assert.equal(e.place.param, param);
      assert.ok(e.message.includes(`"${entry}"`), e.message);
    });
  }

  test('relative jail root -> JY_ERR_PATH on path', () => {
    const e = errorOf(() => planMounts(input({ root: 'jails/web' })));
    assert.equal(e.code, 'JY_ERR_PATH');
    assert.equal(e.place.param, 'path');
  });

  test('host root as jail root is refused', () => {
    assert.equal(errorOf(() => planMounts(input({ root: '/' }))).place.param, 'path');
  });

  test('unknown strategy -> JY_ERR_PARAM_VALUE', () => {
    const e = errorOf(() => planMounts(input({ strategy: 'zfs' as never })));
    assert.equal(e.code, 'JY_ERR_PARAM_VALUE');
    assert.equal(e.place.param, 'skeleton.strategy');
  });

  test('same entry read-only and read-write is refused', () => {
    const e = errorOf(() => planMounts(input({ romounts: ['usr/share'], rwmounts: ['usr/share'] })));
    assert.equal(e.code, 'JY_ERR_PATH');
    assert.equal(e.place.param, 'skeleton.rwmounts');
  });
});

describe('appendMounts and skeletonLists', () => {
  test('appendMounts returns a new plan, skeleton mounts first', () => {
    const plan = planMounts(input());
    const more = appendMounts(
      plan,
      [{ kind: 'tmpfs', target: '/jails/web/tmp', options: ['size=16m'], origin: 'fstab' }],
      ['/jails/web/tmp'],
    );
    assert.equal(more.mounts.length, plan.mounts.length + 1);
    assert.equal(more.mounts.at(-1)!.origin, 'fstab');
    assert.ok(!plan.mkdirs.includes('/jails/web/tmp'));
  });

  test('params override the defaults file; strings are split', () => {
    const d = loadDefaults();
    const l = skeletonLists(
      'web',
      { 'skeleton.strategy': 'basejail', 'skeleton.romounts': 'usr/bin usr/lib' },
      d,
      'linux',
    );
    assert.equal(l.strategy, 'basejail');
    assert.deepEqual(l.romounts, ['usr/bin', 'usr/lib']);
    assert.deepEqual(l.writable, d.skeleton.writable.linux);
    const e = errorOf(() => skeletonLists('web', { 'skeleton.rwmounts': ['/abs'] }, d, 'linux'));
    assert.equal(e.place.param, 'skeleton.rwmounts');
  });
});

describe('planMounts copy-on-write dirs (skeleton.cow)', () => {
  test('nullfs and basejail: one overlay per dir, its layers in the jail state, parents before children', () => {
    for (const strategy of ['nullfs', 'basejail'] as const) {
      const plan = planMounts(
        input({
          strategy,
          writable: ['etc', 'var', 'usr/local'],
          cow: { 'usr/local': '/skel/1/cow/usr%2Flocal/usr/local', etc: '/skel/1/cow/etc/etc' },
        }),
      );
      const cow = plan.mounts.filter((m) => m.origin === 'skeleton-cow');
      assert.deepEqual(
        cow,
        [
          {
            kind: 'overlay',
            lower: ['/skel/1/cow/etc/etc'],
            upper: '/state/jails/web/cow/etc/upper',
            work: '/state/jails/web/cow/etc/work',
            target: '/jails/web/etc',
            origin: 'skeleton-cow',
          },
          {
            kind: 'overlay',
            lower: ['/skel/1/cow/usr%2Flocal/usr/local'],
            upper: '/state/jails/web/cow/usr%2Flocal/upper',
            work: '/state/jails/web/cow/usr%2Flocal/work',
            target: '/jails/web/usr/local',
            origin: 'skeleton-cow',
          },
        ],
        strategy,
      );
      for (const dir of [
        '/state/jails/web/cow/etc/upper',
        '/state/jails/web/cow/etc/work',
        '/jails/web/etc',
        '/jails/web/usr',
        '/jails/web/usr/local',
      ]) {
        assert.ok(plan.mkdirs.includes(dir), `${strategy}: ${dir} made before mounting`);
      }
      // teardown walks the list backwards: a dir's overlay goes after what is mounted below it
      const at = (t: string) => plan.mounts.findIndex((m) => m.target === t);
      if (strategy === 'nullfs') assert.ok(at('/jails/web/usr/local') > at('/jails/web/etc'));
    }
  });

  test('a dir the seed does not have gets no mount, and a note', () => {
    const plan = planMounts(input({ cow: { etc: undefined } }));
    assert.equal(
      plan.mounts.some((m) => m.kind === 'overlay'),
      false,
    );
    assert.match(plan.notes!.join('\n'), /etc: not in the skeleton's seed/);
  });

  test('only writable dirs, never nested; the error names the jail, the parameter and the entry', () => {
    let e = errorOf(() => planMounts(input({ cow: { 'usr/bin': '/x' } })));
    assert.deepEqual([e.code, e.place.jail, e.place.param], ['JY_ERR_PARAM_VALUE', 'web', 'skeleton.cow']);
    assert.match(e.message, /"usr\/bin" is not in skeleton\.writable/);
    e = errorOf(() =>
      skeletonLists(
        'web',
        { 'skeleton.cow': 'etc etc/ssl', 'skeleton.writable': 'etc etc/ssl' },
        loadDefaults(),
        'linux',
      ),
    );
    assert.deepEqual([e.code, e.place.param], ['JY_ERR_PARAM_VALUE', 'skeleton.cow']);
    assert.match(e.message, /"etc\/ssl" is inside "etc"/);
  });

  test('overlay and full strategies do not use it (a note, no mount); skeletonLists drops it for them', () => {
    for (const strategy of ['overlay', 'full'] as const) {
      const plan = planMounts(input({ strategy, cow: { etc: '/skel/1/cow/etc/etc' } }));
      assert.equal(
        plan.mounts.some((m) => m.origin === 'skeleton-cow'),
        false,
      );
      assert.match(plan.notes!.join('\n'), /cow: not used/);
      assert.deepEqual(
        skeletonLists('web', { 'skeleton.strategy': strategy, 'skeleton.cow': 'etc' }, loadDefaults(), 'linux').cow,
        [],
      );
    }
    assert.deepEqual(skeletonLists('web', { 'skeleton.cow': 'etc' }, loadDefaults(), 'linux').cow, ['etc']);
    assert.deepEqual(
      skeletonLists('web', {}, loadDefaults(), 'linux').cow,
      loadDefaults().skeleton.cow!.linux,
      'the default from the defaults file',
    );
    assert.deepEqual(
      skeletonLists('web', { 'skeleton.cow': [''] }, loadDefaults(), 'linux').cow,
      [],
      '`skeleton.cow = "";` is the empty list (copy /etc)',
    );
  });
});
