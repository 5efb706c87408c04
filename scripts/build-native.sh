#!/usr/bin/env bash
# Builds jailyard's one native helper, native/build/jy-capdrop (static, so it runs inside any
# jail root without the jail's libraries). Run by `npm install` (prepare); idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname -s)" = Linux ] || exit 0
src=native/jy-capdrop.c out=native/build/jy-capdrop
[ -x "$out" ] && [ "$out" -nt "$src" ] && exit 0
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "jailyard: a C compiler is needed to build $out (apt-get install gcc libc6-dev)" >&2
  exit 1
fi
mkdir -p native/build
"$cc" -static -Os -Wall -Wextra -Werror -o "$out.tmp" "$src"
mv "$out.tmp" "$out"
