// The README's pipeline as a rule on imports: a module imports only the rooms below it
// (conf, meta, skeleton: the pure core; then runtime over the platform drivers and the store;
// api, lb and cli on top). Read from the sources' own import lines, so a new upward import
// fails here with the file and the line that makes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, relative } from 'node:path';

/** What each room (a folder of src/, or a file at its top) may import besides itself. */
const ALLOWED: Record<string, string[]> = {
  errors: [],
  defaults: [],
  // meta's key operations and selectors are pure leaves: conf parses meta.KEY=V words with them
  meta: ['errors'],
  conf: ['errors', 'defaults', 'meta'],
  // the state folder's layout: below the skeleton module and the runtime, which both use it
  layout: ['errors', 'conf'],
  skeleton: ['errors', 'defaults', 'conf', 'meta', 'layout'],
  // the store owns the facts it persists; the drivers report them in its shapes
  store: ['errors', 'defaults', 'conf', 'meta'],
  platform: ['errors', 'defaults', 'conf', 'meta', 'layout', 'skeleton', 'store'],
  runtime: ['errors', 'defaults', 'conf', 'meta', 'layout', 'skeleton', 'platform', 'store'],
  // export/import/clone/snapshots of a jail's writable part: over the runtime's create
  portable: ['errors', 'defaults', 'conf', 'meta', 'layout', 'skeleton', 'runtime', 'platform', 'store'],
  api: ['errors', 'defaults', 'conf', 'meta', 'layout', 'skeleton', 'runtime', 'store', 'portable'],
  lb: ['errors', 'defaults', 'conf', 'meta', 'layout', 'runtime', 'store', 'api'],
  // the cluster (etcd state, its service, the node agent) runs the single-host runtime on
  // each node; the API serves it through the JailService and EventLog interfaces
  cluster: ['errors', 'defaults', 'conf', 'meta', 'layout', 'skeleton', 'runtime', 'platform', 'store'],
  cli: [
    'errors',
    'defaults',
    'conf',
    'meta',
    'layout',
    'skeleton',
    'runtime',
    'platform',
    'store',
    'api',
    'lb',
    'cluster',
    'portable',
  ],
  index: [
    'errors',
    'defaults',
    'conf',
    'meta',
    'layout',
    'skeleton',
    'runtime',
    'platform',
    'store',
    'api',
    'lb',
    'cluster',
    'portable',
  ],
};

function roomOf(src: string, file: string): string {
  const [first = '', ...rest] = relative(src, file).split('/');
  return rest.length ? first : first.replace(/\.ts$/, '');
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every import (static, `export ... from`, or dynamic) of a room not allowed to it. */
function upwardImports(src: string): string[] {
  const found: string[] = [];
  for (const file of sources(src)) {
    const from = roomOf(src, file);
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const m of line.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*)'(\.{1,2}\/[^']+)'/g)) {
        const to = roomOf(src, normalize(join(dirname(file), m[1]!)));
        if (to === from) continue;
        if (!(ALLOWED[from] ?? []).includes(to)) found.push(`${relative(src, file)}:${i + 1}: ${from} imports ${to}`);
      }
    });
  }
  return found;
}

test('no module imports upward against the pipeline', () => {
  const src = join(import.meta.dirname, '..', 'src');
  assert.deepEqual(upwardImports(src), []);
  // every room of src/ has a rule: a new folder must be placed in the pipeline
  const rooms = new Set(sources(src).map((f) => roomOf(src, f)));
  assert.deepEqual(
    [...rooms].filter((r) => !(r in ALLOWED)),
    [],
  );
});

test('the check sees an upward import, static and dynamic', () => {
  const src = mkdtempSync(join(tmpdir(), 'jy-layering-'));
  try {
    mkdirSync(join(src, 'skeleton'));
    mkdirSync(join(src, 'runtime'));
    writeFileSync(join(src, 'runtime', 'service.ts'), "import { plan } from '../skeleton/plan.ts';\n");
    writeFileSync(
      join(src, 'skeleton', 'plan.ts'),
      "export const plan = 1;\nimport type { X } from '../runtime/service.ts';\nawait import('../runtime/service.ts');\n",
    );
    assert.deepEqual(upwardImports(src), [
      'skeleton/plan.ts:2: skeleton imports runtime',
      'skeleton/plan.ts:3: skeleton imports runtime',
    ]);
  } finally {
    rmSync(src, { recursive: true, force: true });
  }
});
