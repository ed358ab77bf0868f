#!/usr/bin/env bash
# bench/run.sh — runs every workload against the raw baseline and the ember
# peer (server and client as separate processes on 127.0.0.1) and prints one
# line per measurement. Run through `make bench`; see docs/performance.md.
#
#   B=build BENCH_SECS=3 bench/run.sh            all workloads, then the sweep
#   bench/run.sh --sweep-only                    only the latency sweep
#
# Environment: BENCH_SECS (measured seconds per peer and workload, 3),
# BENCH_REPEAT (3: the seconds are split into that many slices, raw and ember
# alternating, and each figure reported is the median over the slices),
# BENCH_WARMUP (0.5 before each slice),
# BENCH_SWEEP_SECS (1), BENCH_PIN (split: server on CPU 1, client on CPU 0,
# the default | same: both on CPU 0 | none: the scheduler decides),
# BENCH_ONLY (space-separated workloads to run, "instr" for the instruction
# counts, "cluster" for the example cluster (bench/cluster.sh), "pb" for
# the Perspective Broker workloads (bench/pb.sh), and/or
# "sweep"), BENCH_INSTR_CALLS (20000: N, see run_instr),
# BENCH_CLUSTER_CLIENTS ("1 100 1000", see bench/cluster.sh), BENCH_NICE
# (niceness of the benchmark processes: -10 as root, so that other work on a
# shared machine disturbs the measurement less; 0 otherwise).
#
# Why pin: on a 2-core VM the scheduler sometimes puts both processes on one
# CPU, which turns a 70 us cross-CPU round trip into a 6 us one; unpinned,
# two runs of the same workload can differ tenfold and a same-run ratio
# means nothing. Split pinning is the configuration the targets assume.
set -u

B=${B:-build}
BD=$B/bench
IDLC=${IDLC:-$B/bin/idlc}
SECS=${BENCH_SECS:-3}
WARM=${BENCH_WARMUP:-0.5}
SWEEP_SECS=${BENCH_SWEEP_SECS:-1}
REPEAT=${BENCH_REPEAT:-3}
PIN=${BENCH_PIN:-split}
ONLY=${BENCH_ONLY:-}
INSTR_CALLS=${BENCH_INSTR_CALLS:-20000}
SWEEP_ONLY=0
[ "${1:-}" = "--sweep-only" ] && SWEEP_ONLY=1

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ember-bench.XXXXXX")
SRV_PID=
CLI_PID=

cleanup() {
    # Only the processes this script started, by pid.
    [ -n "$CLI_PID" ] && kill "$CLI_PID" 2>/dev/null
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null
    exec 3<&- 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

srv_cpu=; cli_cpu=
case $PIN in
    split) srv_cpu=1; cli_cpu=0 ;;
    same) srv_cpu=0; cli_cpu=0 ;;
    none) ;;
    *) echo "run.sh: BENCH_PIN must be none, split or same" >&2; exit 2 ;;
esac
NICE=${BENCH_NICE:-}
if [ -z "$NICE" ]; then
    if [ "$(id -u)" = 0 ]; then NICE=-10; else NICE=0; fi
fi
[ "$PIN" = same ] || [ "$(nproc)" -ge 2 ] || { srv_cpu=; cli_cpu=; }
pin() { # pin CPU CMD...: runs CMD on CPU when pinning is on
    local cpu=$1; shift
    if [ -n "$cpu" ] && command -v taskset >/dev/null; then
        nice -n "$NICE" taskset -c "$cpu" "$@"
    else
        nice -n "$NICE" "$@"
    fi
}


# start_server PROG ARGS...: starts the server, reads "port=N" from its stdout
# (no sleeping); later lines of its stdout stay readable on fd 3.
start_server() {
    local fifo=$TMP/srv.$RANDOM
    mkfifo "$fifo"
    pin "$srv_cpu" "$@" >"$fifo" &
    SRV_PID=$!
    exec 3<"$fifo"
    rm -f "$fifo"
    local line=
    if ! read -r -t 20 -u 3 line || [ "${line#port=}" = "$line" ]; then
        echo "run.sh: $1 did not report its port" >&2
        stop_server
        return 1
    fi
    PORT=${line#port=}
}

# stop_server [TRIES]: waits (bounded: TRIES x 50 ms, 100) for the server to
# exit, else ends it.
stop_server() {
    local i
    for i in $(seq 1 "${1:-100}"); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill "$SRV_PID" 2>/dev/null
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=
    exec 3<&-
}

wanted() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }

declare -A CPS

# field LINE KEY: the value of KEY=... in LINE
field() { local l=" $1 "; l=${l#* $2=}; [ "$l" = " $1 " ] && return 1; echo "${l%% *}"; }

emit() { # emit PEER WORKLOAD RESULT
    echo "peer=$1 workload=$2 $3"
    local v
    v=$(field "$3" calls_per_s) && CPS[$1.$2]=$v
}

# run_pair PEER WORKLOAD "SERVER ARGS" "CLIENT ARGS" [SECS]: the client measures.
run_pair() {
    local peer=$1 w=$2 sargs=$3 cargs=$4 secs=${5:-$SECS} out
    start_server "$BD/${peer}_server" --secs "$secs" --warmup "$WARM" $sargs || { emit "$peer" "$w" "error=server-start"; return; }
    out=$(pin "$cli_cpu" "$BD/${peer}_client" --port "$PORT" --secs "$secs" --warmup "$WARM" $cargs) || out="error=client-failed"
    stop_server
    RESULT=$out
}

# run_fanout PEER: the server (the root) measures; the client hosts 100 children.
run_fanout() {
    local peer=$1 secs=$2 out=
    start_server "$BD/${peer}_server" --fanout 100 --size 64 --secs "$secs" --warmup "$WARM" || { RESULT="error=server-start"; return; }
    pin "$cli_cpu" "$BD/${peer}_client" --port "$PORT" --echo-only --conns 100 --secs "$secs" --warmup "$WARM" &
    CLI_PID=$!
    read -r -t $(( ${SECS%.*} + 60 )) -u 3 out || out="error=no-result"
    stop_server
    local i
    for i in $(seq 1 100); do kill -0 "$CLI_PID" 2>/dev/null || break; sleep 0.05; done
    kill "$CLI_PID" 2>/dev/null
    wait "$CLI_PID" 2>/dev/null
    CLI_PID=
    RESULT=$out
}

ratio() { # ratio WORKLOAD: ember/raw of calls_per_s
    local e=${CPS[ember.$1]:-} r=${CPS[raw.$1]:-}
    if [ -n "$e" ] && [ -n "$r" ] && [ "$r" != 0 ]; then
        echo "ratio workload=$1 ember/raw=$(awk -v e="$e" -v r="$r" 'BEGIN{printf "%.2f", e/r}')"
    else
        echo "ratio workload=$1 ember/raw=error"
    fi
}

# median LINES...: one line "calls_per_s=N p50_us=X p99_us=Y" holding the
# median of each figure over the slices (or the first error line).
median() {
    local l
    for l in "$@"; do
        case $l in *error=*) echo "$l"; return ;; esac
    done
    printf '%s\n' "$@" | awk '
        { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1], NR] = kv[2] } n = NR }
        function med(k,   a, i, j, t) {
            for (i = 1; i <= n; i++) a[i] = v[k, i] + 0
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        END { printf "calls_per_s=%.0f p50_us=%.1f p99_us=%.1f\n", med("calls_per_s"), med("p50_us"), med("p99_us") }'
}

# measure WORKLOAD KIND "SERVER ARGS" "CLIENT ARGS": REPEAT alternating slices
# of SECS/REPEAT seconds, raw then ember, so that both peers see the same
# machine; prints each peer's median line and the ratio.
measure() {
    local w=$1 kind=$2 rep peer secs
    wanted "$w" || return 0
    secs=$(awk -v s="$SECS" -v r="$REPEAT" 'BEGIN{printf "%.3f", s / r}')
    local -a raw_res=() ember_res=()
    for rep in $(seq 1 "$REPEAT"); do
        for peer in raw ember; do
            if [ "$kind" = fanout ]; then
                run_fanout $peer "$secs"
            else
                run_pair $peer "$w" "$3" "$4" "$secs"
            fi
            if [ $peer = raw ]; then raw_res+=("$RESULT"); else ember_res+=("$RESULT"); fi
        done
    done
    emit raw "$w" "$(median "${raw_res[@]}")"
    emit ember "$w" "$(median "${ember_res[@]}")"
    ratio "$w"
}

run_workloads() {
    measure sync64 pair "" "--inflight 1 --size 64"
    measure pipe64 pair "" "--inflight 64 --size 64"
    measure sync4k pair "" "--inflight 1 --size 4096"
    measure sync64k pair "" "--inflight 1 --size 65536"
    measure bidir pair "--bidir 32 --size 64" "--inflight 32 --size 64"
    if [ -n "${CPS[ember.bidir]:-}" ] && [ -n "${CPS[ember.pipe64]:-}" ]; then
        echo "ratio workload=bidir ember/ember_pipe64=$(awk -v e="${CPS[ember.bidir]}" -v r="${CPS[ember.pipe64]}" 'BEGIN{printf "%.2f", e/r}')"
    fi

    measure fanout fanout "" ""

    if wanted idle10k; then
        start_server "$BD/ember_server" --idle --conns 10000 --secs "$SECS" &&
        { pin "$cli_cpu" "$BD/ember_client" --port "$PORT" --idle --conns 10000 --secs "$SECS" &
          CLI_PID=$!
          local out=
          read -r -t 120 -u 3 out || out="error=no-result"
          stop_server
          wait "$CLI_PID" 2>/dev/null; CLI_PID=
          echo "peer=ember workload=idle10k $out"; }
    fi

    if wanted allocs; then
        local cout= sout=
        start_server "$BD/ember_server" --allocs --secs "$SECS" --warmup "$WARM" &&
        { cout=$(pin "$cli_cpu" "$BD/ember_client" --port "$PORT" --allocs --inflight 1 --size 64 --secs "$SECS" --warmup "$WARM") || cout="error=client-failed"
          read -r -t 10 -u 3 sout || sout="error=no-result"
          stop_server
          echo "peer=ember workload=allocs $sout $cout"; }
    fi

    if wanted idlc10k; then
        mkdir -p "$TMP/idlc" "$TMP/idlc/out"
        python3 bench/gen_idl.py 10000 >"$TMP/idlc/big.idl"
        local t0 t1 rc
        t0=$(date +%s.%N)
        "$IDLC" -o "$TMP/idlc/out" "$TMP/idlc/big.idl" >"$TMP/idlc/log" 2>&1
        rc=$?
        t1=$(date +%s.%N)
        if [ $rc = 0 ]; then
            echo "peer=ember workload=idlc10k seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')"
        else
            echo "peer=ember workload=idlc10k error=idlc-exit-$rc ($(head -c 200 "$TMP/idlc/log" | tr '\n' ' '))"
        fi
    fi
}

# instr_total PEER SIDE INFLIGHT CALLS: the user-space instructions (callgrind's
# Ir: the program, libc, libevent, everything but the kernel) of SIDE's whole
# process (server or client) when the client makes exactly CALLS calls of 64
# bytes, INFLIGHT at a time; SIDE runs under callgrind, the other side
# natively. The profile stays in $TMP/cg.PEER.SIDE.INFLIGHT.CALLS.
instr_total() {
    local peer=$1 side=$2 inflight=$3 calls=$4 out=$TMP/cg.$1.$2.$3.$4
    local -a vg=(valgrind --tool=callgrind --callgrind-out-file="$out"
                 --log-file="$TMP/vg.log") s=() c=()
    if [ "$side" = server ]; then s=("${vg[@]}"); else c=("${vg[@]}"); fi
    start_server "${s[@]}" "$BD/${peer}_server" || return 1
    pin "$cli_cpu" "${c[@]}" "$BD/${peer}_client" --port "$PORT" --calls "$calls" \
        --inflight "$inflight" --size 64 >/dev/null 2>>"$TMP/vg.log"
    local rc=$?
    stop_server 1200
    [ $rc = 0 ] && [ -s "$out" ] || return 1
    sed -n 's/^summary: //p' "$out"
}

# run_instr: instructions per call for raw and ember, server and client, on
# sync64 (1 in flight) and pipe64 (64): the whole process's count with N and
# with 2N calls, (I(2N) - I(N)) / N, so that start-up, registration and exit
# cancel out. Deterministic: it does not depend on the machine's load (the
# side measured runs ~50x slower under callgrind, so the native peer always
# keeps up and pipe64's batches are the full 64 calls). The 2N profiles are
# kept in $BD/callgrind/ for callgrind_annotate.
run_instr() {
    if ! command -v valgrind >/dev/null; then
        echo "instr error=no-valgrind (apt-get install valgrind)"
        return
    fi
    mkdir -p "$BD/callgrind"
    local n=$INSTR_CALLS w inflight peer side a b
    for w in sync64 pipe64; do
        if [ $w = sync64 ]; then inflight=1; else inflight=64; fi
        declare -A IPC=()
        for peer in raw ember; do
            local line="peer=$peer workload=$w"
            for side in server client; do
                if a=$(instr_total $peer $side $inflight "$n") &&
                   b=$(instr_total $peer $side $inflight $((2 * n))) &&
                   [ -n "$a" ] && [ -n "$b" ]; then
                    IPC[$peer.$side]=$(( (b - a + n / 2) / n ))
                    line="$line instr_per_call_$side=${IPC[$peer.$side]}"
                    cp "$TMP/cg.$peer.$side.$inflight.$((2 * n))" "$BD/callgrind/$peer-$w-$side.out"
                else
                    line="$line instr_per_call_$side=error"
                fi
            done
            echo "$line"
        done
        line="ratio workload=$w"
        for side in server client; do
            local e=${IPC[ember.$side]:-} r=${IPC[raw.$side]:-}
            if [ -n "$e" ] && [ -n "$r" ] && [ "$r" -gt 0 ]; then
                line="$line instr_$side ember/raw=$(awk -v e="$e" -v r="$r" 'BEGIN{printf "%.2f", e/r}')"
            else
                line="$line instr_$side ember/raw=error"
            fi
        done
        echo "$line"
        unset IPC
    done
}

# The latency sweep: 64-byte calls, 1..256 in flight, p50 and p99 per peer.
run_sweep() {
    local dat=$BD/latency.dat n peer
    {
        echo "# ember bench latency sweep: 64-byte echo, $SWEEP_SECS s per point, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
        echo "# inflight raw_calls_per_s raw_p50_us raw_p99_us ember_calls_per_s ember_p50_us ember_p99_us"
    } >"$dat.tmp"
    for n in 1 2 4 8 16 32 64 128 256; do
        local row="$n"
        for peer in raw ember; do
            run_pair $peer sweep "" "--inflight $n --size 64" "$SWEEP_SECS"
            local c p50 p99
            c=$(field "$RESULT" calls_per_s) || c=-
            p50=$(field "$RESULT" p50_us) || p50=-
            p99=$(field "$RESULT" p99_us) || p99=-
            row="$row $c $p50 $p99"
        done
        echo "$row" >>"$dat.tmp"
    done
    mv "$dat.tmp" "$dat"
    echo "sweep: wrote $dat"
}

echo "# ember bench: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, BENCH_SECS=$SECS in $REPEAT slices, warm-up ${WARM}s, pin=$PIN, nice=$NICE"
[ $SWEEP_ONLY = 1 ] || run_workloads
if [ $SWEEP_ONLY = 0 ] && wanted instr; then run_instr; fi
# The example cluster end to end (bench/cluster.sh): commands/s, latency and
# CPU per command of each server at 1, 100 and 1000 clients.
if [ $SWEEP_ONLY = 0 ] && wanted cluster; then
    B=$B BENCH_SECS=$SECS BENCH_WARMUP=$WARM nice -n "$NICE" bench/cluster.sh
fi
# Twisted Perspective Broker: a Twisted node against an ember root and
# against a Twisted root (bench/pb.sh).
if [ $SWEEP_ONLY = 0 ] && wanted pb; then
    B=$B BENCH_SECS=$SECS nice -n "$NICE" bench/pb.sh
fi
if [ $SWEEP_ONLY = 1 ] || [ -z "$ONLY" ] || wanted sweep; then run_sweep; fi
