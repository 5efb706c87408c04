// Builds the web dashboard (ui/, docs/ui.md) into OUTDIR (dist/ui): one ES module app.js
// (esbuild: TypeScript and JSX, preact bundled in, minified), the page and the style sheet.
// Run by scripts/build-dist.sh: `node scripts/bundle-ui.ts OUTDIR`. The browser bundle
// shares the daemon's pure modules (the label selector parser, the parameter typing, the SSE
// parser); node:net's isIP, the one Node module they name, is ui/src/shims/net.ts here.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = resolve(process.argv[2] ?? join(root, 'dist/ui'));
mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: [join(root, 'ui/src/main.tsx')],
  outfile: join(outdir, 'app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [
    {
      name: 'node-shims',
      setup(b) {
        b.onResolve({ filter: /^node:net$/ }, () => ({ path: join(root, 'ui/src/shims/net.ts') }));
      },
    },
  ],
});
for (const f of ['index.html', 'app.css']) copyFileSync(join(root, 'ui', f), join(outdir, f));
