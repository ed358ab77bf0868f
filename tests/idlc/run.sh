#!/bin/sh
# tests/idlc/run.sh IDLC — idlc front-end tests: the bad-input corpus, the
# good inputs, the command line, and --check-compat cases.
#
#   bad/NAME.idl + NAME.expected   idlc must exit 1 and print exactly these
#                                  "file:line:col: error|note: ..." lines
#                                  (the quoted source and caret lines are not
#                                  compared); bad/inc/ holds imported helpers
#   good/*.idl                     must compile (exit 0, no output on stderr)
#   compat/NAME.idl + NAME.expected  --check-compat base.idl NAME.idl; an empty
#                                  .expected means compatible (exit 0); each
#                                  folder under compat/ is another base.idl
#                                  with its own cases
#
# Set IDLC_VALGRIND=1 to run every idlc invocation under valgrind.
set -u

[ $# -eq 1 ] || { echo "usage: $0 path/to/idlc" >&2; exit 2; }
case $1 in
    /*) IDLC_BIN=$1 ;;
    *) IDLC_BIN=$(pwd)/$1 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/idlc-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

idlc() {
    if [ "${IDLC_VALGRIND:-0}" = 1 ]; then
        valgrind -q --leak-check=full --error-exitcode=99 "$IDLC_BIN" "$@"
    else
        "$IDLC_BIN" "$@"
    fi
}

pass=0
fail=0
ok() { pass=$((pass + 1)); }
not_ok() { fail=$((fail + 1)); echo "FAIL: $*"; }
# check NAME COMMAND...: the command must succeed.
check() {
    name=$1
    shift
    if "$@"; then ok; else not_ok "$name"; fi
}
headers() { grep -E '^[^ ].*: (error|note): ' "$1" || true; }

# ---- bad inputs: exact diagnostics ----
cd "$HERE/bad" || exit 1
for f in *.idl; do
    exp=${f%.idl}.expected
    [ -f "$exp" ] || { not_ok "bad/$f has no $exp"; continue; }
    idlc -o "$TMP" "$f" >/dev/null 2>"$TMP/err"
    rc=$?
    headers "$TMP/err" >"$TMP/got"
    if [ $rc -eq 1 ] && diff -u "$exp" "$TMP/got" >"$TMP/diff"; then
        ok
    else
        not_ok "bad/$f (exit $rc)"
        cat "$TMP/diff"
    fi
done

# ---- good inputs ----
cd "$HERE/good" || exit 1
mkdir -p "$TMP/good"
for f in *.idl sub/*.idl; do
    idlc -I inc -o "$TMP/good" "$f" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ $rc -eq 0 ] && [ ! -s "$TMP/err" ] && [ ! -s "$TMP/out" ]; then
        ok
    else
        not_ok "good/$f (exit $rc)"
        cat "$TMP/err"
    fi
done

# ---- --check-compat ----
# compat/ and each folder under it hold a base.idl and their cases.
for dir in "$HERE/compat" "$HERE"/compat/*/; do
    [ -d "$dir" ] || continue
    cd "$dir" || exit 1
    where=compat${dir#"$HERE/compat"}
    where=${where%/}
    for f in *.idl; do
        [ "$f" = base.idl ] && continue
        exp=${f%.idl}.expected
        [ -f "$exp" ] || { not_ok "$where/$f has no $exp"; continue; }
        idlc --check-compat base.idl "$f" >"$TMP/out" 2>"$TMP/err"
        rc=$?
        headers "$TMP/err" >"$TMP/got"
        want=1
        [ -s "$exp" ] || want=0
        if [ $rc -eq $want ] && diff -u "$exp" "$TMP/got" >"$TMP/diff" && { [ $want = 1 ] || [ ! -s "$TMP/err" ]; }; then
            ok
        else
            not_ok "$where/$f (exit $rc, want $want)"
            cat "$TMP/diff" "$TMP/err"
        fi
    done
done
cd "$HERE/compat" || exit 1
# Comparing a file with itself is always compatible.
check "compat: identical" idlc --check-compat base.idl base.idl

# ---- the command line ----
cd "$HERE/good" || exit 1
G=$HERE/good

# exits: 0 success, 1 input errors, 2 usage errors
expect_exit() {
    want=$1
    name=$2
    shift 2
    idlc "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ $rc -eq "$want" ]; then ok; else not_ok "$name: exit $rc, want $want"; cat "$TMP/err"; fi
}
expect_exit 0 "--help" --help
for opt in -I -o -M -MF --check-compat --help --version; do
    check "--help mentions $opt" grep -q -e " $opt" "$TMP/out"
done
expect_exit 0 "--version" --version
check "--version prints the version" grep -q '^idlc (ember) [0-9]' "$TMP/out"
expect_exit 2 "no arguments"
check "usage error names the problem" grep -q 'no input files' "$TMP/err"
expect_exit 2 "unknown option" --frobnicate game.idl
expect_exit 2 "-o without a value" game.idl -o
expect_exit 2 "-I without a value" game.idl -I
expect_exit 2 "--check-compat with two new files" --check-compat game.idl game.idl all_types.idl
# Two inputs named alike would write the same NAME.h and NAME.c.
mkdir -p "$TMP/a" "$TMP/b"
printf 'module x;\n' >"$TMP/a/x.idl"
printf 'module x;\n' >"$TMP/b/x.idl"
expect_exit 2 "two inputs with one base name" -o "$TMP" "$TMP/a/x.idl" "$TMP/b/x.idl"
check "same base name is explained" grep -q "would both write x.h and x.c" "$TMP/err"
check "same base name writes nothing" test ! -e "$TMP/x.h"
expect_exit 2 "one input twice" -o "$TMP" game.idl ./game.idl
# One file under two names would be generated twice, as two copies of one
# module's C.
mkdir -p "$TMP/ln"
printf 'module lk;\nstruct S { 1: u32 v; }\n' >"$TMP/ln/lk.idl"
ln -s lk.idl "$TMP/ln/other.idl"
expect_exit 2 "one input under two names" -o "$TMP/ln" "$TMP/ln/lk.idl" "$TMP/ln/other.idl"
check "one input under two names is explained" grep -qF "idlc: '$TMP/ln/lk.idl' and '$TMP/ln/other.idl' are one file" "$TMP/err"
check "one input under two names writes nothing" test ! -e "$TMP/ln/other.h"
# Two inputs declaring one module would both declare x_A.
printf 'module x;\nconst i32 A = 1;\n' >"$TMP/a/one.idl"
printf '\nmodule x;\nconst i32 A = 2;\n' >"$TMP/b/two.idl"
expect_exit 1 "two inputs with one module name" -o "$TMP" "$TMP/a/one.idl" "$TMP/b/two.idl"
headers "$TMP/err" >"$TMP/got"
printf '%s\n' "$TMP/b/two.idl:2:8: error: module 'x' is also declared by '$TMP/a/one.idl'; their generated C names would clash" \
    "$TMP/a/one.idl:1:8: note: module 'x' is declared here" >"$TMP/want"
check "one module name in two inputs is explained" diff -u "$TMP/want" "$TMP/got"
check "one module name in two inputs writes nothing" test ! -e "$TMP/one.h"
# Two modules of one run that do not import each other are linked
# together: x's struct S brings x_S_init, so does x_S's constant init.
printf 'module x;\nstruct S { 1: u32 v; }\n' >"$TMP/a/xs.idl"
printf 'module x_S;\nconst u32 init = 1;\n' >"$TMP/b/x_S.idl"
expect_exit 1 "two modules whose C names meet" -o "$TMP" "$TMP/a/xs.idl" "$TMP/b/x_S.idl"
headers "$TMP/err" >"$TMP/got"
printf '%s\n' "$TMP/b/x_S.idl:2:11: error: generated C name 'x_S_init' of constant 'x_S.init' clashes with the init function of struct 'x.S'" \
    "$TMP/a/xs.idl:2:8: note: struct 'x.S' is declared here" >"$TMP/want"
check "two modules whose C names meet are explained" diff -u "$TMP/want" "$TMP/got"
expect_exit 0 "same base name with --check-compat" --check-compat "$TMP/a/x.idl" "$TMP/b/x.idl"
# An input not named .idl writes NAME.h and NAME.c whole: the .c includes
# that header, and header guards differ from a thing.idl's.
mkdir -p "$TMP/txt"
printf 'module thing;\nstruct S { 1: u32 v; }\n' >"$TMP/txt/thing.txt"
expect_exit 0 "an input not named .idl" -o "$TMP/txt" "$TMP/txt/thing.txt"
check "its .c includes its own header" grep -q '^#include "thing.txt.h"$' "$TMP/txt/thing.txt.c"
check "its guard is its own" grep -q '^#ifndef EMBER_GEN_THING_TXT_x7468696e672e747874_H$' "$TMP/txt/thing.txt.h"
# An import that is there but is no file (a device, a folder) says so.
mkdir -p "$TMP/nf/sub.idl"
printf 'module nf;\nimport "/dev/null";\nimport "sub.idl";\n' >"$TMP/nf/nf.idl"
expect_exit 1 "imports that are no file" -o "$TMP/nf" "$TMP/nf/nf.idl"
check "a device is no file" grep -qF "nf.idl:2:8: error: import '/dev/null' is not a regular file" "$TMP/err"
check "a folder is no file" grep -qF "nf.idl:3:8: error: import 'sub.idl' is '$TMP/nf/sub.idl', which is not a regular file" "$TMP/err"
# Guards of names that upper-case alike (a-b, a_b, a.b; A, a) differ: one
# program includes them together.
mkdir -p "$TMP/guard"
printf 'module ab1;\n' >"$TMP/guard/a-b.idl"
printf 'module ab2;\n' >"$TMP/guard/a_b.idl"
printf 'module ab3;\n' >"$TMP/guard/a.b.idl"
printf 'module up1;\n' >"$TMP/guard/A.idl"
printf 'module up2;\n' >"$TMP/guard/a.idl"
expect_exit 0 "names whose guards upper-case alike" -o "$TMP/guard" "$TMP/guard/a-b.idl" \
    "$TMP/guard/a_b.idl" "$TMP/guard/a.b.idl" "$TMP/guard/A.idl" "$TMP/guard/a.idl"
check "a plain name's guard is its name upper-cased" \
    grep -q '^#ifndef EMBER_GEN_A_B_H$' "$TMP/guard/a_b.h"
check "five headers, five guards" sh -c \
    "cat '$TMP'/guard/*.h | grep '^#ifndef EMBER_GEN_' | sort -u | wc -l | grep -qx 5"
# NAME.h is named in #include "NAME.h": a file whose name cannot be
# written there is refused, as an input and as an import, before anything
# is written.
mkdir -p "$TMP/q"
printf 'module q1;\n' >"$TMP/q/a\"b.idl"
printf 'module q2;\n' >"$TMP/q/??=x.idl"
printf 'module q3;\nimport "a\\"b.idl";\n' >"$TMP/q/imp.idl"
expect_exit 1 "an input whose header cannot be #included" -o "$TMP/q" "$TMP/q/a\"b.idl"
check "its name is explained" grep -q "^idlc: error: '$TMP/q/a\"b.idl': the generated header's name cannot be written in an #include" "$TMP/err"
check "nothing is written for it" test ! -e "$TMP/q/a\"b.h"
expect_exit 1 "a trigraph in an input's name" -o "$TMP/q" "$TMP/q/??=x.idl"
expect_exit 1 "an import whose header cannot be #included" -o "$TMP/q" "$TMP/q/imp.idl"
check "the import is reported at the import" grep -q "^$TMP/q/imp.idl:2:8: error: the header of '$TMP/q/a\"b.idl' cannot be named in an #include" "$TMP/err"
check "nothing is written for the importer" test ! -e "$TMP/q/imp.h"
# Two imports with one header name (x/c.idl, y/c.idl): the generated code
# would #include "c.h" twice and get one of them.
mkdir -p "$TMP/hn/x" "$TMP/hn/y"
printf 'module cx;\nstruct P { 1: i32 a; }\n' >"$TMP/hn/x/c.idl"
printf 'module cy;\nstruct Q { 1: i32 b; }\n' >"$TMP/hn/y/c.idl"
printf 'module top;\nimport "x/c.idl";\nimport "y/c.idl";\nstruct T { 1: cx.P p; 2: cy.Q q; }\n' >"$TMP/hn/top.idl"
expect_exit 1 "two imports with one header name" -o "$TMP/hn" "$TMP/hn/top.idl"
headers "$TMP/err" >"$TMP/got"
printf '%s\n' "$TMP/hn/y/c.idl:1:8: error: the header of '$TMP/hn/y/c.idl' is 'c.h', as is that of '$TMP/hn/x/c.idl': an #include names a header alone, so the code of one run cannot include both; rename one file" \
    "$TMP/hn/x/c.idl:1:8: note: module 'cx' of '$TMP/hn/x/c.idl' is here" >"$TMP/want"
check "two imports with one header name are explained" diff -u "$TMP/want" "$TMP/got"
check "two imports with one header name write nothing" test ! -e "$TMP/hn/top.h"
expect_exit 1 "missing input file" -o "$TMP" does-not-exist.idl
check "missing input is reported" grep -q "idlc: error: cannot read 'does-not-exist.idl'" "$TMP/err"
expect_exit 1 "a directory as input" -o "$TMP" inc
# A FIFO nobody writes to is no file: refused at once, not waited on.
mkfifo "$TMP/fifo.idl"
timeout $((10 * ${EMBER_TEST_SLOW:-1})) "$IDLC_BIN" -o "$TMP" "$TMP/fifo.idl" >"$TMP/out" 2>"$TMP/err"
check "a FIFO as input is refused" test $? -eq 1
check "a FIFO as input is no regular file" grep -qF "idlc: error: cannot read '$TMP/fifo.idl': not a regular file" "$TMP/err"
expect_exit 1 "import not found without -I" -o "$TMP" game.idl
check "missing import is reported at the import" \
    grep -q "^game.idl:3:8: error: cannot find import 'common.idl' (looked in '.'; -I adds a folder)" "$TMP/err"
expect_exit 1 "import not found in -I folders" -o "$TMP" -I "$TMP/a" -I "$TMP/b" game.idl
check "missing import says where it looked" \
    grep -q "^game.idl:3:8: error: cannot find import 'common.idl' (looked in '.', '$TMP/a', '$TMP/b')" "$TMP/err"
expect_exit 1 "bad input" -o "$TMP" "$HERE/bad/dup_decl.idl"

# The quoted line and the caret under the whole token.
cat >"$TMP/caret.idl" <<'IDL'
module caret;
struct A {
	1: Unknwn x;
}
IDL
idlc -o "$TMP" "$TMP/caret.idl" 2>"$TMP/err"
printf '%s\n' "$TMP/caret.idl:3:5: error: unknown type 'Unknwn'" \
    " 	1: Unknwn x;" " 	   ^~~~~~" >"$TMP/want"
check "caret output" diff -u "$TMP/want" "$TMP/err"

# Outputs land in -o DIR, named after the input file.
rm -rf "$TMP/o"
mkdir "$TMP/o"
expect_exit 0 "generate" -I inc -o "$TMP/o" game.idl all_types.idl
check "game.h written" test -s "$TMP/o/game.h"
check "game.c written" test -s "$TMP/o/game.c"
check "all_types.h written" test -s "$TMP/o/all_types.h"
check "imported common.h not generated" test ! -e "$TMP/o/common.h"
check "no temporary files left" sh -c "! ls '$TMP/o' | grep -q tmp"
# Unchanged outputs are not rewritten (make sees no new timestamp)...
touch -d '2001-01-01 00:00:00' "$TMP/o/game.h" "$TMP/o/game.c"
expect_exit 0 "regenerate" -I inc -o "$TMP/o" game.idl
check "unchanged game.h not rewritten" sh -c "ls -l --time-style=+%Y '$TMP/o/game.h' | grep -q ' 2001 '"
check "unchanged game.c not rewritten" sh -c "ls -l --time-style=+%Y '$TMP/o/game.c' | grep -q ' 2001 '"
# ...but a stale one is.
echo stale >"$TMP/o/game.h"
touch -d '2001-01-01 00:00:00' "$TMP/o/game.h"
expect_exit 0 "regenerate stale" -I inc -o "$TMP/o" game.idl
check "stale game.h rewritten" sh -c "! grep -qx stale '$TMP/o/game.h'"
# ...and so is one that only starts with the right bytes.
cp "$TMP/o/game.c" "$TMP/game.c.want"
echo extra >>"$TMP/o/game.c"
expect_exit 0 "regenerate a longer stale file" -I inc -o "$TMP/o" game.idl
check "longer stale game.c rewritten" cmp -s "$TMP/game.c.want" "$TMP/o/game.c"
check "no temporary files left after regenerating" sh -c "! ls '$TMP/o' | grep -q tmp"
expect_exit 1 "output folder missing" -I inc -o "$TMP/nowhere" game.idl

# -M prints dependencies and generates nothing.
rm -rf "$TMP/m"
mkdir "$TMP/m"
idlc -M -I inc -o "$TMP/m" game.idl >"$TMP/deps" 2>"$TMP/err"
check "-M exits 0" test $? -eq 0
printf '%s\n' "$TMP/m/game.h $TMP/m/game.c: game.idl \\" "  inc/common.idl" "" "inc/common.idl:" >"$TMP/want"
check "-M output" diff -u "$TMP/want" "$TMP/deps"
check "-M generates nothing" test ! -e "$TMP/m/game.h"
# A relative import and a diamond: each file listed once.
idlc -M sub/diamond.idl >"$TMP/deps" 2>"$TMP/err"
printf '%s\n' "diamond.h diamond.c: sub/diamond.idl \\" "  sub/sibling.idl \\" "  sub/uses_sibling.idl" \
    "" "sub/sibling.idl:" "" "sub/uses_sibling.idl:" >"$TMP/want"
check "-M diamond output" diff -u "$TMP/want" "$TMP/deps"
# -MF writes the rule to a file and generates the code.
idlc -MF "$TMP/m/game.d" -I inc -o "$TMP/m" game.idl >"$TMP/out" 2>"$TMP/err"
check "-MF exits 0" test $? -eq 0
printf '%s\n' "$TMP/m/game.h $TMP/m/game.c: game.idl \\" "  inc/common.idl" "" "inc/common.idl:" >"$TMP/want"
check "-MF file" diff -u "$TMP/want" "$TMP/m/game.d"
check "-MF prints nothing" test ! -s "$TMP/out"
check "-MF also generates" test -s "$TMP/m/game.h"
idlc -M -MF "$TMP/m/both.d" -I inc -o "$TMP/m" game.idl >"$TMP/out" 2>"$TMP/err"
check "-M -MF writes the file" diff -u "$TMP/want" "$TMP/m/both.d"

# -M escapes file names as make reads them: ' ', '#', ':' with a '\'
# (and the backslashes before them doubled), '$' as "$$", any other '\'
# as is. A newline, or a '\' ending a name, cannot be named: refused.
mkdir -p "$TMP/mk"
printf 'module mk1;\nimport "a:b.idl";\nimport "s p#$.idl";\nimport "bk\\\\x.idl";\nimport "t\\\\ z.idl";\n' >"$TMP/mk/m:1.idl"
for n in 'a:b' 's p#$' 'bk\x' 't\ z'; do printf 'module mk%s;\n' "$(printf %s "$n" | od -An -tx1 | tr -d ' \n')" >"$TMP/mk/$n.idl"; done
(cd "$TMP/mk" && "$IDLC_BIN" -M m:1.idl) >"$TMP/deps" 2>"$TMP/err"
check "-M of names make needs escaped exits 0" test $? -eq 0
printf '%s\n' 'm\:1.h m\:1.c: m\:1.idl \' '  a\:b.idl \' '  s\ p\#$$.idl \' '  bk\x.idl \' '  t\\\ z.idl' \
    '' 'a\:b.idl:' '' 's\ p\#$$.idl:' '' 'bk\x.idl:' '' 't\\\ z.idl:' >"$TMP/want"
check "-M escapes names as make reads them" diff -u "$TMP/want" "$TMP/deps"
printf 'module nl;\n' >"$TMP/mk/n
l.idl"
printf 'module bs;\n' >"$TMP/mk/bs\\"
printf 'module mk2;\nimport "bs\\\\";\n' >"$TMP/mk/mk2.idl"
for f in "n
l.idl" mk2.idl; do
    (cd "$TMP/mk" && "$IDLC_BIN" -MF "$TMP/mk/out.d" "$f") >"$TMP/out" 2>"$TMP/err"
    check "-MF refuses a name make cannot read ($f)" test $? -eq 1
    check "-MF explains a name make cannot read ($f)" grep -q "in a make rule (-M, -MF): make cannot read a file name with a newline or ending in a backslash" "$TMP/err"
    check "-MF writes nothing for a name make cannot read ($f)" test ! -e "$TMP/mk/out.d"
done
check "-MF generates nothing for a name make cannot read" test ! -e "$TMP/mk/mk2.h"

# A relative import resolves against the importing file's folder, from
# anywhere; -I folders are searched in order.
(cd / && "$IDLC_BIN" -o "$TMP" "$G/sub/uses_sibling.idl") 2>"$TMP/err"
check "relative import from another cwd" test $? -eq 0
mkdir -p "$TMP/inc1" "$TMP/inc2"
printf 'module common;\nstruct Vec2 { 1: f32 x; }\nerror Denied {}\nservice Clock { u64 now() = 9001; }\n' >"$TMP/inc1/common.idl"
printf 'module broken\n' >"$TMP/inc2/common.idl"
expect_exit 0 "-I order: first folder wins" -I "$TMP/inc1" -I "$TMP/inc2" -o "$TMP" game.idl
expect_exit 1 "-I order: broken first" -I "$TMP/inc2" -I "$TMP/inc1" -o "$TMP" game.idl

# Only the generated names of a module are renamed: a field that merely
# starts with the module's name keeps it (player_id), one that is a
# generated name gets a trailing _ (player_Pos, player_list_Pos).
mkdir -p "$TMP/pfx"
printf 'module player;\nstruct Pos { 1: i32 x; }\nstruct P { 1: u64 player_id; 2: i32 player_Pos; 3: i32 player_list_Pos; 4: i32 player_Posx; }\nservice S { void f(1: i32 delta_t, 2: i32 uint8_t) = 1; }\n' >"$TMP/pfx/player.idl"
expect_exit 0 "field names starting with the module's name" -o "$TMP/pfx" "$TMP/pfx/player.idl"
check "player_id keeps its name" grep -q 'uint64_t player_id;' "$TMP/pfx/player.h"
check "player_Posx keeps its name" grep -q 'int32_t player_Posx;' "$TMP/pfx/player.h"
check "player_Pos is renamed" grep -q 'int32_t player_Pos_;' "$TMP/pfx/player.h"
check "player_list_Pos is renamed" grep -q 'int32_t player_list_Pos_;' "$TMP/pfx/player.h"
check "a parameter delta_t keeps its name" grep -q 'int32_t delta_t,' "$TMP/pfx/player.h"
check "a parameter uint8_t is renamed" grep -q 'int32_t uint8_t_' "$TMP/pfx/player.h"

# Hostile input: no crash, no hang, a clean exit 1.
awk 'BEGIN { printf "module deep; struct S { 1: "; for (i = 0; i < 100000; i++) printf "list<"; printf "i32"; for (i = 0; i < 100000; i++) printf ">"; print " x; }" }' >"$TMP/deep.idl"
expect_exit 1 "100000 nested lists" -o "$TMP" "$TMP/deep.idl"
check "deep nesting reported" grep -q "nested too deeply" "$TMP/err"
awk 'BEGIN { printf "module deep; struct S { 1: "; for (i = 0; i < 40; i++) printf "map<i32, "; printf "i32"; for (i = 0; i < 40; i++) printf ">"; print " x; }" }' >"$TMP/deep2.idl"
expect_exit 1 "40 nested maps" -o "$TMP" "$TMP/deep2.idl"
check "type depth limit reported" grep -q "type nested too deeply (the limit is 32 levels)" "$TMP/err"
printf 'module n;\000struct A { 1: i32 x; }\000\n' >"$TMP/nul.idl"
expect_exit 1 "NUL bytes" -o "$TMP" "$TMP/nul.idl"
: >"$TMP/empty.idl"
expect_exit 1 "empty file" -o "$TMP" "$TMP/empty.idl"
check "empty file reported at 1:1" grep -q "^$TMP/empty.idl:1:1: error: expected 'module' at end of input" "$TMP/err"
for i in 1 2 3; do
    head -c 4096 /dev/urandom >"$TMP/random.idl"
    expect_exit 1 "random bytes ($i)" -o "$TMP" "$TMP/random.idl"
done
# --check-compat finds fields, parameters and enumerators by binary search:
# 100,000 of each take about a second, not minutes.
awk 'BEGIN { print "module wide;"; printf "struct S {"; for (i = 1; i <= 100000; i++) printf " %d: u32 x%d;", i, i; print " }";
             printf "enum E {"; for (i = 1; i <= 100000; i++) printf " e%d = %d,", i, -i; print " }";
             printf "service V { void f("; for (i = 1; i <= 100000; i++) printf "%s%d: u32 p%d", (i > 1 ? ", " : ""), i, i; print ") = 1; }" }' >"$TMP/wide.idl"
check "--check-compat of 100000 fields, enumerators and parameters" \
    timeout $((20 * ${EMBER_TEST_SLOW:-1})) "$IDLC_BIN" --check-compat "$TMP/wide.idl" "$TMP/wide.idl"
# Every error on one long line costs little: 200,000 of them on a 1.6 MB
# line take a fraction of a second, not minutes.
awk 'BEGIN { print "module many;"; for (i = 0; i < 200000; i++) printf "@pb(\"x\")"; print "service S {}" }' >"$TMP/many.idl"
timeout $((10 * ${EMBER_TEST_SLOW:-1})) "$IDLC_BIN" -o "$TMP" "$TMP/many.idl" >/dev/null 2>"$TMP/err"
check "200000 errors on one line exit 1 in time" test $? -eq 1
check "200000 errors on one line are all reported" test "$(grep -c "^$TMP/many.idl:2:[0-9]*: error: expected 'service' before '@'" "$TMP/err")" -eq 199999
awk 'BEGIN { print "module big;"; for (i = 1; i <= 3000; i++) printf "struct S%d { 1: S%d next; }\n", i, i + 1; print "struct S3001 { 1: i32 end; }" }' >"$TMP/chain.idl"
expect_exit 0 "a 3000-struct by-value chain" -o "$TMP" "$TMP/chain.idl"
awk 'BEGIN { print "module ring;"; for (i = 1; i <= 3000; i++) printf "struct S%d { 1: S%d next; }\n", i, i % 3000 + 1 }' >"$TMP/ring.idl"
expect_exit 1 "a 3000-struct by-value ring" -o "$TMP" "$TMP/ring.idl"

# A chain of 20,000 imports, each module's struct holding the next one's:
# every module is checked against the names of all it includes, which
# costs its own names, not all of theirs (it took 35 s and gigabytes).
mkdir -p "$TMP/chain"
awk -v d="$TMP/chain" 'BEGIN { n = 20000; for (i = 0; i < n; i++) { f = d "/a" i ".idl";
    if (i < n - 1) printf "module a%d;\nimport \"a%d.idl\";\nstruct S { 1: a%d.S x; }\n", i, i + 1, i + 1 > f;
    else printf "module a%d;\nstruct S { 1: i32 x; }\n", i > f; close(f) } }'
timeout $((10 * ${EMBER_TEST_SLOW:-1})) "$IDLC_BIN" -o "$TMP/chain" "$TMP/chain/a0.idl" >"$TMP/out" 2>"$TMP/err"
check "a chain of 20000 imports in time" test $? -eq 0
check "a chain of 20000 imports generates its input" test -s "$TMP/chain/a0.h"
# Loading it, and listing it for -M, takes no C stack per import: it
# passes in 1 MiB (under ASan in 8 MiB, where each level costs more).
(ulimit -s 1024 && exec "$IDLC_BIN" -o "$TMP/chain" "$TMP/chain/a0.idl") >"$TMP/out" 2>"$TMP/err"
check "a chain of 20000 imports in 1 MiB of stack" test $? -eq 0
(ulimit -s 1024 && exec "$IDLC_BIN" -M -o "$TMP/chain" "$TMP/chain/a0.idl") >"$TMP/deps" 2>"$TMP/err"
check "-M of a chain of 20000 imports in 1 MiB of stack" test $? -eq 0
check "-M lists the 19999 imports of the chain" test "$(grep -c '^  ' "$TMP/deps")" -eq 19999
# Import cycles are found on the whole import graph: every cycle once, each
# from the file whose path sorts first, whatever the order of the inputs
# (x -> y -> z -> x and y <-> z; "z.idl x.idl" missed y <-> z).
mkdir -p "$TMP/cyc"
printf 'module x;\nimport "y.idl";\n' >"$TMP/cyc/x.idl"
printf 'module y;\nimport "z.idl";\n' >"$TMP/cyc/y.idl"
printf 'module z;\nimport "x.idl";\nimport "y.idl";\n' >"$TMP/cyc/z.idl"
printf '%s\n' "z.idl:2:8: error: import cycle: x.idl -> y.idl -> z.idl -> x.idl" \
    "z.idl:3:8: error: import cycle: y.idl -> z.idl -> y.idl" >"$TMP/want"
for order in "x.idl" "z.idl x.idl" "y.idl" "y.idl z.idl x.idl"; do
    # shellcheck disable=SC2086 # the order is a list of inputs
    (cd "$TMP/cyc" && "$IDLC_BIN" -o "$TMP/cyc" $order) >"$TMP/out" 2>"$TMP/err"
    check "import cycles of '$order' exit 1" test $? -eq 1
    headers "$TMP/err" >"$TMP/got"
    check "import cycles of '$order' are all reported, once" diff -u "$TMP/want" "$TMP/got"
done
# Eight files all importing each other hold thousands of cycles: the first
# 100 are listed, and the rest said to be there.
mkdir -p "$TMP/k8"
for i in 1 2 3 4 5 6 7 8; do
    { printf 'module k%d;\n' $i; for j in 1 2 3 4 5 6 7 8; do [ $j = $i ] || printf 'import "k%d.idl";\n' $j; done; } >"$TMP/k8/k$i.idl"
done
timeout $((10 * ${EMBER_TEST_SLOW:-1})) "$IDLC_BIN" -o "$TMP/k8" "$TMP/k8/k1.idl" >"$TMP/out" 2>"$TMP/err"
check "eight files importing each other exit 1 in time" test $? -eq 1
check "100 of their import cycles are listed" test "$(grep -c ': error: import cycle: ' "$TMP/err")" -eq 100
check "the other cycles are said to be there" grep -qx 'idlc: note: more import cycles are not listed (100 are)' "$TMP/err"
# A ring of 20000 imports is one cycle, found in time and in 1 MiB of stack.
mkdir -p "$TMP/ring"
awk -v d="$TMP/ring" 'BEGIN { n = 20000; for (i = 0; i < n; i++) { f = d "/r" i ".idl";
    printf "module r%d;\nimport \"r%d.idl\";\n", i, (i + 1) % n > f; close(f) } }'
(ulimit -s 1024 && exec timeout $((10 * ${EMBER_TEST_SLOW:-1})) "$IDLC_BIN" -o "$TMP/ring" "$TMP/ring/r0.idl") >"$TMP/out" 2>"$TMP/err"
check "a ring of 20000 imports exits 1 in time" test $? -eq 1
check "a ring of 20000 imports is one cycle" test "$(grep -c ": error: import cycle: $TMP/ring/r0.idl -> $TMP/ring/r1.idl -> " "$TMP/err")" -eq 1
# Two imports whose names meet are reported once, in a module that
# includes both.
mkdir -p "$TMP/two"
printf 'module p_q;\nstruct S { 1: u32 a; }\n' >"$TMP/two/x.idl"
printf 'module p;\nstruct q_S { 1: u32 a; }\n' >"$TMP/two/y.idl"
printf 'module m;\nimport "x.idl";\nimport "y.idl";\n' >"$TMP/two/m.idl"
expect_exit 1 "two imports whose C names meet" -o "$TMP/two" "$TMP/two/m.idl"
headers "$TMP/err" >"$TMP/got"
printf '%s\n' "$TMP/two/y.idl:2:8: error: generated C name 'p_q_S' of struct 'p.q_S' clashes with struct 'p_q.S'" \
    "$TMP/two/x.idl:2:8: note: struct 'p_q.S' is declared here" >"$TMP/want"
check "two imports whose C names meet are explained" diff -u "$TMP/want" "$TMP/got"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
