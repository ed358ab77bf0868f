#!/bin/sh
# The example cluster as an end-to-end test: real processes on loopback.
# Starts the cluster with a fresh database, runs a short bot script twice
# (the second run must find every player in the database at the position
# the first run left it), checks /status and the status page, kills a game
# node and runs the bots again (the gate must skip the dead node), stops the
# cluster through POST /stop and checks every process exited. The cluster
# runs with a secret: an impostor with a wrong one is refused meanwhile.
# Races are made certain with SIGSTOP and SIGUSR1, never with sleeps: clients
# that hang up while db has their login or while their enter is in flight,
# and players whose game node dies under them.
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
# The pid of server $1 in /status.
node_pid() {
    curl -sf --max-time 5 "$CL_WEB/status" | cl_flat |
        grep -o "\"name\": \"$1\", \"app\": \"[a-z]*\", \"registered\": true, \"pid\": [0-9]*" |
        sed 's/.*: //'
}
game1_pid=$(node_pid game1)
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
# The same as text, also with more in the query (a cache buster): one line
# per server, one per method that served calls.
for q in 'format=text' 'format=text&_=1' '_=1&format=%74ext'; do
    curl -sf --max-time 5 -D "$dir/text.head" -o "$dir/text.out" "$CL_WEB/status?$q" ||
        fail "GET /status?$q"
    grep -qi '^Content-Type: text/plain' "$dir/text.head" && grep -q '^cluster running' "$dir/text.out" &&
        grep -q '^gate .* children: .*net' "$dir/text.out" &&
        grep -q '^ *gate.Gate.forward  *[1-9][0-9]* calls' "$dir/text.out" ||
        fail "GET /status?$q is not the status as text: $(head -c 300 "$dir/text.out")"
done
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
logged_out() { [ "$(db_logouts)" = $((logouts + $1)) ]; }
cl_poll 10 "clients dropped for a bad frame were not logged out" logged_out 2

# The gate holds 4096 sessions: past them a LOGIN is refused 503 and the
# gate logs it; they are free again once their clients go.
/usr/bin/python3 tests/e2e/client_abuse.py full 127.0.0.1 "${CL_NET#*:}" > "$dir/full.out" 2>&1 ||
    { cat "$dir/full.out"; fail "logins past the gate's sessions"; }
grep -q "SKIP" "$dir/full.out" || grep -q "refused 1 login(s): 4096 sessions, the most the gate holds" "$CL_LOG" ||
    fail "the gate did not log the login it refused at 4096 sessions"

# A player that sends CHATs faster than net's chat_per_s (default 5 a
# second, 10 at once) gets 429 for the excess, which nobody in its room is
# pushed; net logs it.
/usr/bin/python3 tests/e2e/client_abuse.py chatrate 127.0.0.1 "${CL_NET#*:}" 5 10 > "$dir/chatrate.out" 2>&1 ||
    { cat "$dir/chatrate.out"; fail "a player's CHATs over chat_per_s reached its room"; }
grep -q "CHAT(s) refused 429: over chat_per_s (5 a second, chat_burst 10)" "$CL_LOG" ||
    fail "net did not log the CHATs it refused"

# True when the cluster log holds at least $1 lines matching $2.
logged() { [ "$(grep -c "$2" "$CL_LOG")" -ge "$1" ]; }

# Clients that hang up while db has their LOGIN are logged out once db
# answers. db is held with SIGSTOP until the gate has seen both go.
db_pid=$(node_pid db)
[ -n "$db_pid" ] || fail "no pid for db in /status"
logouts=$(db_logouts)
kill -STOP "$db_pid"
cl_bots "$dir/bots-hangup-login.out" -n 2 -L -p hup -t 20
cl_poll 10 "the gate did not see the clients go during their login" \
    logged 2 "went away during its login"
kill -CONT "$db_pid"
cl_poll 10 "clients gone during their login were not logged out" logged_out 2

# Clients that hang up while their ENTER is in flight: once the enter is
# answered the gate leaves the room for them, then logs them out. The game
# nodes are held with SIGSTOP until the gate has seen both go, so the enter
# is answered after the close; then room 1 must be empty again.
game_pids="$game1_pid $(node_pid game2)"
logouts=$(db_logouts)
kill -STOP $game_pids
cl_bots "$dir/bots-hangup-enter.out" -n 2 -r 1 -P -E -p ghost -t 20
cl_poll 10 "the gate did not see the clients go while entering" \
    logged 2 "logs out while entering room 1"
kill -CONT $game_pids
cl_poll 10 "clients gone while entering were not logged out" logged_out 2
cl_bots "$dir/bots-after-hangup.out" -n 1 -r 1 -m 1 -P -p alone -t 20
grep -q "room 1 on game[12] at (0,0), 1 player(s) there" "$dir/bots-after-hangup.out" ||
    { cat "$dir/bots-after-hangup.out"; fail "clients gone while entering stayed in room 1"; }

# A game node dies: the gate skips it and every room goes to the other one.
# Two bots wait in their rooms (one on each node) while game1 is killed;
# then the next command of the one on game1 must get 410.
"$CL_BIN/bot" -n 2 -r 2 -m 2 -P -G game1 -p gone -t 30 "$CL_NET" > "$dir/bots-gone.out" 2>&1 &
gone_bots=$!
CL_OWN_PIDS=$gone_bots
cl_poll 10 "the bots did not pause in their rooms (see $dir/bots-gone.out)" \
    grep -q "all bots paused in their rooms" "$dir/bots-gone.out"
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
kill -USR1 "$gone_bots"
rc=0
wait "$gone_bots" || rc=$?
CL_OWN_PIDS=
[ "$rc" -eq 0 ] || { cat "$dir/bots-gone.out"; fail "bots whose game node died failed"; }
grep -q "^1 bot(s) told with 410 that game1" "$dir/bots-gone.out" ||
    { cat "$dir/bots-gone.out"; fail "no bot in a room on game1 was told 410"; }
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
