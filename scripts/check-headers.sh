#!/bin/sh
# check-headers.sh CC CFLAGS... — the runtime's private headers keep their
# order (docs/internals.md): each compiles on its own, and includes only
# headers of rooms below its own.
set -u
cd "$(dirname "$0")/.." || exit 1

# Rank of each room; a header may include only lower ranks (base headers:
# ember-internal.h alone).
rank() {
    case $1 in
    ember | buf | metrics | hash | auth | addr | pb | probe) echo 0 ;;
    wire) echo 1 ;;
    ep) echo 2 ;;
    conn) echo 3 ;;
    ref) echo 4 ;;
    call) echo 5 ;;
    handshake | pb-raw | pb-xcode) echo 6 ;;
    *) echo x ;;
    esac
}

fail=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
for h in runtime/src/*-internal.h; do
    room=$(basename "$h" -internal.h)
    r=$(rank "$room")
    if [ "$r" = x ]; then
        echo "check-headers: $h has no room (add it to docs/internals.md and scripts/check-headers.sh)"
        fail=1
        continue
    fi
    grep -q 'Rooms, lowest first' "$h" ||
        { echo "check-headers: $h lacks the order comment"; fail=1; }
    for inc in $(sed -n 's/^#include "\([a-z-]*\)-internal\.h".*/\1/p' "$h"); do
        ri=$(rank "$inc")
        if [ "$ri" = x ] || { [ "$r" = 0 ] && [ "$inc" != ember ]; } ||
            { [ "$r" != 0 ] && [ "$ri" -ge "$r" ]; }; then
            echo "check-headers: $h includes $inc-internal.h, not a room below $room"
            fail=1
        fi
    done
    printf '#include "%s"\n' "$(basename "$h")" >"$tmp/t.c"
    "$@" -Iruntime/src -fsyntax-only "$tmp/t.c" ||
        { echo "check-headers: $h does not compile on its own"; fail=1; }
done
[ $fail = 0 ] && echo "test-headers: every private header compiles alone and includes only lower rooms"
exit $fail
