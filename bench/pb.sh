#!/usr/bin/env bash
# bench/pb.sh — the Perspective Broker workloads (docs/performance.md): a
# Twisted node (bench/pb/pb_peer.py, registered with takeProxy) calling echo
# on an ember root (bench/pb/pb_server.c) and, as the reference, on a
# Twisted root. Run by bench/run.sh (BENCH_ONLY="pb" runs only these).
#
#   pb_sync64   one call in flight, 64-character strings
#   pb_pipe64   64 calls in flight
#
# Prints "peer=ember-pb|twisted-pb workload=pb_... calls_per_s=N" and
# "ratio workload=pb_... ember/twisted=R".
set -u

B=${B:-build}
SECS=${BENCH_SECS:-3}
PY=${PB_PYTHON:-/usr/bin/python3}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ember-pb-bench.XXXXXX")
SRV_PID=

cleanup() {
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null
    exec 3<&- 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# serve CMD...: starts a server and reads its "port=N" (no sleeping).
serve() {
    local fifo=$TMP/srv.$RANDOM line=
    mkfifo "$fifo"
    "$@" >"$fifo" &
    SRV_PID=$!
    exec 3<"$fifo"
    rm -f "$fifo"
    read -r -t 20 -u 3 line && [ "${line#port=}" != "$line" ] || return 1
    PORT=${line#port=}
}

unserve() {
    kill "$SRV_PID" 2>/dev/null
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=
    exec 3<&-
}

declare -A CPS
for spec in "sync64 1" "pipe64 64"; do
    set -- $spec
    w=pb_$1 inflight=$2
    for peer in ember-pb twisted-pb; do
        if [ $peer = ember-pb ]; then
            serve "$B/bench/pb_server"
        else
            serve "$PY" bench/pb/pb_peer.py server
        fi || { echo "peer=$peer workload=$w error=server-start"; unserve; continue; }
        out=$("$PY" bench/pb/pb_peer.py client "$PORT" "$SECS" "$inflight" 64) ||
            out="error=client-failed"
        unserve
        echo "peer=$peer workload=$w $out"
        CPS[$peer]=${out#calls_per_s=}
    done
    if [[ "${CPS[ember-pb]:-}" =~ ^[0-9]+$ && "${CPS[twisted-pb]:-}" =~ ^[0-9]+$ ]]; then
        echo "ratio workload=$w ember/twisted=$(awk -v e="${CPS[ember-pb]}" -v t="${CPS[twisted-pb]}" 'BEGIN{printf "%.2f", e/t}')"
    fi
done
