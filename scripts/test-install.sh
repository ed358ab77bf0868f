#!/bin/sh
# make install and make uninstall, and the tutorial against an installed
# ember exactly as the README's "The tutorial outside /usr/local" says:
#   1. a tree staged with DESTDIR (PREFIX=/usr/local): every file is there,
#      libember.so has a soname, examples/hello builds with the README's
#      lines (PKG_CONFIG_SYSROOT_DIR, the staged prefix) and runs;
#   2. then a plain PREFIX: its ember.pc names that prefix, not the staged
#      one's; examples/hello builds with the README's two lines and runs;
#      so does examples/hello/Makefile, given the rpath as its header says;
#   3. make uninstall for each: every file install put is gone, include/ember
#      too, a file of someone else's in the same directories stays.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() { echo "test-install: FAIL: $*" >&2; exit 1; }
mk() { make --no-print-directory B="${B:-build}" "$@" >"$tmp/make.log" 2>&1 ||
       { cat "$tmp/make.log" >&2; fail "make $*"; }; }

# The README's block: the ```sh fence after the section's heading.
readme_lines() {
    awk '/^### The tutorial outside \/usr\/local/ { s = 1 }
         s == 1 && /^```sh/ { s = 2; next }
         s == 2 && /^```/ { exit }
         s == 2 { print }' README.md
}
lines=$(readme_lines)
[ "$(printf '%s\n' "$lines" | grep -c .)" = 2 ] ||
    fail "README: no two-line sh block under 'The tutorial outside /usr/local'"
idlc_line=$(grep -m1 '^mkdir -p gen; idlc -o gen hello.idl' README.md | sed 's/ *#.*//')
[ -n "$idlc_line" ] || fail "README: no 'mkdir -p gen; idlc -o gen hello.idl' line (tutorial step 2)"

files="bin/idlc lib/libember.a lib/libember.so lib/libember.so.0 include/ember/ember.h
       lib/pkgconfig/ember.pc share/man/man1/idlc.1"

# hello DIR SETUP: builds examples/hello in DIR with the README's lines,
# after the shell lines SETUP, with nothing of the source tree on any path.
hello() {
    mkdir -p "$1"
    cp examples/hello/hello.idl examples/hello/main.c "$1/"
    ( cd "$1" && env -u PKG_CONFIG_PATH -u PKG_CONFIG_SYSROOT_DIR sh -eu -c \
        "$2
$(printf '%s\n' "$lines" | sed -n 1p)
$idlc_line
$(printf '%s\n' "$lines" | sed -n 2p)
./hello" ) >"$1.log" 2>&1 || { cat "$1.log" >&2; fail "examples/hello in $1 (log above)"; }
    grep -q 'both calls came back' "$1.log" || fail "examples/hello in $1 did not finish"
}

# 1. staged
stage=$tmp/stage
mk install PREFIX=/usr/local DESTDIR="$stage"
for f in $files; do
    [ -e "$stage/usr/local/$f" ] || fail "DESTDIR install: $f was not installed"
done
soname=$(objdump -p "$stage/usr/local/lib/libember.so" | awk '/SONAME/ {print $2}')
[ "$soname" = libember.so.0 ] || fail "libember.so's soname is '$soname'"
grep -qx 'prefix=/usr/local' "$stage/usr/local/lib/pkgconfig/ember.pc" ||
    fail "the staged ember.pc does not name prefix=/usr/local"
lines_staged=$(printf '%s\n' "$lines" | sed "s|\$HOME/ember|$stage/usr/local|g")
lines_home=$lines
lines=$lines_staged
hello "$tmp/hello-staged" "export PKG_CONFIG_SYSROOT_DIR=$stage"

# 2. a plain prefix, after the staged install built ember.pc for /usr/local
home=$tmp/home
mk install PREFIX="$home/ember"
grep -qx "prefix=$home/ember" "$home/ember/lib/pkgconfig/ember.pc" ||
    fail "ember.pc under PREFIX=$home/ember says $(grep '^prefix=' "$home/ember/lib/pkgconfig/ember.pc")"
grep -qx "libdir=$home/ember/lib" "$home/ember/lib/pkgconfig/ember.pc" ||
    fail "ember.pc under PREFIX=$home/ember names another libdir"
lines=$lines_home
hello "$tmp/hello-home" "export HOME=$home"
readelf -d "$tmp/hello-home/hello" | grep -q "NEEDED.*libember.so.0" ||
    fail "examples/hello did not link the installed libember.so"

# examples/hello's own Makefile, as its header says, against the same prefix
mkdir -p "$tmp/hello-make"
cp examples/hello/hello.idl examples/hello/main.c examples/hello/Makefile "$tmp/hello-make/"
( cd "$tmp/hello-make" && env -u PKG_CONFIG_SYSROOT_DIR \
      PATH="$home/ember/bin:$PATH" PKG_CONFIG_PATH="$home/ember/lib/pkgconfig" \
      sh -eu -c "make LDFLAGS=-Wl,-rpath,$home/ember/lib && ./build/hello" ) \
    >"$tmp/hello-make.log" 2>&1 || { cat "$tmp/hello-make.log" >&2; fail "examples/hello/Makefile (log above)"; }
grep -q 'both calls came back' "$tmp/hello-make.log" || fail "examples/hello/Makefile's build/hello did not finish"

# 3. uninstall; a file of someone else's stays
touch "$home/ember/lib/other.a" "$stage/usr/local/bin/other"
mk uninstall PREFIX="$home/ember"
mk uninstall PREFIX=/usr/local DESTDIR="$stage"
for d in "$home/ember" "$stage/usr/local"; do
    left=$(cd "$d" && find . ! -type d ! -name 'other*')
    [ -z "$left" ] || fail "make uninstall left in $d: $left"
    [ ! -e "$d/include/ember" ] || fail "make uninstall left $d/include/ember"
done
[ -e "$home/ember/lib/other.a" ] && [ -e "$stage/usr/local/bin/other" ] ||
    fail "make uninstall removed a file it did not install"

echo "test-install: DESTDIR and PREFIX installs build and run examples/hello as the README says; ember.pc follows PREFIX; uninstall removes exactly what install put (soname $soname)"
