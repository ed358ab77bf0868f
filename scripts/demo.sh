#!/bin/sh
# make demo — the example game cluster end to end on loopback: start master
# (which starts db, gate, two game nodes and net), wait until every server
# registered, run the bots, stop the cluster through POST /stop and check
# that every process exited. Exits non-zero with the reason on any failure.
#
#   B=build BOTS=20 ROOMS=4 MOVES=5 DB=var/ember-demo.sqlite scripts/demo.sh
#
# MIXED=1 (make demo-mixed) runs the mixed cluster: game2 is the Twisted
# node examples/pygame/game.py, registered over Perspective Broker with
# master, gate and db (docs/cluster.md, "A mixed cluster").
#
# The database persists between runs: the second run's bots are loaded from
# it, at the positions the first run left them.
set -eu
cd "$(dirname "$0")/.."
. scripts/cluster-lib.sh

: "${BOTS:=20}" "${ROOMS:=4}" "${MOVES:=5}" "${DB:=var/ember-demo.sqlite}"
dir=$B/demo
trap cluster_kill EXIT INT TERM

game2="game2"
if [ -n "${MIXED:-}" ]; then
    CL_MIXED=1
    game2="game2 (Python, Twisted PB)"
    /usr/bin/python3 -c 'import twisted.spread.pb' 2>/dev/null ||
        cl_die "the mixed cluster needs python3-twisted: scripts/deps.sh mixed"
fi
for bin in master gate game db net bot freeport ${MIXED:+pygame}; do
    [ -x "$CL_BIN/$bin" ] || cl_die "$CL_BIN/$bin is missing: run make examples"
done
t0=$(cl_now)
cl_say "== ember demo: master, db, gate, game1, $game2, net on 127.0.0.1 (database $DB)"
cluster_start "$dir" "$DB"
cluster_wait_ready 20

cl_say ""
cl_say "== $BOTS bots: login, enter a room, move $MOVES times, chat, leave, logout"
set +e
"$CL_BIN/bot" -n "$BOTS" -r "$ROOMS" -m "$MOVES" -t 30 "$CL_NET"
bot_rc=$?
set -e

cl_say ""
cl_say "== what each server served (GET /status?format=text)"
curl -sf --max-time 5 "$CL_WEB/status?format=text" | sed 's/^/  /' || cl_die "GET /status failed"
cl_say "  (failed: answered with an error; here each bot's deliberate move before entering a room)"

cl_say ""
cl_say "== stop"
cluster_stop 30
[ "$bot_rc" -eq 0 ] || cl_die "bots failed (exit $bot_rc)"
cl_say "demo ok in $(cl_since "$t0") s (logs: $CL_LOG); run it again to see the players loaded from $DB"
