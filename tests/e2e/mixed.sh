#!/bin/sh
# The mixed cluster end to end (docs/cluster.md, "A mixed cluster"): game2
# is the Twisted node examples/pygame/game.py, registered over Perspective
# Broker with master, gate and db (their "pbport"s). Bots play through both
# game nodes; then the C node game1 is killed and the bots play again, so
# every command goes through Python: the refused move (a Python Refused
# exception the client must get as client.Refused 404), positions loaded
# from db and every move saved by Python. After the stop the database must
# hold each bot's last acknowledged position, and the Python node's own
# counters (its Admin.status and the line it prints at exit) must show
# that it served those moves. Commands too large are refused 413 as by a C
# node (client_abuse.py sizes: the Python node pushed a chat of any size).
# Last, game2 is held (SIGSTOP) until the gate
# drops it, with two players in a room on it, and continued: when it is
# back their ENTERs must go through (tests/e2e/client_abuse.py relink: the
# Python node forgot the players the gate took out of their rooms).
set -eu
cd "$(dirname "$0")/../.."
. scripts/cluster-lib.sh

/usr/bin/python3 -c 'import twisted.spread.pb' 2>/dev/null ||
    { echo "test-mixed: FAIL: python3-twisted is missing (scripts/deps.sh test)" >&2; exit 1; }
[ -x "$CL_BIN/pygame" ] || { echo "test-mixed: FAIL: $CL_BIN/pygame missing: make examples" >&2; exit 1; }

cl_test test-mixed "$B/e2e/mixed"
CL_MIXED=1
cluster_start "$dir" "$dir/players.sqlite"
cluster_wait_ready 20

st=$(curl -sf --max-time 5 "$CL_WEB/status" | cl_flat) || fail "GET /status"
printf '%s' "$st" | grep -q '"name": "game2", "app": "pygame", "registered": true' ||
    fail "/status does not show game2 (pygame) registered: $st"
grep -q 'child "game2" (id [0-9]*) registered from .* (Perspective Broker)' "$CL_LOG" ||
    fail "no root logged game2's registration over Perspective Broker"
for root in master gate db; do
    grep -q "^\[game2\] registered with $root on 127.0.0.1:" "$CL_LOG" ||
        fail "game2 did not register with $root"
done
game1_pid=$(cl_pid game1)
game2_pid=$(cl_pid game2)
[ -n "$game1_pid" ] && [ -n "$game2_pid" ] || fail "no pids for game1/game2 in /status"

# The Python node's move count, from its own Admin.status (via the master).
py_moves() {
    curl -sf --max-time 5 "$CL_WEB/status" | cl_flat | grep -o '"name": "game2", "app": "pygame".*' |
        grep -o '"method": "move", "id": 602, "calls": [0-9]*' | head -n 1 | sed 's/.*: //'
}

run_bots() {
    cl_bots "$dir/bots-$1.out" -n 6 -r 2 -m 3 -p mix -t 20 -R "$dir/bots-$1.rec"
    grep -q ", 0 errors, 0 failed" "$dir/bots-$1.out" || { cat "$dir/bots-$1.out"; fail "bot run $1 had errors"; }
}

# Run 1: the rooms spread over the C node and the Python node.
run_bots 1
grep -q "0 of 6 players loaded from the database" "$dir/bots-1.out" || fail "run 1: players should be new"
for n in game1 game2; do
    grep -q "on $n" "$dir/bots-1.out" || { cat "$dir/bots-1.out"; fail "run 1: no room on $n"; }
done
moves1=$(py_moves)
[ -n "$moves1" ] && [ "$moves1" -ge 3 ] || fail "run 1: game2 reports ${moves1:-no} moves served"

# Run 2: game1 dies, everything goes through Python.
kill -KILL "$game1_pid"
game1_gone() { ! cl_status_has '"name": "game1", "app": "game", "registered": true'; }
cl_poll 10 "game1 still registered 10 s after it was killed" game1_gone
gate_has_only_game2() {
    c=$(curl -sf --max-time 2 "$CL_WEB/status" | cl_flat | grep -o '"name": "gate", "app": "gate".*' |
        grep -o '"children": \[[^]]*\]' | head -n 1)
    case $c in *'"game2"'*) ;; *) return 1 ;; esac
    case $c in *'"game1"'*) return 1 ;; esac
}
cl_poll 10 "game1 still a child of the gate 10 s after it was killed" gate_has_only_game2
run_bots 2
grep -q "6 of 6 players loaded from the database" "$dir/bots-2.out" ||
    { cat "$dir/bots-2.out"; fail "run 2: players were not loaded from the database"; }
grep -q "on game1" "$dir/bots-2.out" && { cat "$dir/bots-2.out"; fail "run 2: a room on the dead game1"; }
grep -q "on game2" "$dir/bots-2.out" || { cat "$dir/bots-2.out"; fail "run 2: no room on game2"; }
# Every bot's move before entering (refused with 404) and its 3 moves.
moves2=$(py_moves)
[ -n "$moves2" ] && [ "$moves2" -ge $((moves1 + 24)) ] ||
    fail "run 2: game2 reports $moves2 moves served, $moves1 before: expected 24 more"
failed2=$(curl -sf --max-time 5 "$CL_WEB/status" | cl_flat | grep -o '"name": "game2", "app": "pygame".*' |
    grep -o '"method": "move", "id": 602, "calls": [0-9]*, "failures": [0-9]*' | head -n 1 | sed 's/.*: //')
[ "${failed2:-0}" -ge 6 ] || fail "run 2: game2 refused ${failed2:-no} moves, expected the 6 before entering"

# Sizes as a C game node has them: a chat whose push would pass 4 KiB is
# refused 413 by the Python node too (it pushed it).
/usr/bin/python3 tests/e2e/client_abuse.py sizes 127.0.0.1 "${CL_NET#*:}" > "$dir/sizes.out" 2>&1 ||
    { cat "$dir/sizes.out"; fail "game2 in Python does not bound commands as a C game node does"; }

# game2 loses its links and comes back.
/usr/bin/python3 tests/e2e/client_abuse.py relink 127.0.0.1 "${CL_NET#*:}" game2 "$game2_pid" "$CL_LOG" \
    > "$dir/relink.out" 2>&1 ||
    { cat "$dir/relink.out"; fail "game2 kept the players the gate took out of their rooms"; }
grep -q "^\[game2\] link to the gate lost: 2 player(s) out of their rooms" "$CL_LOG" ||
    fail "game2 did not log the players it forgot"
relinked() {
    for root in master gate db; do
        [ "$(grep -c "^\[game2\] registered with $root on 127.0.0.1:" "$CL_LOG")" -ge 2 ] || return 1
    done
}
cl_poll 20 "game2 did not register again with master, gate and db" relinked

cluster_stop 30 expect-failure
rep=$(printf '%s' "$CL_STOP_REPORT" | cl_flat)
for n in db gate game2 net; do
    printf '%s' "$rep" | grep -q "\"name\": \"$n\", \"pid\": [0-9]*, \"running\": false, \"exit\": 0" ||
        fail "$n did not exit cleanly: $rep"
done
# The Python node's count at exit, and the positions it saved.
served=$(sed -n 's/^\[game2\] stopped; served .*move=\([0-9]*\).*/\1/p' "$CL_LOG")
[ -n "$served" ] && [ "$served" -ge "$moves2" ] || fail "game2 printed ${served:-no} moves served at exit"
cl_check_positions "$dir/bots-2.rec" "$dir/players.sqlite"
moved=$(cl_db_players "$dir/players.sqlite" | awk -F'|' '$1 ~ /^mix/ && ($2 != 0 || $3 != 0)' | wc -l)
[ "$moved" -ge 1 ] || fail "no player left the origin in the database"
echo "test-mixed: ok (game2 in Python served $served moves)"
