#!/bin/sh
# Servers started one by one, as Firefly's can be: the master with -n starts
# nothing; every server of the config is started by this script as a process
# of its own (net first, db last, so each waits for its roots by itself).
# /status must become ready with exactly those processes, a program started
# with another app's entry is refused, bots play through them, POST /stop
# stops them all, and each exits 0 on its own.
set -eu
cd "$(dirname "$0")/../.."
. scripts/cluster-lib.sh

cl_test test-standalone "$B/e2e/standalone"
cluster_start_alone "$dir" "$dir/players.sqlite"
cluster_wait_ready 20

# The master started nothing: the pids in /status are its own and ours.
grep -q '^\[master\] started ' "$CL_LOG" && fail "master -n started a server"
ours=$(printf '%s\n' $CL_MASTER_PID $(printf '%s\n' $CL_ALONE | sed 's/.*://') | sort -u | tr '\n' ' ')
seen=$(cl_status_pids | tr '\n' ' ')
[ "$ours" = "$seen" ] || fail "/status reports pids $seen, we started $ours"
cl_say "every server registered is one started here: $CL_ALONE"

# A program started with another app's entry is refused, naming it: a net
# started as game1 ran, registered as game1 and took its place.
wrong_app() {
    prog=$1
    rc=0
    timeout 10 "$CL_BIN/$prog" game1 "$dir/cluster.json" > /dev/null 2> "$dir/wrong-$prog.log" || rc=$?
    [ "$rc" = 1 ] &&
        grep -qF "$dir/cluster.json: servers.game1.app is \"game\": start it with game, not $prog" "$dir/wrong-$prog.log" ||
        fail "$prog started with game1's entry: exit $rc, $(cat "$dir/wrong-$prog.log")"
}
for prog in net gate db pygame; do wrong_app "$prog"; done
cl_status_has '"ready": true' || fail "the cluster is not ready after the wrong starts"

# Two runs of bots: the second loads every player where the first left it.
cl_bots "$dir/bots1.out" -n 6 -r 2 -m 4 -p alone
cl_bots "$dir/bots2.out" -n 6 -r 2 -m 4 -p alone
grep -q ' 0 failed, 6 of 6 players loaded from the database' "$dir/bots2.out" ||
    { cat "$dir/bots2.out"; fail "the second run did not load every player"; }
cl_status_has '"method": "move", "id": 602, "calls": [1-9]' || fail "no game node served a move"

cluster_stop 30
for s in $CL_ALONE; do
    rc=0
    wait "${s#*:}" || rc=$?
    [ "$rc" -eq 0 ] || fail "${s%%:*} (pid ${s#*:}) exited with $rc after the stop"
done
grep -c '\] stopped$' "$CL_LOG" | grep -qx "$(printf '%s\n' $CL_ALONE | wc -l)" ||
    fail "not every server logged its stop"
echo "test-standalone: ok (master -n, $(printf '%s\n' $CL_ALONE | wc -l) servers started one by one, 12 bots, every process exited 0 after POST /stop)"
