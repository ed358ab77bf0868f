#!/bin/sh
# tests/netns/run.sh BINDIR [WORKDIR] — the demo cluster over three hosts.
#
# The example game cluster (docs/cluster.md), the real binaries of BINDIR
# (master, db, gate, game, net, bot), spread over three network namespaces
# joined by veth pairs, each server started alone in its host's namespace
# with `ip netns exec NS NAME cluster.json` (the master with -n):
#
#   master host  10.77.1.1 (link A) 10.77.3.1 (link C)   master, db
#   gate host    10.77.1.2 (link A) 10.77.2.1 (link B)   gate, net
#   game host    10.77.2.2 (link B) 10.77.3.2 (link C)   game1, game2
#
#   link A  master <-> gate    link B  gate <-> game    link C  master <-> game
#
# The roots listen on their host's address (master and db on 10.77.1.1, the
# gate on 10.77.1.2, net's clients on 10.77.1.2): the gate reaches the master
# and db over link A, the game nodes reach the gate over link B (a host route
# to 10.77.1.2 via 10.77.2.1) and the master and db over link C (a host route
# to 10.77.1.1 via 10.77.3.1). Then:
#   1. every server registers (the master's /status, polled from the master
#      host, says ready) and bots run their script through net (from the
#      gate host) without an error;
#   2. link B is cut (ip link set ... down on the gate host): bots started
#      right after the cut, whose commands are in flight to a game node, all
#      end with an error reply (5xx), none hangs; the gate loses game1 and
#      game2 within the heartbeat bound (dead_after 6 s, checked < 9 s) while
#      the master and db keep them (link C); the game nodes' link to the
#      gate is down; bots now get 503 at once;
#   3. link B is restored: the game nodes register with the gate again
#      (/status ready) and bots run their script again without an error,
#      finding the players of step 1 in the database;
#   4. POST /stop (from the master host): every server stops in order and
#      every process exits 0.
#
# Needs root and iproute2 with netns support. Where namespaces cannot be
# made it prints "netns: SKIP: <reason>" and exits 0 — never a silent pass.
# Only private addresses inside the namespaces it creates are used; every
# namespace, veth and process it makes is removed on exit, even on failure.
# Server logs stay in WORKDIR (default: a temporary directory, removed).
#
# EMBER_TEST_SLOW (make check-asan sets 3, tests/common/loop.h) stretches
# the time every wait below allows; the bounds the test asserts stay.
set -u

BIN=${1:?usage: run.sh BINDIR [WORKDIR]}
SLOW=${EMBER_TEST_SLOW:-1}
case $SLOW in '' | *[!0-9]* | 0) SLOW=1 ;; esac
case $BIN in /*) ;; *) BIN=$(pwd)/$BIN ;; esac
T0=$(date +%s.%N)

skip() { echo "netns: SKIP: $*"; exit 0; }
say() { echo "netns: $*"; }

[ "$(id -u)" = 0 ] || skip "not root (network namespaces need CAP_SYS_ADMIN)"
command -v ip >/dev/null 2>&1 || skip "no ip command (iproute2)"
command -v curl >/dev/null 2>&1 || skip "no curl (the test talks to the master's admin web)"
for b in master db gate game net bot; do
    [ -x "$BIN/$b" ] || { echo "netns: FAIL: no $BIN/$b (make examples)"; exit 1; }
done

if [ -n "${2:-}" ]; then
    dir=$2
    case $dir in /*) ;; *) dir=$(pwd)/$dir ;; esac
    rm -rf "$dir"
    mkdir -p "$dir"
    keep_dir=1
else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/ember-netns.XXXXXX")
    keep_dir=
fi

tag=em$$
NS_M=${tag}m NS_G=${tag}g NS_X=${tag}x
VA_M=${tag}am VA_G=${tag}ag   # link A: master <-> gate
VB_G=${tag}bg VB_X=${tag}bx   # link B: gate <-> game
VC_M=${tag}cm VC_X=${tag}cx   # link C: master <-> game
M_IP=10.77.1.1 G_IP=10.77.1.2
WEB=http://$M_IP:7080
NET=$G_IP:7010
pids=""
made_ns=""

# Only what we made: our pids, our namespaces, our veths.
cleanup() {
    for p in $pids; do kill -TERM "$p" 2>/dev/null; done
    i=0
    for p in $pids; do
        while kill -0 "$p" 2>/dev/null && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    for ns in $made_ns; do ip netns del "$ns" 2>/dev/null; done
    for v in $VA_M $VB_G $VC_M; do ip link del "$v" 2>/dev/null; done
    [ -n "$keep_dir" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

dump() {
    for f in "$dir"/*.log; do
        [ -f "$f" ] || continue
        echo "---- $(basename "$f") (last lines)"
        tail -n 25 "$f"
    done
}
fail() { echo "netns: FAIL: $*"; dump; exit 1; }

now() { date +%s.%N; }
deadline() { awk -v a="$(now)" -v s="$1" 'BEGIN { printf "%.3f", a + s }'; }
past() { awk -v a="$(now)" -v b="$1" 'BEGIN { exit !(a > b) }'; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# ---- the three hosts -------------------------------------------------------

for ns in $NS_M $NS_G $NS_X; do
    ip netns add "$ns" 2>"$dir/err" || skip "cannot create a network namespace: $(cat "$dir/err")"
    made_ns="$made_ns $ns"
done
ip netns exec "$NS_M" true 2>"$dir/err" || skip "cannot enter a network namespace: $(cat "$dir/err")"
for pair in "$VA_M $VA_G" "$VB_G $VB_X" "$VC_M $VC_X"; do
    set -- $pair
    ip link add "$1" type veth peer name "$2" 2>"$dir/err" ||
        skip "cannot create a veth pair: $(cat "$dir/err")"
done
# Namespaces and veths exist: from here a failing ip command is a failure.
must() { "$@" 2>"$dir/err" || fail "$*: $(cat "$dir/err")"; }
must ip link set "$VA_M" netns "$NS_M"
must ip link set "$VA_G" netns "$NS_G"
must ip link set "$VB_G" netns "$NS_G"
must ip link set "$VB_X" netns "$NS_X"
must ip link set "$VC_M" netns "$NS_M"
must ip link set "$VC_X" netns "$NS_X"
must ip -n "$NS_M" addr add $M_IP/24 dev "$VA_M"
must ip -n "$NS_G" addr add $G_IP/24 dev "$VA_G"
must ip -n "$NS_G" addr add 10.77.2.1/24 dev "$VB_G"
must ip -n "$NS_X" addr add 10.77.2.2/24 dev "$VB_X"
must ip -n "$NS_M" addr add 10.77.3.1/24 dev "$VC_M"
must ip -n "$NS_X" addr add 10.77.3.2/24 dev "$VC_X"
for ns in $NS_M $NS_G $NS_X; do must ip -n "$ns" link set lo up; done
for v in $VA_M $VC_M; do must ip -n "$NS_M" link set "$v" up; done
for v in $VA_G $VB_G; do must ip -n "$NS_G" link set "$v" up; done
for v in $VB_X $VC_X; do must ip -n "$NS_X" link set "$v" up; done
# The game host reaches the gate over link B, the master host over link C.
must ip -n "$NS_X" route add $G_IP/32 via 10.77.2.1
must ip -n "$NS_X" route add $M_IP/32 via 10.77.3.1
say "3 hosts: master $NS_M ($M_IP), gate $NS_G ($G_IP), game $NS_X (10.77.2.2);" \
    "links A master-gate, B gate-game, C master-game"

# ---- the cluster -----------------------------------------------------------

secret=$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')
admin_token=$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')
cat > "$dir/cluster.json" <<JSON
{
  "master": {"roothost": "$M_IP", "rootport": 7000, "webport": 7080},
  "secret": "$secret",
  "admin_token": "$admin_token",
  "db": "$dir/players.sqlite",
  "servers": {
    "db":    {"app": "db",   "host": "$M_IP", "rootport": 7001},
    "gate":  {"app": "gate", "host": "$G_IP", "rootport": 7002, "remoteport": [{"rootname": "db"}]},
    "game1": {"app": "game", "host": "10.77.2.2", "remoteport": [{"rootname": "gate"}, {"rootname": "db"}]},
    "game2": {"app": "game", "host": "10.77.2.2", "remoteport": [{"rootname": "gate"}, {"rootname": "db"}]},
    "net":   {"app": "net",  "host": "$G_IP", "netport": 7010, "remoteport": [{"rootname": "gate"}]}
  }
}
JSON

# start NS NAME PROGRAM ARGS...: PROGRAM runs in NS (ip netns exec execs it:
# the pid is the server's).
start() {
    ns=$1 name=$2
    shift 2
    ip netns exec "$ns" "$@" >"$dir/$name.log" 2>&1 &
    pids="$pids $!"
    eval "pid_$name=\$!"
}
cd "$dir" || fail "cd $dir"
start "$NS_M" master "$BIN/master" -n "$dir/cluster.json"
start "$NS_M" db "$BIN/db" db "$dir/cluster.json"
start "$NS_G" gate "$BIN/gate" gate "$dir/cluster.json"
start "$NS_G" net "$BIN/net" net "$dir/cluster.json"
start "$NS_X" game1 "$BIN/game" game1 "$dir/cluster.json"
start "$NS_X" game2 "$BIN/game" game2 "$dir/cluster.json"

in_m() { ip netns exec "$NS_M" "$@"; }
in_g() { ip netns exec "$NS_G" "$@"; }
status() { in_m curl -sf --max-time 3 "$WEB/status" 2>/dev/null | tr -d '\n' | tr -s ' '; }
# One node's object from /status (one line): "nodes" is a list of objects,
# split here at '{ "name": '.
node_of() {
    printf '%s' "$1" | sed 's/{ *"name": /\n&/g' | grep "^{ *\"name\": \"$2\", \"app\""
}
children_of() {
    node_of "$1" "$2" | grep -o '"children": \[[^]]*\]' | sed 's/"children": //'
}
# link_state STATUS NODE ROOT: the state of NODE's link to ROOT.
link_state() {
    node_of "$1" "$2" | grep -o "\"root\": \"$3\", \"addr\": \"[^\"]*\", \"state\": \"[^\"]*\"" |
        sed 's/.*"state": "//; s/"$//'
}
alive_all() {
    for p in $pids; do
        kill -0 "$p" 2>/dev/null || return 1
    done
}

# poll SECS WHY COMMAND...: until COMMAND succeeds, or fail WHY after SECS
# (times SLOW).
poll() {
    until_t=$(deadline $(($1 * SLOW)))
    why=$2
    shift 2
    until "$@"; do
        past "$until_t" && fail "$why; last /status: ${st:-}"
        sleep 0.1
    done
}
ready() {
    alive_all || fail "a server exited (see the logs)"
    st=$(status)
    printf '%s' "$st" | grep -q '"ready": true'
}

t=$(now)
poll 20 "the cluster was not ready within 20 s" ready
st=$(status)
for n in db gate game1 game2 net; do
    printf '%s' "$st" | grep -q "\"name\": \"$n\", \"app\": \"[a-z]*\", \"registered\": true" ||
        fail "/status: $n is not registered: $st"
done
printf '%s' "$st" | grep -q '"security": { *"secret": true' || fail "/status: no cluster secret"
say "cluster ready in $(since "$t") s over three hosts; gate's children: $(children_of "$st" gate)," \
    "game1's roots: gate $(link_state "$st" game1 gate), db $(link_state "$st" game1 db)," \
    "master $(link_state "$st" game1 master)"

# bots OUT ARGS...: the bots from the gate host against net.
bots() {
    out=$1
    shift
    in_g "$BIN/bot" "$@" "$NET" >"$dir/$out" 2>&1
}
summary() { grep '^[0-9]* bots, ' "$dir/$1"; }

bots bots-1.out -n 6 -r 2 -m 3 -p ns -t 15 || { cat "$dir/bots-1.out"; fail "bots failed before the cut"; }
grep -q ", 0 errors, 0 failed" "$dir/bots-1.out" || { cat "$dir/bots-1.out"; fail "bots had errors before the cut"; }
grep -q "on game1" "$dir/bots-1.out" && grep -q "on game2" "$dir/bots-1.out" ||
    { cat "$dir/bots-1.out"; fail "rooms were not spread over game1 and game2"; }
say "bots across hosts: $(summary bots-1.out); rooms on game1 and game2"

# ---- cut link B (gate <-> game) --------------------------------------------

ip -n "$NS_G" link set "$VB_G" down || fail "cannot take $VB_G down"
t_cut=$(now)
say "link B (gate <-> game) cut"
# Bots whose commands go to a game node over the dead link: each must end
# with an error reply once the loss is detected, none may hang (-t 20).
in_g "$BIN/bot" -n 4 -r 2 -m 2 -p cut -t 20 "$NET" >"$dir/bots-cut.out" 2>&1 &
bots_cut=$!
pids="$pids $bots_cut"

games_lost() {
    st=$(status)
    ch=$(children_of "$st" gate)
    [ -n "$ch" ] || return 1
    case $ch in *game1* | *game2*) return 1 ;; esac
    return 0
}
poll 12 "the gate did not lose game1 and game2 within 12 s of the cut" games_lost
lost_in=$(since "$t_cut")
lt "$lost_in" 9 || fail "the loss took $lost_in s to detect (heartbeat bound: dead after 6 s, < 9 s)"
# Each end detects the loss on its own, within dead_after_ms plus one of its
# own sweeps of the last thing it received (docs/runtime.md, "Liveness"):
# the game nodes see it at about the time the gate did, but may see it later
# (a sweep, a PING the gate sent just before the cut), so they are held to
# the same bound from the cut, not to a time after the gate.
links_lost() {
    st=$(status)
    for n in game1 game2; do
        ls=$(link_state "$st" $n gate)
        [ -n "$ls" ] && [ "$ls" != registered ] || return 1
    done
}
poll 12 "game1 and game2 still registered with the gate 12 s after the cut" links_lost
links_in=$(since "$t_cut")
lt "$links_in" 9 ||
    fail "game1/game2 took $links_in s to lose their link to the gate (dead after 6 s, < 9 s)"
# The /status links_lost saw (one more request could time out under load
# and show no link at all).
for n in game1 game2; do
    printf '%s' "$st" | grep -q "\"name\": \"$n\", \"app\": \"game\", \"registered\": true" ||
        fail "$n left the master too (link C is up): $st"
    ls=$(link_state "$st" $n gate)
    [ -n "$ls" ] && [ "$ls" != registered ] || fail "$n's link to the gate is '$ls' after the cut"
done
for n in game1 game2; do
    grep -q "child $n left: .*heartbeat" "$dir/gate.log" || fail "the gate's log does not show $n lost by heartbeat"
done
say "loss detected in $lost_in s by the gate, in $links_in s by game1 and game2:" \
    "gate's children now $(children_of "$st" gate); game1/game2 still registered with the master" \
    "(link C); game1's link to the gate: $(link_state "$st" game1 gate)"

# The bots started at the cut: every one ends, with an error, none by timeout.
wait_bots() { ! kill -0 "$bots_cut" 2>/dev/null; }
st=
poll 15 "bots started at the cut still running 15 s later (a call hangs)" wait_bots
wait "$bots_cut"
rc=$?
pids=$(echo "$pids" | sed "s/ $bots_cut\$//")
bots_cut_s=$(since "$t_cut")
[ $rc -ne 0 ] || { cat "$dir/bots-cut.out"; fail "bots succeeded although no game node was reachable"; }
grep -q "timed out" "$dir/bots-cut.out" && { cat "$dir/bots-cut.out"; fail "a bot timed out: a call hung"; }
nfail=$(grep -c 'FAILED: .*got 5[0-9][0-9]\|FAILED: .* refused: 5[0-9][0-9]' "$dir/bots-cut.out")
[ "$nfail" -eq 4 ] || { cat "$dir/bots-cut.out"; fail "expected 4 bots ending with a 5xx error, got $nfail"; }
why=$(grep -o 'FAILED: .*' "$dir/bots-cut.out" | head -n 1 | sed 's/FAILED: //')
say "bots in flight at the cut: all 4 ended with an error after $bots_cut_s s, none hung ($why)"

# Now the gate knows: commands for a game node are refused at once.
t=$(now)
bots bots-down.out -n 4 -r 2 -m 2 -p down -t 10 && { cat "$dir/bots-down.out"; fail "bots succeeded with link B down"; }
down_s=$(since "$t")
nfail=$(grep -c 'FAILED: .*got 503\|FAILED: .* refused: 503' "$dir/bots-down.out")
[ "$nfail" -eq 4 ] || { cat "$dir/bots-down.out"; fail "expected 4 bots refused with 503, got $nfail"; }
lt "$down_s" 3 || fail "bots took $down_s s to be refused with link B down"
why=$(grep -o 'FAILED: .*' "$dir/bots-down.out" | head -n 1 | sed 's/FAILED: //')
say "bots after the loss: all 4 refused in $down_s s ($why)"

# ---- restore link B --------------------------------------------------------

ip -n "$NS_G" link set "$VB_G" up || fail "cannot bring $VB_G up"
t=$(now)
poll 15 "the game nodes did not come back within 15 s of the restore" ready
st=$(status)
case $(children_of "$st" gate) in *game1*game2* | *game2*game1*) ;;
*) fail "ready, but the gate's children are $(children_of "$st" gate)" ;; esac
say "link B restored: game1 and game2 registered with the gate again in $(since "$t") s;" \
    "gate's children: $(children_of "$st" gate)"

bots bots-2.out -n 6 -r 2 -m 3 -p ns -t 15 || { cat "$dir/bots-2.out"; fail "bots failed after the restore"; }
grep -q ", 0 errors, 0 failed, 6 of 6 players loaded from the database" "$dir/bots-2.out" ||
    { cat "$dir/bots-2.out"; fail "bots after the restore: errors, or players not loaded"; }
say "bots after the restore: $(summary bots-2.out)"

# ---- stop ------------------------------------------------------------------

t=$(now)
rep=$(in_m curl -sf --max-time 25 -X POST -H "Authorization: Bearer $admin_token" \
    -H 'Content-Type: application/json' --data '{}' "$WEB/stop" | tr -d '\n' | tr -s ' ') ||
    fail "POST /stop failed"
printf '%s' "$rep" | grep -q '"ok": true' || fail "the stop reported a problem: $rep"
for n in net gate game1 game2 db; do
    printf '%s' "$rep" | grep -Eq "\"name\": \"$n\", \"outcome\": \"(OK|ok)\"" ||
        fail "the stop report does not show $n stopped: $rep"
done
order=$(printf '%s' "$rep" | grep -o '"name": "[a-z0-9]*", "outcome"' | sed 's/"name": "//; s/".*//' | tr '\n' ' ' | sed 's/ $//')
for name in master db gate net game1 game2; do
    eval "p=\$pid_$name"
    until_t=$(deadline $((10 * SLOW)))
    while kill -0 "$p" 2>/dev/null; do
        # a zombie is gone: wait reaps it below
        [ "$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$p/stat" 2>/dev/null)" = Z ] && break
        past "$until_t" && fail "$name (pid $p) still running 10 s after POST /stop"
        sleep 0.05
    done
    wait "$p"
    rc=$?
    [ $rc -eq 0 ] || fail "$name (pid $p) exited with $rc"
done
pids=""
say "POST /stop: stopped in order $order in $(since "$t") s; every process exited 0"
say "ok ($(since "$T0") s)"
