#!/bin/sh
# Makes sure the Debian packages ember needs are installed.
#
#   scripts/deps.sh [--quiet] [GROUP...]      GROUP: build demo mixed bench test fresh
#
# build: libember, idlc and the examples; demo: the same (the demo needs
# nothing more); mixed: build and python3-twisted (make demo-mixed, whose
# game2 is a Twisted node); bench: python3 (idlc10k's input), gnuplot
# (bench-plot) and python3-twisted (the Perspective Broker workloads);
# test, the default: everything `make test` and CI use on top of build
# (clang, valgrind, the libFuzzer runtime, openssl, iproute2, locales (a
# de_DE locale for the PB float test), chromium,
# python3-twisted for the Perspective Broker peers, promtool and
# python3-prometheus-client for the metrics test);
# fresh: mmdebstrap, for scripts/fresh-check.sh. Several groups add up.
#
# As root it installs what is missing with apt-get, one line per step on the
# terminal and apt's own output in a log (DEPS_LOG, default build/deps.log);
# a failed step prints apt's error and the log's path. Otherwise it names the
# packages and exits 1. With --quiet it prints nothing when all is present.
set -eu

quiet=0
[ "${1:-}" = "--quiet" ] && { quiet=1; shift; }
[ $# -gt 0 ] || set -- test
root=$(cd "$(dirname "$0")/.." && pwd)
log=${DEPS_LOG:-$root/build/deps.log}

# package name : file that proves it is installed
build="
libevent-dev:/usr/include/event2/event.h
bison:/usr/bin/bison
flex:/usr/bin/flex
libcunit1-dev:/usr/include/CUnit/CUnit.h
libjansson-dev:/usr/include/jansson.h
libsqlite3-dev:/usr/include/sqlite3.h
libssl-dev:/usr/include/openssl/hmac.h
pkg-config:/usr/bin/pkg-config
curl:/usr/bin/curl
"
twisted="
python3-twisted:/usr/lib/python3/dist-packages/twisted/spread/pb.py
"
bench="
python3:/usr/bin/python3
gnuplot-nox:/usr/bin/gnuplot
$twisted"
test="
clang:/usr/bin/clang
valgrind:/usr/bin/valgrind
openssl:/usr/bin/openssl
iproute2:/bin/ip
locales:/usr/share/i18n/locales/de_DE
libclang-rt-14-dev:/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a
chromium:/usr/bin/chromium
$twisted
prometheus:/usr/bin/promtool
python3-prometheus-client:/usr/lib/python3/dist-packages/prometheus_client/parser.py
"
fresh="
mmdebstrap:/usr/bin/mmdebstrap
"
need=""
for what in "$@"; do
    case "$what" in
        build|demo) need="$need $build" ;;
        mixed)      need="$need $build $twisted" ;;
        bench)      need="$need $build $bench" ;;
        test)       need="$need $build $test" ;;
        fresh)      need="$need $fresh" ;;
        *) echo "usage: scripts/deps.sh [--quiet] [build|demo|mixed|bench|test|fresh]..." >&2; exit 2 ;;
    esac
done

missing=""
for entry in $need; do
    pkg=${entry%%:*}
    file=${entry#*:}
    case " $missing " in *" $pkg "*) continue ;; esac
    [ -e "$file" ] || missing="$missing $pkg"
done

if [ -z "$missing" ]; then
    [ "$quiet" = 1 ] || echo "deps: everything for '$*' is installed"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: install them with: sudo apt-get install$missing" >&2
    exit 1
fi

mkdir -p "$(dirname "$log")"
: > "$log"

# step TEXT COMMAND...: one line on the terminal, the output in the log.
step() {
    text=$1
    shift
    printf 'deps: %s ... ' "$text"
    t0=$(date +%s)
    echo "== $text: $*" >> "$log"
    if "$@" >> "$log" 2>&1 </dev/null; then
        echo "done ($(( $(date +%s) - t0 )) s)"
    else
        echo "FAILED"
        # apt's own error lines (E: ...), else the end of the log
        { grep '^E:' "$log" || tail -n 15 "$log"; } | sed 's/^/deps:   /' >&2
        echo "deps: the whole output is in $log" >&2
        exit 1
    fi
}

# Waits for a dpkg lock held by another apt run instead of failing on it.
lock="-o DPkg::Lock::Timeout=300"
export DEBIAN_FRONTEND=noninteractive
step "updating the package lists (apt-get update)" apt-get $lock update
step "installing$missing" apt-get $lock install -y --no-install-recommends $missing
