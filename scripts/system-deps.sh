#!/usr/bin/env bash
# Installs the Debian packages jailyard's jails, quick start and tests use, if missing
# (idempotent; one apt-get update at most). Run by `npm start`, `npm test` and .ci/run; with
# --build, only what building the native helpers needs (`npm install`'s prepare, which builds
# them before `npm start` or `npm test` could install the rest).
#   tini        zombie-reaping pid 1 of every Linux jail (tini-static is bound into jails)
#   haproxy     the load balancer of the quick start, the lb tests and the rollout
#   iproute2, util-linux   ip, nsenter, unshare, setpriv, mount
#   bubblewrap, crun, lxc  the baselines of the start, exec and scale benchmarks
#   busybox-static  the root those baselines run in (bench/lib.ts builds it, no image pulls)
#   gcc, libc6-dev, libseccomp-dev  build the static native helpers (native/*.c); libseccomp
#               compiles the jail's seccomp filters at build time (native/gen/)
#   nftables    the bridge's anti-spoofing rules and published ports (tables of jailyard's own)
#   conntrack   published UDP ports: a flow's NAT is forgotten when its rules change
#   keyutils    keyctl, used by the isolation tests (host root's keyring is not the jail's)
#   python3, procps, libcap2-bin  what the jails of the quick start and the escape suite run
#               (/usr/bin/python3, ps, setcap)
#   kyua, atf-sh, athena-jot  run FreeBSD's own jail tests unchanged (test/freebsd/upstream.test.ts:
#               kyua, atf-sh and the jot the tests call)
#   etcd-server, etcd-client  the cluster's store, etcd 3.4, and etcdctl: test/cluster, bench/cluster.bench.ts
#   chromium    the headless browser test/ui drives the web dashboard in (playwright-core)
#   debootstrap `skel create --debootstrap` (an owned Debian skeleton), and the Debian tree
#               bench/skeleton.bench.ts builds once (/var/tmp/jyskel-bench-bookworm)
set -euo pipefail
[ "$(uname -s)" = Linux ] || exit 0
command -v dpkg-query >/dev/null 2>&1 || exit 0
packages=(tini haproxy iproute2 util-linux bubblewrap crun lxc busybox-static gcc libc6-dev libseccomp-dev nftables conntrack keyutils python3 procps libcap2-bin kyua atf-sh athena-jot etcd-server etcd-client chromium debootstrap)
[ "${1-}" = --build ] && packages=(gcc libc6-dev libseccomp-dev)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "jailyard needs these Debian packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing ${missing[*]} ..." >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
