#!/usr/bin/env bash
# Builds jailyard's native helpers, native/*.c -> native/build/NAME, statically linked (so
# they run inside any jail root without the jail's libraries): jy-stage, jy-enter, jy-mount,
# jy-spawner, jy-guest, jy-ctl (see src/platform/linux/native.ts). Run by `npm install` (prepare); idempotent:
# a helper is rebuilt when its source or a header is newer. The jail's seccomp filters are
# compiled first, by libseccomp (Debian libseccomp-dev), into native/build/jy-seccomp-filters.h
# (native/gen/seccomp-filters.c, run here): the helpers that include jy-seccomp.h load them
# as they are and do not link libseccomp.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname -s)" = Linux ] || exit 0
cc=${CC:-cc}
mkdir -p native/build
need_cc() {
  if ! command -v "$cc" >/dev/null 2>&1; then
    echo "jailyard: a C compiler is needed to build $1 (apt-get install gcc libc6-dev)" >&2
    exit 1
  fi
}
filters=native/build/jy-seccomp-filters.h
fresh=1
for dep in native/gen/seccomp-filters.c native/jy-common.h native/jy-seccomp-allow.h; do [ "$filters" -nt "$dep" ] || fresh=0; done
if [ $fresh = 0 ]; then
  need_cc "$filters"
  if [ ! -e /usr/include/seccomp.h ]; then
    echo "jailyard: libseccomp-dev is needed to build $filters (apt-get install libseccomp-dev)" >&2
    exit 1
  fi
  "$cc" -O2 -Wall -Wextra -Werror -o native/build/.seccomp-filters native/gen/seccomp-filters.c -lseccomp
  native/build/.seccomp-filters >"$filters.tmp"
  rm native/build/.seccomp-filters
  mv "$filters.tmp" "$filters"
fi
for src in native/*.c; do
  out=native/build/$(basename "$src" .c)
  fresh=1
  for dep in "$src" native/*.h "$filters"; do [ "$out" -nt "$dep" ] || fresh=0; done
  [ -x "$out" ] && [ $fresh = 1 ] && continue
  need_cc "$out"
  libs=()
  # a helper whose source says so is built without libc (native/jy-hold.c: its own _start)
  grep -q '^ \* build: -nostdlib' "$src" && libs+=(-nostdlib)
  # jy-ctl (the CLI's start/stop through the daemon) is on a command's path: speed over size
  opt=-Os
  [ "$src" = native/jy-ctl.c ] && opt=-O2
  "$cc" -static $opt -Wall -Wextra -Werror -Inative/build -o "$out.tmp" "$src" "${libs[@]}"
  mv "$out.tmp" "$out"
done
# The tools a jail runs inside itself (jy-guest by the names jail, jls and sysctl): a folder
# of their own, which every jail gets read-only at /run/jailyard/bin (nothing else of the
# build folder is bound into jails). Hard links, made again when jy-guest was rebuilt.
mkdir -p native/build/guest-bin
for name in jail jls sysctl; do
  [ native/build/guest-bin/$name -ef native/build/jy-guest ] || ln -f native/build/jy-guest native/build/guest-bin/$name
done
