#!/usr/bin/env bash
# The long forms of the reliability suites (docs/reliability.md). JAILYARD_SOAK=1 makes the
# fuzz files generate >= 1,000,000 inputs in total and the fault, crash and signal suites cover
# more points. Files that do not exist (yet) are skipped, so the script runs on any checkout.
# Usage: npm run soak [-- --fuzz-only]
set -euo pipefail
cd "$(dirname "$0")/.."
export JAILYARD_SOAK=1
node=node_modules/.bin/node

files=()
add() { for f in "$@"; do [[ -f $f ]] && files+=("$f"); done; return 0; }
shopt -s nullglob
add test/fuzz/*.test.ts
if [[ ${1:-} != --fuzz-only ]]; then
	add test/faults/*.test.ts test/cli/crash*.test.ts test/api/crash-daemon.test.ts \
		test/cli/signals.test.ts test/cli/two-states.test.ts test/cluster/cluster.test.ts
fi
if ((${#files[@]} == 0)); then
	echo "soak: no test files found" >&2
	exit 1
fi
echo "soak: ${#files[@]} files (JAILYARD_SOAK=1)"
exec "$node" --import ./test/helpers/fast-check-seed.ts --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
