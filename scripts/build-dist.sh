#!/usr/bin/env bash
# Compiles src/ into dist/ (tsc -p tsconfig.build.json: the library, its types, and the CLI
# module by module) and bundles the CLI into dist/bundle/ (scripts/bundle-cli.ts: esbuild, one
# chunk per verb), which bin/jailyard.js runs while it is current. Run by `npm install`
# (prepare), `npm test` (pretest) and `npm run build`. The web dashboard (ui/) is bundled into
# dist/ui by scripts/bundle-ui.ts.
#
# dist/.built is the build's stamp. It is touched BEFORE tsc or esbuild reads any source, and
# the build is moved into place only when both succeeded, so "nothing under src/ (or a tsconfig)
# is newer than dist/.built" means dist/ was compiled from the sources as they are now.
# bin/jailyard.js checks exactly that on every run and runs src/ when it does not hold; this
# script checks it too and does nothing then.
#
# Concurrent builds take turns (flock on this script). The new tree is built beside dist/
# and swapped in by renames, so a command that is loading dist/ never reads a half-written
# file.
set -euo pipefail
cd "$(dirname "$0")/.."
exec 9<"$0"
flock 9

# esbuild is a devDependency added after the first builds: a node_modules installed before it
# (a pull without `npm install`) still builds tsc's dist/, which the bin then runs. The
# bundler script is TypeScript: it needs npm's Node 24, not the machine's older node.
bundle=0
inputs=(src tsconfig.json tsconfig.build.json)
if [ -d node_modules/esbuild ] && [ -x node_modules/.bin/node ]; then
  bundle=1
  inputs+=(scripts/bundle-cli.ts)
fi
# the web dashboard (ui/, docs/ui.md) into dist/ui: esbuild and preact (devDependencies)
ui=0
if [ $bundle = 1 ] && [ -d node_modules/preact ]; then
  ui=1
  inputs+=(ui scripts/bundle-ui.ts)
fi

if [ -e dist/.built ] && { [ $bundle = 0 ] || [ -e dist/bundle/main.mjs ]; } &&
  { [ $ui = 0 ] || [ -e dist/ui/index.html ]; } &&
  [ -z "$(find "${inputs[@]}" -newer dist/.built -print -quit)" ]; then
  exit 0
fi

rm -rf dist.next dist.old
mkdir dist.next
touch dist.next/.built.pending
node=node_modules/.bin/node
[ -x "$node" ] || node=node
"$node" node_modules/typescript/bin/tsc -p tsconfig.build.json --outDir dist.next
if [ $bundle = 1 ]; then "$node" scripts/bundle-cli.ts dist.next/bundle; fi
if [ $ui = 1 ]; then "$node" scripts/bundle-ui.ts dist.next/ui; fi
mv dist.next/.built.pending dist.next/.built
[ -d dist ] && mv dist dist.old
mv dist.next dist
rm -rf dist.old
