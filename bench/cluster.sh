#!/usr/bin/env bash
# bench/cluster.sh — the example cluster at full speed: bots (one process,
# one socket each) -> net -> gate -> game1/game2 -> db, on loopback. For each
# number of clients it starts a fresh cluster, lets every bot log in and
# enter its room (10 players a room), then measures BENCH_SECS of MOVEs,
# one in flight per bot (each saved by db in SQLite before it is answered),
# and prints one line:
#
#   peer=cluster workload=cluster clients=N cmds_per_s=R p50_us=X p99_us=Y
#       net_us=.. gate_us=.. game_us=.. db_us=.. master_us=.. bot_us=..
#       net_cpu=..% gate_cpu=..% game_cpu=..% db_cpu=..% bot_cpu=..%
#
# X_us: CPU time (user + system, from /proc/PID/stat) that server spent per
# command answered in the window; game is game1 + game2. X_cpu: the share
# of one core it used. The bot process is measured too (its own getrusage):
# on a small machine it competes with the servers for the same cores. The
# window ends with the bots still connected, so their closing (and the
# logouts it causes) is not measured.
#
# Run by bench/run.sh (make bench, BENCH_ONLY=cluster); alone:
#   B=build BENCH_SECS=3 BENCH_CLUSTER_CLIENTS="1 100 1000" bench/cluster.sh
# Environment: BENCH_SECS (3), BENCH_WARMUP (0.5 s after the last bot
# entered its room), BENCH_CLUSTER_CLIENTS ("1 100 1000").
# The processes are not pinned (seven of them share the machine's cores).
# 1000 clients need 1000 sockets in the bot and in net: both raise their
# soft open-files limit to the hard one (ulimit -Hn).
set -u
cd "$(dirname "$0")/.."
B=${B:-build}
SECS=${BENCH_SECS:-3}
WARM=${BENCH_WARMUP:-0.5}
CLIENTS=${BENCH_CLUSTER_CLIENTS:-1 100 1000}
TCK=$(getconf CLK_TCK)
. scripts/cluster-lib.sh

# ticks PID: its user + system time so far, in clock ticks.
ticks() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    set -- $s
    echo $(( ${12} + ${13} ))
}

# one_run N: prints the line for N clients (or an error=... line).
one_run() {
    local n=$1 dir=$B/bench/cluster/$1 rooms=$(( $1 / 10 > 0 ? $1 / 10 : 1 ))
    trap cluster_kill EXIT
    rm -rf "$dir"
    mkdir -p "$dir"
    CL_TEST=bench-cluster
    cluster_start "$dir" "$dir/players.sqlite" >/dev/null
    cluster_wait_ready 30 >/dev/null
    local -A bc_pid=([master]=$CL_MASTER_PID)
    local s
    for s in net gate game1 game2 db; do
        bc_pid[$s]=$(cl_pid $s)
        [ -n "${bc_pid[$s]}" ] || { echo "error=no-pid-for-$s"; return 1; }
    done
    mkfifo "$dir/bot.fifo"
    "$CL_BIN/bot" -n "$n" -r "$rooms" -p b -B "$SECS" -W "$WARM" \
        -t "$(awk -v s="$SECS" -v w="$WARM" 'BEGIN{printf "%d", s + w + 60}')" \
        "$CL_NET" >"$dir/bot.fifo" 2>"$dir/bot.err" &
    local bot=$!
    CL_OWN_PIDS=$bot
    exec 4<"$dir/bot.fifo"
    local line bc_result= k
    local -A bc_t0=() bc_t1=()
    while read -r -u 4 line; do
        case $line in
        "measure: start") for k in "${!bc_pid[@]}"; do bc_t0[$k]=$(ticks "${bc_pid[$k]}"); done ;;
        "measure: end") for k in "${!bc_pid[@]}"; do bc_t1[$k]=$(ticks "${bc_pid[$k]}"); done ;;
        bench\ *) bc_result=${line#bench }; kill -TERM "$bot" ;;
        esac
        printf '%s\n' "$line" >>"$dir/bot.out"
    done
    exec 4<&-
    local rc=0
    wait "$bot" || rc=$?
    CL_OWN_PIDS=
    if [ $rc != 0 ] || [ -z "$bc_result" ] || [ ${#bc_t1[@]} = 0 ]; then
        echo "error=bots-failed clients=$n ($(grep -m1 FAILED "$dir/bot.err" "$dir"/*.out 2>/dev/null | head -c 200))"
        return 1
    fi
    bc_t0[game]=$(( bc_t0[game1] + bc_t0[game2] ))
    bc_t1[game]=$(( bc_t1[game1] + bc_t1[game2] ))
    bc_t0[bot]=0
    bc_t1[bot]=$(awk -v c="$(field "$bc_result" cpu_s)" -v t="$TCK" 'BEGIN{printf "%.0f", c * t}')
    local bc_cmds bc_secs bc_line
    bc_cmds=$(field "$bc_result" commands)
    bc_secs=$(field "$bc_result" secs)
    bc_line="clients=$n cmds_per_s=$(field "$bc_result" cmds_per_s) p50_us=$(field "$bc_result" p50_us) p99_us=$(field "$bc_result" p99_us)"
    for k in net gate game db master bot; do
        bc_line="$bc_line ${k}_us=$(awk -v d=$(( bc_t1[$k] - bc_t0[$k] )) -v t="$TCK" -v c="$bc_cmds" \
            'BEGIN{printf "%.1f", c ? d / t * 1e6 / c : 0}')"
    done
    for k in net gate game db bot; do
        bc_line="$bc_line ${k}_cpu=$(awk -v d=$(( bc_t1[$k] - bc_t0[$k] )) -v t="$TCK" -v s="$bc_secs" \
            'BEGIN{printf "%.0f%%", s ? d / t / s * 100 : 0}')"
    done
    cluster_stop 60 >/dev/null
    echo "$bc_line"
}

# field LINE KEY: the value of KEY=... in LINE
field() { local l=" $1 "; l=${l#* $2=}; [ "$l" = " $1 " ] && return 1; echo "${l%% *}"; }

mkdir -p "$B/bench"
for n in $CLIENTS; do
    line=$(one_run "$n" 2>"$B/bench/cluster-$n.err") || line="error=run-failed clients=$n $line (see $B/bench/cluster-$n.err)"
    echo "peer=cluster workload=cluster $line"
done
