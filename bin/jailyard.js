#!/bin/sh
':' //; p=$0; [ -L "$p" ] && p=$(readlink -f "$p"); n=${p%/*}/../node_modules/.bin/node; [ -x "$n" ] || n=node; e=${p%/*}/../native/build/jy-enter; s=${JAILYARD_STATE-/var/db/jailyard}; k=2; x=$1; j=$2; c=$3; [ "$1" = --state ] && [ $# -ge 5 ] && s=$2 && k=4 && x=$3 && j=$4 && c=$5; if [ "$x" = exec ] && [ $# -gt $k ] && [ "${JAILYARD_SRC-}" != 1 ] && [ -z "${JAILYARD_HOST+1}" ] && [ -x "$e" ] && [ ! "${p%/*}/../native/jy-enter.c" -nt "$e" ]; then case $j in ''|.*|-*|*[!A-Za-z0-9._-]*) ;; *) case $s in ''|[!/]*|*/.*) ;; *) case $c in -*) ;; *) exec "$e" --fast "$s/jails/$j/enter" "$n" "$p" $k "$@";; esac;; esac;; esac; fi; t=${p%/*}/../native/build/jy-ctl; case $1.$3 in start.*|stop.*|restart.*|ls.*|jail.*|jls.*|--state.start|--state.stop|--state.restart|--state.ls|--state.jail|--state.jls) [ "${JAILYARD_SRC-}" != 1 ] && [ -z "${JAILYARD_HOST+1}" ] && [ -x "$t" ] && [ ! "${p%/*}/../native/jy-ctl.c" -nt "$t" ] && exec "$t" "$n" "$p" "$@";; esac; exec "$n" "$p" "$@"
// The jailyard command. Run as a program, it is first a sh script (the two lines above; to
// JavaScript the second is a string and a comment, which is why biome.jsonc leaves this
// file's format alone): for a plain `jailyard exec NAME PROGRAM [ARGS...]` (no option but a
// leading `--state DIR`, no --host or $JAILYARD_HOST, not JAILYARD_SRC=1, a NAME of letters,
// digits and ._- only) sh runs native/build/jy-enter on the jail's enter file, which runs
// the program as the CLI would, or, when the file is missing or stale, this file as below
// (native/jy-enter.c fast_main); a jy-enter older than its source (not rebuilt since a pull)
// is not trusted to know --fast. A plain `jailyard [--state DIR] start|stop|restart NAME...`
// and a `jailyard [--state DIR] ls|jail|jls ARGS...` (same conditions) run native/build/jy-ctl,
// which asks the daemon serving the state folder
// (its unix socket, root's own, 0600) and prints what the CLI would, or, with no such daemon
// or anything else it does not handle, runs this file as below (native/jy-ctl.c); a jy-ctl
// older than its source is not trusted either. Otherwise sh starts the Node 24 that npm installed beside
// jailyard (node_modules/.bin/node, else the `node` on PATH) on this file, so a command is one
// Node start-up, not an old Node's that then starts Node 24.
//
// It runs the bundled CLI in dist/bundle/ (tsc's dist/cli/ when there is no bundle) while
// dist/ is current: dist/.built is stamped by scripts/build-dist.sh before tsc and esbuild read
// the sources, so dist/ is current when nothing under src/ (or a tsconfig) is newer than it.
// Otherwise, or with JAILYARD_SRC=1, it runs the TypeScript sources directly (Node 24 strips
// the types): an edit to src/ is never run stale. (jy-ctl, when it hands a command to this
// file, has made that check already, in C, and says so: $JAILYARD_DIST_BUILT.) A plain `ls`
// (switches and parameter names only, no daemon) runs dist/bundle/ls-fast.mjs instead of the
// CLI, with the same output (src/cli/ls-fast.ts), or the CLI when that leaves it; a plain
// `jls` (bin/jls's form) likewise runs dist/bundle/jls-fast.mjs (src/cli/jls-fast.ts). Started by
// an older Node (`node bin/jailyard.js` with the machine's own), it hands over to the Node 24
// that npm installed beside it. Node's own modules are taken with process.getBuiltinModule,
// not imported: the ES module face of node:fs reads every export, and its `promises` loads
// fs/promises, streams and readline, which most commands never use.

const root = new URL('../', import.meta.url);
const argv = process.argv.slice(2);
// jy-ctl's word that dist/ is current, when it hands a command over (native/jy-ctl.c
// tell_dist_current): dist/.built's mtime in ns as it found it. Not passed on to
// anything this command runs.
const toldBuilt = process.env.JAILYARD_DIST_BUILT;
delete process.env.JAILYARD_DIST_BUILT;

if (Number(process.versions.node.split('.')[0]) < 24) {
  const local = new URL('node_modules/.bin/node', root).pathname;
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(local, [new URL(import.meta.url).pathname, ...argv], { stdio: 'inherit' });
  if (r.error) {
    process.stderr.write(`jailyard: needs Node >= 24 (this is ${process.version}); run npm install first\n`);
    process.exit(1);
  }
  process.exit(r.status ?? 1);
}

const { existsSync, readdirSync, readFileSync, statSync } = process.getBuiltinModule('node:fs');

if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  process.stdout.write(`${JSON.parse(readFileSync(new URL('package.json', root), 'utf8')).version}\n`);
} else {
  // V8's compiled code (and Node's type stripping) kept across runs, keyed by each file's
  // contents; in jailyard's own folder, never a shared one (/tmp) another user could fill
  process.getBuiltinModule('node:module').enableCompileCache(new URL('node_modules/.cache/jailyard-compile/', root).pathname);
  const fromDist = process.env.JAILYARD_SRC !== '1' && distCurrent();
  if (!(fromDist && (await readFast()))) {
    const { main } = await import(new URL(fromDist ? distEntry() : 'src/cli/main.ts', root).href);
    process.exitCode = await main(argv);
  }
}

/** A plain `[--state DIR] ls ...` or `jls ...` (not for a daemon: no $JAILYARD_HOST) run by
 * dist/bundle/ls-fast.mjs or jls-fast.mjs (src/cli/ls-fast.ts, src/cli/jls-fast.ts) without
 * loading the CLI; false when it is not one, or when the CLI must run it after all. */
async function readFast() {
  const at = argv[0] === '--state' ? 2 : 0;
  const verb = argv[at];
  if ((verb !== 'ls' && verb !== 'jls') || process.env.JAILYARD_HOST) return false;
  const file = new URL(`dist/bundle/${verb}-fast.mjs`, root);
  if (!existsSync(file)) return false;
  const fast = await import(file.href);
  return (verb === 'ls' ? fast.lsFast : fast.jlsFast)(at ? argv[1] : undefined, argv.slice(at + 1));
}

/** The bundle when the build made one (esbuild is a devDependency), else tsc's modules. */
function distEntry() {
  return existsSync(new URL('dist/bundle/main.mjs', root)) ? 'dist/bundle/main.mjs' : 'dist/cli/main.js';
}

/** dist/ was built from the sources as they are now. */
function distCurrent() {
  const at = (path) => new URL(path, root).pathname;
  // no sources at all: an installed package, dist/ is all there is
  if (!existsSync(at('src/'))) return true;
  try {
    // jy-ctl looked at every source a moment ago, against this same stamp
    if (toldBuilt !== undefined && toldBuilt === String(statSync(at('dist/.built'), { bigint: true }).mtimeNs))
      return true;
    const built = statSync(at('dist/.built')).mtimeMs;
    const newer = (path) => (statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? 0) > built;
    if (newer(at('tsconfig.json')) || newer(at('tsconfig.build.json'))) return false;
    // folders too: removing or renaming a file changes its folder's mtime, not the file's
    const dirs = [at('src/')];
    for (let dir = dirs.pop(); dir !== undefined; dir = dirs.pop()) {
      if (statSync(dir).mtimeMs > built) return false;
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) dirs.push(`${dir}${e.name}/`);
        else if (statSync(dir + e.name).mtimeMs > built) return false;
      }
    }
    return true;
  } catch {
    return false;
  }
}
