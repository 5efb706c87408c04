#!/usr/bin/env bash
# Builds jailyard's native helpers, native/*.c -> native/build/NAME, statically linked (so
# they run inside any jail root without the jail's libraries): jy-stage, jy-enter, jy-mount,
# jy-spawner (see src/platform/linux/native.ts). Run by `npm install` (prepare); idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname -s)" = Linux ] || exit 0
cc=${CC:-cc}
mkdir -p native/build
for src in native/*.c; do
  out=native/build/$(basename "$src" .c)
  [ -x "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt native/jy-common.h ] && continue
  if ! command -v "$cc" >/dev/null 2>&1; then
    echo "jailyard: a C compiler is needed to build $out (apt-get install gcc libc6-dev)" >&2
    exit 1
  fi
  "$cc" -static -Os -Wall -Wextra -Werror -o "$out.tmp" "$src"
  mv "$out.tmp" "$out"
done
