import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DebootstrapTracker, aptMirror } from '../../src/skeleton/debootstrap.ts';
import { createSkeleton, removeSkeleton } from '../../src/skeleton/registry.ts';
import { loadDriver } from '../../src/platform/index.ts';
import { snapshot } from '../helpers/leaks.ts';
import { tempDir } from './fixtures.ts';

describe('debootstrap progress', () => {
  test('counts five phases per package; total known once retrieval ends', () => {
    const tr = new DebootstrapTracker();
    assert.equal(tr.feed('I: Retrieving InRelease '), undefined);
    assert.equal(tr.feed('I: Retrieving Packages '), undefined);
    assert.equal(tr.feed('I: Checking component main on http://deb.debian.org/debian...'), undefined);
    let p = tr.feed('I: Retrieving libc6 2.36-9+deb12u10')!;
    assert.deepEqual(p, { phase: 'Retrieving', done: 1, total: 450 });
    tr.feed('I: Validating libc6 2.36-9+deb12u10');
    tr.feed('I: Retrieving bash 5.2.15-2+b7');
    tr.feed('I: Validating bash 5.2.15-2+b7');
    p = tr.feed('I: Extracting libc6...')!;
    assert.deepEqual(p, { phase: 'Extracting', done: 5, total: 10 });
    p = tr.feed('I: Base system installed successfully.')!;
    assert.equal(p.done, p.total);
  });
  test('apt mirror from deb822 and one-line sources', () => {
    assert.equal(
      aptMirror('Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n'),
      'http://deb.debian.org/debian',
    );
    assert.equal(
      aptMirror('deb [arch=amd64] http://ftp.de.debian.org/debian bookworm main\n'),
      'http://ftp.de.debian.org/debian',
    );
  });
});

// Opt-in: downloads ~200 MB of Debian packages into a real skeleton (~30 s+).
describe('debootstrap skeleton (slow, JAILYARD_SLOW_TESTS=1, needs root and the apt mirror)', {
  skip: process.env.JAILYARD_SLOW_TESTS !== '1',
}, () => {
  const t = tempDir('debootstrap');
  after(t.cleanup);
  test('creates bookworm minbase as an owned version with a manifest', async () => {
    const sources = [
      '/etc/apt/sources.list',
      ...(existsSync('/etc/apt/sources.list.d')
        ? readdirSync('/etc/apt/sources.list.d').map((f) => `/etc/apt/sources.list.d/${f}`)
        : []),
    ]
      .filter(existsSync)
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    const mirror = aptMirror(sources);
    let last = { done: 0, total: 0 };
    const v = await createSkeleton(
      t.dir,
      'bookworm',
      { type: 'debootstrap', suite: 'bookworm', ...(mirror ? { mirror } : {}) },
      { onProgress: (p) => (last = p), host: await loadDriver({ stateDir: t.dir }) },
    );
    assert.equal(v.kind, 'owned');
    assert.ok(existsSync(join(v.root, 'usr/bin/dpkg')));
    assert.ok(v.entries > 5000, `entries ${v.entries}`);
    assert.equal(last.done, last.total);
    await removeSkeleton(t.dir, 'bookworm', { usersOf: () => [], host: await loadDriver({ stateDir: t.dir }) });
    // only our own mounts: other engineers' tests mount concurrently (assertNoLeaks would see theirs)
    assert.deepEqual(
      snapshot().mounts.filter((m) => m.startsWith(t.dir)),
      [],
      'debootstrap mounts left behind',
    );
    assert.ok(!existsSync(join(t.dir, 'skeletons/bookworm')));
  });
});
