#!/bin/sh
# jailyard's Linux jail stage: runs as pid 1 of the jail's new mount, pid, uts and ipc
# namespaces (its network namespace was joined before). A FIXED script: every value comes in
# as a positional argument and is only ever quoted, never evaluated.
#   $1 jail root (host path, already a private mount point with the plan's mounts below it)
#   $2 hostname   $3 tini binary on the host   $4 jy-capdrop on the host
#   $5 capability numbers the jail keeps (jy-capdrop's KEEP)
#   $6 "makedev" to mount a minimal /dev here (the plan had none), else "keepdev"
#   $7... the holder command pid 1 (tini) keeps running, e.g. sleep infinity
# After pivot_root NO program of the jail's own tree runs until jy-capdrop (static, bound
# from the host) has dropped the capabilities: only shell builtins and that helper.
# Protocol with the driver: print "wait" and block on stdin until the driver has put us into
# the jail's cgroups, then print "ready" right before exec'ing tini; errors go to stderr.
set -eu
root=$1 hostname=$2 tini=$3 capdrop=$4 keep=$5 dev=$6
shift 6

fail() { echo "jailyard stage: $*" >&2; exit 111; }

echo wait
read -r go || fail "the driver went away before releasing the stage"
[ "$go" = go ] || fail "unexpected release line"

cd "$root" || fail "no jail root $root"
# proc/ and .jailyard/tini (an empty mount point file) were made by the driver beforehand.
mount -t proc -o nosuid,nodev,noexec proc proc || fail "cannot mount proc in $root/proc"

if [ "$dev" = makedev ]; then
  mkdir -p dev
  mount -t tmpfs -o mode=755,nosuid,size=64k jailyard-dev dev || fail "cannot mount tmpfs on $root/dev"
  for d in null zero full random urandom tty; do
    : > "dev/$d" && mount --bind "/dev/$d" "dev/$d" || fail "cannot bind /dev/$d"
  done
  mkdir dev/pts dev/shm
  mount -t devpts -o newinstance,ptmxmode=0666,mode=620,nosuid,noexec devpts dev/pts || fail "cannot mount devpts"
  mount -t tmpfs -o mode=1777,nosuid,nodev shm dev/shm || fail "cannot mount dev/shm"
  ln -s pts/ptmx dev/ptmx && ln -s /proc/self/fd dev/fd && ln -s /proc/self/fd/0 dev/stdin &&
    ln -s /proc/self/fd/1 dev/stdout && ln -s /proc/self/fd/2 dev/stderr
fi

# tini and jy-capdrop are bound read-only from the host (static binaries: they need nothing
# of the jail's tree); the binds exist only in this mount namespace.
mount --bind -o ro "$tini" .jailyard/tini || fail "cannot bind $tini into the jail"
mount --bind -o ro "$capdrop" .jailyard/capdrop || fail "cannot bind $capdrop into the jail"

# A shell builtin write instead of hostname(1): one process less on every start.
echo "$hostname" > proc/sys/kernel/hostname || fail "cannot set hostname $hostname"

# pivot_root with new and old root the same directory: the old root ends up stacked on top
# of "/"; jy-capdrop detaches it lazily, so nothing of the host stays reachable.
pivot_root . . || fail "pivot_root into $root failed"

echo ready
# Dropped from the bounding set before anything of the jail runs: no mount, no module, no
# raw I/O, no ptrace, no mknod, no network admin. No no_new_privs: setuid tools (su, ping)
# keep working, limited to this bounding set.
exec /.jailyard/capdrop --detach-old-root "$keep" -- /.jailyard/tini -- "$@" </dev/null >&2
