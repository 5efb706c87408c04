// Bundles the CLI (src/cli/main.ts and everything of ours it imports, plus commander) into
// OUTDIR with esbuild: one entry, main.js, and one chunk per verb (and per module group the
// verbs share), loaded by the same dynamic imports as in src/, so a command still loads only
// its own verb; and beside it ls-fast.mjs and jls-fast.mjs, the plain `ls` and `jls` the bin
// runs before the CLI (src/cli/ls-fast.ts, src/cli/jls-fast.ts). Run by
// scripts/build-dist.sh: `node scripts/bundle-cli.ts OUTDIR`.
//
// Why a bundle: `jailyard ls` spent more time resolving, reading and linking ~60 small
// modules than running (docs/benchmarks.md). What it keeps the same:
// - the packages with native code or of their own size (better-sqlite3, fastify, undici, ...)
//   stay in node_modules, imported as from dist/;
// - `import.meta.url` in a source file still means that file's place in the tree (the
//   paths to native/build/, defaults/, examples/ and package.json are relative to it), so
//   every chunk sits directly in OUTDIR, two levels below the package root;
// - Node's own modules are taken with process.getBuiltinModule(), which hands over the
//   module object, not an ES module facade: the facade of node:fs reads every export, and its `promises` getter
//   loads fs/promises and readline, which no read-only command uses; commander's
//   child_process (only for executable subcommands, which jailyard has none of) is loaded
//   when first used.
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = resolve(process.argv[2] ?? join(root, 'dist/bundle'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
// bundled: small pure-JavaScript packages on every command's path
const BUNDLED = new Set(['commander']);
const external = Object.keys(pkg.dependencies ?? {})
  .filter((name) => !BUNDLED.has(name))
  .flatMap((name) => [name, `${name}/*`]);
const builtins = new Set(builtinModules.flatMap((m) => (m.startsWith('node:') ? [m] : [m, `node:${m}`])));
const srcDir = join(root, 'src');
// from OUTDIR (where every chunk is) back to the package root
const toRoot = relative(outdir, root).split('\\').join('/');
const depth = relative(root, outdir).split('/').length;

/** Node's builtin modules that most commands never call: loaded at their first call
 * (node:crypto is ~4 ms of a command that never hashes; node:net ~1 ms beside child_process,
 * which loads most of its internals). Only their functions are exported: a module of ours
 * importing anything else fails the build. */
const LAZY = new Set(['node:crypto', 'node:net']);
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
/** Builtins whose accessors are read too: async_hooks offers AsyncLocalStorage only as one (a
 * missing export fails the build, it is never undefined at run time). Others, such as
 * fs.promises, would load more at every start for nothing. */
const READ_ACCESSORS = new Set(['node:async_hooks']);

/** An ES module standing for the builtin `name`: its data properties as named exports (an
 * accessor such as fs.promises is not read, except in READ_ACCESSORS), the module object as the default export; for a
 * LAZY module, its functions only, each loading the module when first called. */
function builtinModule(name: string): string {
  const mod = process.getBuiltinModule(name) as Record<string, unknown>;
  const keys = Object.keys(mod).filter((k) => {
    const d = Object.getOwnPropertyDescriptor(mod, k);
    return IDENTIFIER.test(k) && k !== 'default' && d !== undefined && ('value' in d || READ_ACCESSORS.has(name));
  });
  const get = `process.getBuiltinModule(${JSON.stringify(name)})`;
  if (!LAZY.has(name))
    return [`const m = ${get};`, 'export default m;', ...keys.map((k) => `export const ${k} = m.${k};`)].join('\n');
  return [
    'let m;',
    ...keys
      .filter((k) => typeof mod[k] === 'function')
      .map((k) => `export function ${k}(...a) { return (m ??= ${get}).${k}(...a); }`),
  ].join('\n');
}

const plugin: Plugin = {
  name: 'jailyard',
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z_/]+$/ }, (args) => {
      if (!builtins.has(args.path)) return undefined;
      const name = args.path.startsWith('node:') ? args.path : `node:${args.path}`;
      // CommonJS (commander) gets the module object itself; its child_process only when used
      if (args.kind === 'require-call') {
        const lazy = name === 'node:child_process' && args.importer.includes('/node_modules/commander/');
        return { path: name, namespace: lazy ? 'jy-lazy-cjs' : 'jy-cjs' };
      }
      return { path: name, namespace: 'jy-esm' };
    });
    b.onLoad({ filter: /.*/, namespace: 'jy-esm' }, (args) => ({ contents: builtinModule(args.path), loader: 'js' }));
    b.onLoad({ filter: /.*/, namespace: 'jy-cjs' }, (args) => ({
      contents: `module.exports = process.getBuiltinModule(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
    b.onLoad({ filter: /.*/, namespace: 'jy-lazy-cjs' }, (args) => ({
      contents: `module.exports = { spawn: (...a) => process.getBuiltinModule(${JSON.stringify(args.path)}).spawn(...a) };`,
      loader: 'js',
    }));
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      if (!args.path.startsWith(`${srcDir}/`)) return undefined;
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return { contents: text, loader: 'ts' };
      const own = `${toRoot}/${relative(root, args.path)}`;
      return {
        contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(own)}, import.meta.url).href`),
        loader: 'ts',
      };
    });
  },
};

if (depth !== 2) throw new Error(`bundle-cli: OUTDIR must be two levels below the package root, not ${outdir}`);

const common = {
  outdir,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  // .mjs: Node knows each chunk is an ES module without looking for a package.json scope
  outExtension: { '.js': '.mjs' },
  external,
  plugins: [plugin],
  minifySyntax: true,
  minifyWhitespace: true,
  keepNames: false,
  legalComments: 'none',
  sourcemap: 'linked',
  sourcesContent: false,
  logLevel: 'warning',
} as const;

await build({ ...common, entryPoints: [join(srcDir, 'cli/main.ts')], splitting: true, chunkNames: '[name]-[hash]' });
// ls-fast.mjs and jls-fast.mjs: the plain `ls` and `jls` that bin/jailyard.js runs before the
// CLI (src/cli/ls-fast.ts, src/cli/jls-fast.ts), each one file with all it uses (~10-25 KB),
// not the CLI's chunks: each chunk is a module to resolve
await build({
  ...common,
  entryPoints: [join(srcDir, 'cli/ls-fast.ts'), join(srcDir, 'cli/jls-fast.ts')],
  splitting: false,
});
