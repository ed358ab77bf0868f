#!/bin/sh
# The example cluster as an end-to-end test: real processes on loopback.
# Starts the cluster with a fresh database, runs a short bot script twice
# (the second run must find every player in the database at the position
# the first run left it), checks /status and the status page, kills a game
# node and runs the bots again (the gate must skip the dead node), stops the
# cluster through POST /stop and checks every process exited. The cluster
# runs with a secret: an impostor with a wrong one is refused meanwhile.
set -eu
cd "$(dirname "$0")/../.."
. scripts/cluster-lib.sh

cl_test test-cluster "$B/e2e/cluster"
cluster_start "$dir" "$dir/players.sqlite"
cluster_wait_ready 20

# Every configured server is registered and connected to all its roots.
st=$(curl -sf --max-time 5 "$CL_WEB/status") || fail "GET /status"
for n in db gate game1 game2 net; do
    printf '%s' "$st" | grep -q "\"name\": \"$n\"" || fail "/status does not list $n"
done
printf '%s' "$st" | cl_flat | grep -q '"security": { *"secret": true' || fail "/status: no secret"
game1_pid=$(printf '%s' "$st" | cl_flat |
    grep -o '"name": "game1", "app": "game", "registered": true, "pid": [0-9]*' | sed 's/.*: //')
[ -n "$game1_pid" ] || fail "no pid for game1 in /status"

# An impostor: game1 with a wrong secret. Every root refuses it ("bad
# credentials"), it keeps retrying, and the cluster serves the bots meanwhile.
sed 's/"secret": "[^"]*"/"secret": "not-the-cluster-secret"/' "$dir/cluster.json" > "$dir/impostor.json"
"$CL_BIN/game" game1 "$dir/impostor.json" 2> "$dir/impostor.log" &
impostor=$!
CL_OWN_PIDS=$impostor
cl_poll 10 "the impostor was not refused (see $dir/impostor.log)" \
    grep -q "refused by root: bad credentials" "$dir/impostor.log"

run_bots() {
    cl_bots "$dir/bots-$1.out" -n 6 -r 2 -m 3 -p e2e -t 20
    grep -q ", 0 errors, 0 failed" "$dir/bots-$1.out" || { cat "$dir/bots-$1.out"; fail "bot run $1 had errors"; }
}
run_bots 1
grep -q "0 of 6 players loaded from the database" "$dir/bots-1.out" ||
    fail "first run: players should be new"
# The two rooms were spread over both game nodes.
for n in game1 game2; do
    grep -q "on $n" "$dir/bots-1.out" || { cat "$dir/bots-1.out"; fail "no room on $n"; }
done
run_bots 2
grep -q "6 of 6 players loaded from the database" "$dir/bots-2.out" ||
    { cat "$dir/bots-2.out"; fail "second run: players were not loaded from the database"; }
# e2e01 moved north, east, east in run 1: it must come back at (2,1).
grep -q "loaded from the database, last at (2,1), login #2" "$dir/bots-2.out" ||
    { cat "$dir/bots-2.out"; fail "second run: e2e01 not at its saved position"; }

# The impostor never got in: game1 in /status is still the real one.
st=$(curl -sf --max-time 5 "$CL_WEB/status" | cl_flat) || fail "GET /status"
printf '%s' "$st" | grep -q "\"pid\": $impostor," && fail "the impostor (pid $impostor) is in /status"
printf '%s' "$st" | grep -q "\"name\": \"game1\", \"app\": \"game\", \"registered\": true, \"pid\": $game1_pid," ||
    fail "game1 is no longer pid $game1_pid"
grep -q "bad credentials" "$CL_LOG" || fail "the roots did not log the refusal"
kill -KILL "$impostor"
wait "$impostor" 2>/dev/null || true
CL_OWN_PIDS=

# The counters saw the traffic: the gate forwarded, the game nodes moved.
st=$(curl -sf --max-time 5 "$CL_WEB/status") || fail "GET /status"
printf '%s' "$st" | cl_flat | grep -q '"method": "forward", *"id": 201, *"calls": [1-9]' ||
    fail "/status shows no forward calls on the gate"
printf '%s' "$st" | cl_flat | grep -q '"method": "move", *"id": 602, *"calls": [1-9]' ||
    fail "/status shows no move calls on a game node"
page=$(curl -sf --max-time 5 "$CL_WEB/") || fail "GET /"
printf '%s' "$page" | grep -q '<title>ember cluster</title>' || fail "GET / is not the status page"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$CL_WEB/nope")
[ "$code" = 404 ] || fail "GET /nope answered $code"

# Clients that send a frame too long are dropped by net, which tells the
# gate: their sessions are logged out (db counts the logouts).
db_logouts() {
    curl -sf --max-time 2 "$CL_WEB/status" | cl_flat |
        grep -o '"method": "logout", "id": 304, "calls": [0-9]*' | sed 's/.*: //'
}
logouts=$(db_logouts)
[ -n "$logouts" ] || fail "/status shows no logout calls on db"
cl_bots "$dir/bots-bad-frame.out" -n 2 -X -p bad -t 20
logged_out_both() { [ "$(db_logouts)" = $((logouts + 2)) ]; }
cl_poll 10 "clients dropped for a bad frame were not logged out" logged_out_both

# A game node dies: the gate skips it and every room goes to the other one.
kill -KILL "$game1_pid"
game1_gone() { ! cl_status_has '"name": "game1", "app": "game", "registered": true'; }
cl_poll 10 "game1 still registered 10 s after it was killed" game1_gone
# The gate's own view: game1 is no longer among its children, game2 is.
gate_children() {
    curl -sf --max-time 2 "$CL_WEB/status" | cl_flat | grep -o '"name": "gate", "app": "gate".*' |
        grep -o '"children": \[[^]]*\]' | head -n 1
}
gate_dropped_game1() {
    c=$(gate_children)
    case $c in *'"game2"'*) ;; *) return 1 ;; esac
    case $c in *'"game1"'*) return 1 ;; esac
}
cl_poll 10 "game1 still a child of the gate 10 s after it was killed" gate_dropped_game1
run_bots 3
grep -q "room 2 on game2" "$dir/bots-3.out" || { cat "$dir/bots-3.out"; fail "rooms did not move to game2"; }
if grep -q "on game1" "$dir/bots-3.out"; then cat "$dir/bots-3.out"; fail "a room went to the dead game1"; fi

# The stop reports game1's death; every other server stops cleanly.
cluster_stop 30 expect-failure
rep=$(printf '%s' "$CL_STOP_REPORT" | cl_flat)
printf '%s' "$rep" | grep -q '"name": "game1", "pid": [0-9]*, "running": false, "signal": 9' ||
    fail "the stop report does not show game1 killed: $rep"
for n in db gate game2 net; do
    printf '%s' "$rep" | grep -q "\"name\": \"$n\", \"pid\": [0-9]*, \"running\": false, \"exit\": 0" ||
        fail "$n did not exit cleanly: $rep"
done
echo "test-cluster: ok"
