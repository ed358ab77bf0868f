#!/bin/sh
# Makes sure the Debian packages ember needs are installed.
#
#   scripts/deps.sh [--quiet] [build|demo|bench|test]
#
# build: libember, idlc and the examples; demo: the same (the demo needs
# nothing more); bench: python3 (idlc10k's input) and gnuplot (bench-plot);
# test, the default: everything `make test` and CI use on top of build
# (clang, valgrind, the libFuzzer runtime, openssl, iproute2, chromium).
# As root it installs what is missing with apt-get (one `apt-get update`
# first); otherwise it names the packages and exits 1. With --quiet it prints
# nothing when all is present.
set -eu

quiet=0
[ "${1:-}" = "--quiet" ] && { quiet=1; shift; }
what=${1:-test}

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
bench="
python3:/usr/bin/python3
gnuplot-nox:/usr/bin/gnuplot
"
test="
clang:/usr/bin/clang
valgrind:/usr/bin/valgrind
openssl:/usr/bin/openssl
iproute2:/bin/ip
libclang-rt-14-dev:/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a
chromium:/usr/bin/chromium
"
case "$what" in
    build|demo) need=$build ;;
    bench)      need="$build $bench" ;;
    test)       need="$build $test" ;;
    *) echo "usage: scripts/deps.sh [--quiet] [build|demo|bench|test]" >&2; exit 2 ;;
esac

missing=""
for entry in $need; do
    pkg=${entry%%:*}
    file=${entry#*:}
    [ -e "$file" ] || missing="$missing $pkg"
done

if [ -z "$missing" ]; then
    [ "$quiet" = 1 ] || echo "deps: everything for '$what' is installed"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: install them with: sudo apt-get install$missing" >&2
    exit 1
fi

echo "deps: installing$missing"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing </dev/null
