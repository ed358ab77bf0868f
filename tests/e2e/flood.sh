#!/bin/sh
# net's bounds on its game clients (docs/cluster.md, "Client limits"), on
# the real cluster. net runs with max_clients 24, max_queued 4096,
# login_ms 3000, idle_ms 4000 and stall_ms 5000 (max_inflight at its
# default):
#
# 1. 25 clients connect and send nothing (bot -S): 24 are told "no login
#    within 3000 ms" and closed, the 25th "server full" at once.
# 2. A client logs in and then sends nothing (bot -I): "idle for 4000 ms";
#    meanwhile one that sends only PINGs, a second apart, for 5 s (bot -K 5)
#    must be answered every time and never dropped.
# 3. A client logs in and floods MOVE frames, 1 MiB a write, never reading
#    its replies (bot -F). Once net has stopped reading it (logged), 20 bots
#    play their script at the same time: every one must succeed. Then the
#    flooder must be dropped with its reason logged, and net's peak RSS
#    (VmHWM) must stay within NET_RSS_GROWTH_KB (16 MiB; 64 MiB when net is
#    built with ASan, whose quarantine keeps freed memory) of its RSS
#    before the flood. Without the bounds the same flood grew net by
#    hundreds of MB within seconds.
# 4. A client enters room 1 and then neither reads nor sends (bot -D)
#    while 20 bots chat there 300 times each: the pushes piling up for it
#    must get it dropped ("pushes queued") long before stall_ms, and the 20
#    bots must all succeed.
# 5. A logged-in player sends commands whose payloads are not their request
#    structs (tests/e2e/client_abuse.py badargs): each is answered 400, and
#    neither game node loses its link to the gate (which would take every
#    room on it away from its players). Names the gate cannot keep (over
#    63 bytes) or that hold a control character are refused 400 at LOGIN
#    (client_abuse.py names). Two ENTERs sent at once: the second is
#    refused 409, so the player is in one room on that room's node
#    (client_abuse.py enters); an ENTER sent behind a LEAVE is refused 409
#    too, so the node left holds nobody behind (client_abuse.py reenter).
#    A player logged in on one connection cannot log in on another (409,
#    client_abuse.py twice). A command within a frame but over what the
#    gate passes on (about 8 KiB), or a chat over about 4 KiB, is refused
#    413 (client_abuse.py sizes). A command with a push's id (>= 9000) closes
#    the connection, as its reply would read as a push (client_abuse.py
#    pushids).
# 6. game1 is held (SIGSTOP) until the gate drops it, with two players in a
#    room on it, then continued: it registers again, each player's next
#    command is 410, and their ENTERs go through, the room starting empty
#    (client_abuse.py relink: the node forgot the players it lost).
set -eu
cd "$(dirname "$0")/../.."
. scripts/cluster-lib.sh

if grep -q __asan_init "$B/bin/net"; then growth=65536; else growth=16384; fi
NET_RSS_GROWTH_KB=${NET_RSS_GROWTH_KB:-$growth}
cl_test test-flood "$B/e2e/flood"
CL_NET_JSON='"clients": {"max_clients": 24, "max_queued": 4096, "login_ms": 3000,
              "idle_ms": 4000, "stall_ms": 5000, "chat_per_s": 0}, '
cluster_start "$dir" "$dir/players.sqlite"
cluster_wait_ready 20
net_pid=$(cl_pid net)
[ -n "$net_pid" ] || fail "no pid for net in /status"
# kB of a /proc/PID/status field (VmRSS, VmHWM).
vm() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$net_pid/status"; }
rss0=$(vm VmRSS)
[ -n "$rss0" ] || fail "no VmRSS in /proc/$net_pid/status"

# 1. Silent clients: the login deadline and the cap on clients.
cl_bots "$dir/silent.out" -n 25 -S -p silent -t 20
# One line per client with the reason: silent01's transcript, an "ok" line
# for each other.
n=$(grep -c "no login within 3000 ms" "$dir/silent.out" || true)
[ "$n" = 24 ] || { cat "$dir/silent.out"; fail "$n of 25 silent clients told 'no login within 3000 ms', expected 24"; }
full=$(grep -c "server full" "$dir/silent.out" || true)
[ "$full" = 1 ] || { cat "$dir/silent.out"; fail "$full silent clients refused as 'server full', expected 1"; }
grep -q "refused 1 client(s): max_clients (24) connected" "$CL_LOG" || fail "net did not log the refusal"
[ "$(grep -c "dropped: no login within 3000 ms" "$CL_LOG")" = 24 ] || fail "net did not log 24 login timeouts"

# 2. A client that logs in and goes quiet, and one that only pings.
"$CL_BIN/bot" -n 1 -K 5 -p ping -t 20 "$CL_NET" > "$dir/ping.out" 2>&1 &
ping_pid=$!
CL_OWN_PIDS=$ping_pid
cl_bots "$dir/idle.out" -n 1 -I -p idle -t 20
rc=0
wait "$ping_pid" || rc=$?
CL_OWN_PIDS=
[ "$rc" = 0 ] && grep -q "done: 5 pings" "$dir/ping.out" ||
    { cat "$dir/ping.out"; fail "a client sending PINGs was not kept (idle_ms 4000)"; }
grep -q 'bye     "idle for 4000 ms"' "$dir/idle.out" || { cat "$dir/idle.out"; fail "the quiet client was not dropped as idle"; }
grep -q "dropped: idle for 4000 ms" "$CL_LOG" || fail "net did not log the idle drop"

# 3. The flood, while 20 bots play.
"$CL_BIN/bot" -n 1 -F -p flood -t 60 "$CL_NET" > "$dir/flood.out" 2>&1 &
flood_pid=$!
CL_OWN_PIDS=$flood_pid
cl_poll 30 "net never stopped reading the flooder (see $dir/flood.out)" \
    grep -q "bytes queued, not reading it until it reads" "$CL_LOG"
cl_bots "$dir/bots.out" -n 20 -r 4 -m 5 -p play -t 30
grep -q "^20 bots, [0-9]* calls, 0 errors, 0 failed" "$dir/bots.out" ||
    { cat "$dir/bots.out"; fail "the bots did not all succeed during the flood"; }
rc=0
wait "$flood_pid" || rc=$?
CL_OWN_PIDS=
[ "$rc" = 0 ] || { cat "$dir/flood.out"; fail "the flooder was not dropped by net"; }
grep -q "dropped: not reading its replies: [0-9]* bytes queued for it for 5000 ms" "$CL_LOG" ||
    fail "net did not log why it dropped the flooder"
hwm=$(vm VmHWM)
rss=$(vm VmRSS)
[ "$hwm" -le $((rss0 + NET_RSS_GROWTH_KB)) ] ||
    fail "net's peak RSS was $hwm kB, $((hwm - rss0)) kB more than before the flood (at most $NET_RSS_GROWTH_KB)"
flooded=$(sed -n 's/.*flooding (\([0-9]*\) MiB written).*/\1/p' "$dir/flood.out")

# 4. Pushes for a client that does not read.
"$CL_BIN/bot" -n 1 -r 1 -P -m 0 -D -p deaf -t 60 "$CL_NET" > "$dir/deaf.out" 2>&1 &
deaf_pid=$!
CL_OWN_PIDS=$deaf_pid
cl_poll 10 "the deaf client did not enter its room (see $dir/deaf.out)" grep -q "deaf: reading nothing" "$dir/deaf.out"
t_chat=$(cl_now)
cl_bots "$dir/chat.out" -n 20 -r 1 -P -m 0 -c 300 -p chat -t 30
grep -q "^20 bots, [0-9]* calls, 0 errors, 0 failed" "$dir/chat.out" ||
    { cat "$dir/chat.out"; fail "the bots chatting next to a deaf client did not all succeed"; }
cl_poll 5 "net did not drop the deaf client for the pushes queued for it" \
    grep -q "dropped: [0-9]* bytes of pushes queued for it, more than twice max_queued (4096)" "$CL_LOG"
deaf_s=$(cl_since "$t_chat")
awk -v s="$deaf_s" 'BEGIN { exit !(s < 5) }' || fail "the deaf client took $deaf_s s to drop (stall_ms is 5 s)"
kill "$deaf_pid" 2>/dev/null || true
wait "$deaf_pid" 2>/dev/null || true
CL_OWN_PIDS=

# 5. Payloads that are not the command's request struct.
/usr/bin/python3 tests/e2e/client_abuse.py badargs 127.0.0.1 "${CL_NET#*:}" > "$dir/badargs.out" 2>&1 ||
    { cat "$dir/badargs.out"; fail "bad request payloads were not answered 400 with the room kept"; }
/usr/bin/python3 tests/e2e/client_abuse.py names 127.0.0.1 "${CL_NET#*:}" > "$dir/names.out" 2>&1 ||
    { cat "$dir/names.out"; fail "player names too long or with control characters were not refused at login"; }
/usr/bin/python3 tests/e2e/client_abuse.py enters 127.0.0.1 "${CL_NET#*:}" > "$dir/enters.out" 2>&1 ||
    { cat "$dir/enters.out"; fail "two ENTERs at once put a player in a room away from that room's node"; }
/usr/bin/python3 tests/e2e/client_abuse.py reenter 127.0.0.1 "${CL_NET#*:}" > "$dir/reenter.out" 2>&1 ||
    { cat "$dir/reenter.out"; fail "an ENTER behind a LEAVE left the player behind on its game node"; }
/usr/bin/python3 tests/e2e/client_abuse.py twice 127.0.0.1 "${CL_NET#*:}" > "$dir/twice.out" 2>&1 ||
    { cat "$dir/twice.out"; fail "a player logged in on two connections at once"; }
/usr/bin/python3 tests/e2e/client_abuse.py sizes 127.0.0.1 "${CL_NET#*:}" > "$dir/sizes.out" 2>&1 ||
    { cat "$dir/sizes.out"; fail "commands too large to pass on were not refused 413"; }
/usr/bin/python3 tests/e2e/client_abuse.py short 127.0.0.1 "${CL_NET#*:}" > "$dir/short.out" 2>&1 ||
    { cat "$dir/short.out"; fail "a frame with a bad length did not close its connection"; }
grep -q "bad frame length 3, closing" "$CL_LOG" ||
    fail "net waited for more bytes after a frame length under 4"
grep -q "bad frame length 1048576, closing" "$CL_LOG" ||
    fail "net waited for a command after a frame length over the limit"
/usr/bin/python3 tests/e2e/client_abuse.py pushids 127.0.0.1 "${CL_NET#*:}" > "$dir/pushids.out" 2>&1 ||
    { cat "$dir/pushids.out"; fail "a command with a push's id was answered like a push"; }
grep -q "command 9002 is a push's id" "$CL_LOG" || fail "net did not log why it closed a client"
! grep -q "child game[12] left" "$CL_LOG" ||
    fail "a game node left the gate after a client's bad request payloads"

# 6. A game node that lost its link to the gate and came back.
game1_pid=$(cl_pid game1)
[ -n "$game1_pid" ] || fail "no pid for game1 in /status"
/usr/bin/python3 tests/e2e/client_abuse.py relink 127.0.0.1 "${CL_NET#*:}" game1 "$game1_pid" "$CL_LOG" \
    > "$dir/relink.out" 2>&1 ||
    { cat "$dir/relink.out"; fail "game1 kept the players the gate took out of their rooms"; }
grep -q "link to the gate lost: 2 player(s) out of their rooms" "$CL_LOG" ||
    fail "game1 did not log the players it forgot"
cluster_wait_ready 20

cluster_stop 30
echo "test-flood: ok (24 silent clients timed out, 1 refused at max_clients, 1 idle dropped, 1 pinging kept; \
flooder dropped after ${flooded:-?} MiB while 20 bots played; net RSS ${rss0} kB before, \
${rss} kB after, peak ${hwm} kB; a deaf client dropped for its pushes ${deaf_s} s into the chat; bad request payloads answered 400, names over 63 bytes or with control characters refused, a second ENTER at once or one behind a LEAVE refused, a second login of a player refused; game1's players forgotten when its gate link was lost)"
