#!/bin/sh
# Graceful stop under load: POST /stop while bots are mid-script. No call may
# be lost: every command net read is answered (a reply, or "503 server
# stopping" once net stopped taking new work), then net sends PUSH_BYE and
# closes — a bot never times out nor sees the connection drop without the
# goodbye — and every process exits cleanly.
#
# "Answered" is checked, not assumed: a move is saved in the database before
# it is answered, so once the cluster has exited, the database must hold each
# bot's last acknowledged position (bot -R records it, with the command the
# goodbye left unanswered). A command executed whose reply was lost would
# leave the player one step further than its bot was told.
set -eu
cd "$(dirname "$0")/../.."
. scripts/cluster-lib.sh

cl_test test-stop-under-load "$B/e2e/stop"
cluster_start "$dir" "$dir/players.sqlite"
cluster_wait_ready 20

# Long scripts: 10 bots, 100000 moves each, far more than fits before the stop.
"$CL_BIN/bot" -n 10 -r 3 -m 100000 -p load -t 60 -R "$dir/bots.rec" "$CL_NET" > "$dir/bots.out" 2>&1 &
bot_pid=$!
# Stop once the game nodes have served some moves.
cl_poll 20 "the bots did not get going" cl_status_has '"method": "move", "id": 602, "calls": [0-9][0-9][0-9]'
cluster_stop 30
rc=0
wait "$bot_pid" || rc=$?
[ "$rc" -ne 0 ] || fail "the bots finished 100000 moves before the stop?"
if grep -q "timed out" "$dir/bots.out"; then cat "$dir/bots.out"; fail "a command was lost (timed out)"; fi
if grep "FAILED" "$dir/bots.out" | grep -v "net said goodbye (server stopping)" | grep -v "refused: 503 server stopping" | grep -q .; then
    cat "$dir/bots.out"; fail "a bot failed for another reason than the stop"
fi
# The cluster has exited: the database is closed, read it.
cl_check_positions "$dir/bots.rec" "$dir/players.sqlite"
echo "test-stop-under-load: ok ($(grep -c 'FAILED' "$dir/bots.out") bots cut off by the stop, no command lost, none executed unanswered)"
