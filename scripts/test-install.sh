#!/bin/sh
# Installs ember into a temporary prefix, then builds examples/hello out of
# tree with nothing but the installed idlc and `pkg-config ember`, and runs it.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

make --no-print-directory B="${B:-build}" install PREFIX=/usr/local DESTDIR="$tmp/root" >/dev/null
prefix="$tmp/root/usr/local"
# The .pc file names the final prefix; point pkg-config at the staged tree.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
export PATH="$prefix/bin:$PATH"

for f in bin/idlc lib/libember.a lib/libember.so include/ember/ember.h lib/pkgconfig/ember.pc; do
    [ -e "$prefix/$f" ] || { echo "test-install: $f was not installed" >&2; exit 1; }
done
soname=$(objdump -p "$prefix/lib/libember.so" | awk '/SONAME/ {print $2}')
[ -n "$soname" ] || { echo "test-install: libember.so has no soname" >&2; exit 1; }

cp examples/hello/hello.idl examples/hello/main.c examples/hello/Makefile "$tmp/"
make --no-print-directory -C "$tmp" OUT="$tmp/out" IDLC=idlc >/dev/null
LD_LIBRARY_PATH="$prefix/lib" "$tmp/out/hello" >/dev/null
echo "test-install: installed tree builds and runs examples/hello (soname $soname)"
