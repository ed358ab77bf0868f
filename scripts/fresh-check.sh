#!/bin/bash
# scripts/fresh-check.sh — the README's two commands on a fresh Debian 12.
#
# Makes a minimal Debian 12 (bookworm) root with mmdebstrap from the host's
# configured apt sources (variant minbase plus make, gcc, git and
# ca-certificates: nothing of ember's), puts a clean `git archive` of HEAD in
# it, and runs inside it, as the very first commands, `make demo` and then
# `make test`. Each must pass.
#
# Needs root (mmdebstrap, chroot, mounts). Everything runs in a private mount
# namespace: the mounts it makes (/proc, /sys, /dev, /dev/pts, /dev/shm,
# /run, /tmp) and those the tests make (ip netns under /run/netns) are
# unmounted on exit, failure and interrupt included, and would go with the
# namespace even if the script were killed. The root is removed afterwards
# (FRESH_KEEP=1 keeps it); it is never removed while anything is mounted
# under it. The logs stay in $B/fresh-check/ (B defaults to build).
#
#   FRESH_DIR=/var/tmp  where the root is made (a new directory in it)
#   FRESH_STEP_SECS=1500
#                       a step (mmdebstrap, make demo, make test) that takes
#                       longer fails, so a hang cannot eat CI's time
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "fresh-check: $*"; }
die() { echo "fresh-check: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, chroot and mounts)"

if [ -z "${FRESH_IN_NS:-}" ]; then
    scripts/deps.sh --quiet fresh
    git rev-parse --verify -q HEAD >/dev/null || die "not a git checkout with a HEAD"
    FRESH_IN_NS=1 exec unshare --mount --propagation private -- "$0" "$@"
fi

logs=$(pwd)/${B:-build}/fresh-check
rm -rf "$logs"
mkdir -p "$logs"
work=$(mktemp -d "${FRESH_DIR:-/var/tmp}/ember-fresh.XXXXXX")
root=$work/root

# Mount points under $root, deepest first.
mounts_under_root() {
    awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

cleanup() {
    rc=$?
    set +e
    # Whatever still runs inside the root was started from here.
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -KILL "${p#/proc/}" 2>/dev/null
    done
    n=0
    for m in $(mounts_under_root); do
        umount "$m" 2>/dev/null || umount -l "$m"
        n=$((n + 1))
    done
    left=$(mounts_under_root)
    [ -n "$left" ] || say "cleanup: unmounted $n mounts under the root"
    if [ -n "$left" ]; then
        echo "fresh-check: FAIL: still mounted, $work kept:" $left >&2
        rc=1
    elif [ -n "${FRESH_KEEP:-}" ]; then
        say "root kept in $root"
    else
        rm -rf --one-file-system "$work"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# step NAME COMMAND...: one line, the output in $logs/NAME.log; on failure
# (or after FRESH_STEP_SECS) the end of the log.
step() {
    name=$1
    shift
    t0=$(date +%s)
    # In the background so that a signal reaches the traps at once.
    timeout -k 10 "${FRESH_STEP_SECS:-1500}" "$@" > "$logs/$name.log" 2>&1 </dev/null &
    if wait $!; then
        say "$name: ok in $(( $(date +%s) - t0 )) s"
    else
        rc=$?
        tail -n 80 "$logs/$name.log" | sed "s/^/  $name| /" >&2
        die "$name failed (exit $rc) after $(( $(date +%s) - t0 )) s; the log: $logs/$name.log"
    fi
}

t_all=$(date +%s)
sources=
[ -f /etc/apt/sources.list.d/debian.sources ] && sources=/etc/apt/sources.list.d/debian.sources
[ -z "$sources" ] && [ -s /etc/apt/sources.list ] && sources=/etc/apt/sources.list
say "making a minimal bookworm root in $root (sources: ${sources:-deb.debian.org})"
# The host's Acquire settings travel along (a snapshot mirror needs its
# Check-Valid-Until, a proxy its address).
aptopts=()
while read -r opt; do aptopts+=("--aptopt=$opt"); done \
    < <(apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|http::Proxy|https::Proxy) ' || true)
step mmdebstrap mmdebstrap --mode=root --variant=minbase \
    --include=make,gcc,git,ca-certificates "${aptopts[@]}" \
    bookworm "$root" ${sources:+"$sources"}

mkdir -p "$root/src/ember"
git archive --format=tar HEAD | tar -x -C "$root/src/ember"
say "HEAD ($(git rev-parse --short HEAD)) in /src/ember"
cp /etc/resolv.conf "$root/etc/resolv.conf"
grep -qs localhost "$root/etc/hosts" || printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' > "$root/etc/hosts"

# The root is a mount point of its own, as / is on a real machine (ip netns
# exec remounts / as a slave).
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"

in_root=(chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin sh -c)
step make-demo "${in_root[@]}" "cd /src/ember && make demo"
grep '^deps:' "$logs/make-demo.log" | sed 's/^/  /'
step make-test "${in_root[@]}" "cd /src/ember && make test"
grep '^deps:' "$logs/make-test.log" | sed 's/^/  /'
grep -E '^make test: ' "$logs/make-test.log" | sed 's/^/  /'
# The suites that need root print SKIP where they cannot run: here they must.
skips=$(grep -E '(^|[[:space:]:])SKIP(PED)?[: ]' "$logs/make-test.log" || true)
[ -z "$skips" ] || die "make test skipped where it must run: $skips"

say "both README commands passed on a fresh bookworm in $(( $(date +%s) - t_all )) s"
