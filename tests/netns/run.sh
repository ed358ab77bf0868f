#!/bin/sh
# tests/netns/run.sh PEER — an ember cluster over three network namespaces.
#
#   master ns (10.77.1.1)  root "master"                       :7101
#   gate ns   (10.77.1.2 / 10.77.2.1)  node "gate" of master,
#                                      and root of the game    :7102
#   game ns   (10.77.2.2)  node "game" of gate
#
# joined by veth pairs master<->gate and gate<->game. Then:
#   1. both nodes register and their calls succeed;
#   2. the master<->gate link is cut (ip link set ... down): the master
#      notices the loss by heartbeats and the gate's calls to it fail
#      cleanly (no call lost: sent = ok + failed), while game<->gate calls
#      keep working;
#   3. the link is restored: the gate reconnects and registers again, and
#      its calls succeed again.
#
# Needs root and iproute2 with netns support. Where namespaces cannot be
# made it prints SKIP and why, and exits 0 — never a silent pass. Only
# addresses inside the namespaces it creates are used; every namespace and
# process it makes is removed on exit.
set -u

PEER=${1:?usage: run.sh PATH/TO/peer}
case $PEER in /*) ;; *) PEER=$(pwd)/$PEER ;; esac

skip() { echo "netns: SKIP: $*"; exit 0; }
fail() { echo "netns: FAIL: $*"; dump; exit 1; }

[ "$(id -u)" = 0 ] || skip "not root (network namespaces need CAP_SYS_ADMIN)"
command -v ip >/dev/null 2>&1 || skip "no ip command (iproute2)"

tag=em$$
NS_M=${tag}m NS_G=${tag}g NS_X=${tag}x
dir=$(mktemp -d "${TMPDIR:-/tmp}/ember-netns.XXXXXX")
pids=""

cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    for ns in $NS_M $NS_G $NS_X; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

dump() {
    for f in "$dir"/*.log; do
        [ -f "$f" ] || continue
        echo "---- $(basename "$f")"; tail -n 30 "$f"
    done
}

ip netns add "$NS_M" 2>"$dir/err" || skip "cannot create a namespace: $(cat "$dir/err")"
ip netns add "$NS_G" || skip "cannot create a second namespace"
ip netns add "$NS_X" || skip "cannot create a third namespace"
ip link add "${tag}a" type veth peer name "${tag}b" 2>"$dir/err" ||
    skip "cannot create veth pairs: $(cat "$dir/err")"
ip link add "${tag}c" type veth peer name "${tag}d" || skip "cannot create a second veth pair"
ip link set "${tag}a" netns "$NS_M"
ip link set "${tag}b" netns "$NS_G"
ip link set "${tag}c" netns "$NS_G"
ip link set "${tag}d" netns "$NS_X"
ip -n "$NS_M" addr add 10.77.1.1/24 dev "${tag}a"
ip -n "$NS_G" addr add 10.77.1.2/24 dev "${tag}b"
ip -n "$NS_G" addr add 10.77.2.1/24 dev "${tag}c"
ip -n "$NS_X" addr add 10.77.2.2/24 dev "${tag}d"
for ns in $NS_M $NS_G $NS_X; do ip -n "$ns" link set lo up; done
ip -n "$NS_M" link set "${tag}a" up
ip -n "$NS_G" link set "${tag}b" up
ip -n "$NS_G" link set "${tag}c" up
ip -n "$NS_X" link set "${tag}d" up
if command -v ping >/dev/null 2>&1; then
    ip netns exec "$NS_G" ping -c 1 -W 2 10.77.1.1 >/dev/null 2>&1 ||
        skip "namespaces made but the veth link does not carry traffic"
fi

ip netns exec "$NS_M" "$PEER" --listen 10.77.1.1:7101 --secs 60 >"$dir/master.log" 2>&1 &
pids="$pids $!"
ip netns exec "$NS_G" "$PEER" --listen 10.77.2.1:7102 --connect gate@10.77.1.1:7101 \
    --secs 60 >"$dir/gate.log" 2>&1 &
gate_pid=$!
pids="$pids $gate_pid"
ip netns exec "$NS_X" "$PEER" --connect game@10.77.2.1:7102 --secs 60 >"$dir/game.log" 2>&1 &
pids="$pids $!"

# Waits (polling the logs, up to $2 seconds) until file $1 has a line
# matching $3 at least $4 times.
wait_for() {
    file=$1 secs=$2 pattern=$3 count=${4:-1}
    i=0
    while [ $i -lt $((secs * 10)) ]; do
        n=$(grep -c -- "$pattern" "$dir/$file" 2>/dev/null || true)
        [ "${n:-0}" -ge "$count" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

last_books() { grep '^books' "$dir/$1" | tail -n 1; }
field() { echo "$1" | tr ' ' '\n' | grep "^$2=" | cut -d= -f2; }

wait_for master.log 10 '^join gate' || fail "the gate did not register with the master"
wait_for gate.log 10 '^join game' || fail "the game did not register with the gate"
wait_for gate.log 5 '^books' 2 || fail "the gate printed no books"
b=$(last_books gate.log)
[ "$(field "$b" ok)" -gt 0 ] || fail "the gate's calls do not succeed: $b"
echo "netns: cluster up over three namespaces ($b)"

# Cut master <-> gate.
ip -n "$NS_G" link set "${tag}b" down
wait_for master.log 5 '^leave gate' || fail "the master did not notice the cut link within 5 s"
wait_for gate.log 5 '^state lost' || fail "the gate did not notice the cut link within 5 s"
game_ok_before=$(field "$(last_books game.log)" ok)
wait_for gate.log 5 '^books' 6 || true
b=$(last_books gate.log)
[ "$(field "$b" failed)" -gt 0 ] || fail "the gate's calls did not fail while cut: $b"
game_ok_after=$(field "$(last_books game.log)" ok)
[ "$game_ok_after" -gt "$game_ok_before" ] || fail "game<->gate calls stopped while master<->gate was cut"
echo "netns: link cut: loss detected, calls fail cleanly ($b), game<->gate unaffected"

# Restore it.
ip -n "$NS_G" link set "${tag}b" up
wait_for master.log 10 '^join gate' 2 || fail "the gate did not come back within 10 s"
ok_back=$(field "$(last_books gate.log)" ok)
wait_for gate.log 5 '^books' 9 || true
ok_later=$(field "$(last_books gate.log)" ok)
[ "$ok_later" -gt "$ok_back" ] || fail "the gate's calls do not succeed after the link came back"
echo "netns: link restored: the gate registered again and its calls succeed"

# Stop everything and check the books: no call lost anywhere.
for p in $pids; do kill -TERM "$p" 2>/dev/null; done
for p in $pids; do wait "$p" || fail "a peer exited with status $? (calls lost?)"; done
pids=""
grep -h '^final' "$dir/gate.log" "$dir/game.log" | sed 's/^/netns: /'
echo "netns: ok"
