#!/bin/sh
# The master's admin web out of memory: GET /metrics and GET /status with
# one of the master's own allocations failing (tests/e2e/failcalloc.c,
# preloaded: the k-th calloc of the master's code returns NULL), for k = 1,
# 2, ... until a request makes fewer allocations than k. Every such request
# must be answered 503 "out of memory", or 200 with one server's part
# missing (/metrics: that server's ember_cluster_server_up 0; /status: its
# entry says "out of memory"), or closed unanswered; the master must stay up
# and serve the next request whole. Each page must have given a 503 and a
# server's part missing at least once.
set -eu
cd "$(dirname "$0")/../.."
. scripts/cluster-lib.sh

cl_test test-oom "$B/e2e/oom"
SHIM=$B/lib/failcalloc.so
[ -f "$SHIM" ] || fail "no $SHIM (make test-oom builds it)"
ctl=$dir/failcalloc.ctl
echo 0 > "$ctl"
LD_PRELOAD=$(realpath "$SHIM") FAILCALLOC_PROG=master FAILCALLOC_CTL=$(realpath "$ctl") \
    FAILCALLOC_LOG=$(realpath "$dir")/failcalloc.log \
    cluster_start "$dir" "$dir/players.sqlite"
unset LD_PRELOAD
cluster_wait_ready 20
nservers=5

# sweep PAGE: one request per k, judged by judge_PAGE.
sweep() {
    page=$1
    k=1 n503=0 npart=0 nclosed=0
    while :; do
        echo $k > "$ctl"
        code=$(curl -s --max-time 10 -o "$dir/body" -w '%{http_code}' "$CL_WEB/$page" || true)
        left=$(cat "$ctl")
        echo 0 > "$ctl"
        kill -0 "$CL_MASTER_PID" 2>/dev/null || fail "the master died with calloc $k of GET /$page failing"
        [ "$left" -eq 0 ] || break   # fewer allocations than k: nothing failed
        case $code in
        503) grep -q 'out of memory' "$dir/body" || fail "GET /$page, calloc $k failing: 503 without the reason"
             n503=$((n503 + 1)) ;;
        200) "judge_$page" || fail "GET /$page, calloc $k failing: 200 but not one server's part missing: $(head -c 400 "$dir/body")"
             npart=$((npart + 1)) ;;
        000) nclosed=$((nclosed + 1))
             # Said as what it is, not as the cap on clients.
             grep -q "web: out of memory for a client's record: dropped" "$CL_LOG" &&
                 ! grep -q 'web: 256 clients at once' "$CL_LOG" ||
                 fail "GET /$page, calloc $k failing: closed, and the log does not say it was out of memory" ;;
        *)   fail "GET /$page, calloc $k failing: answered $code" ;;
        esac
        # The next request is served whole.
        curl -sf --max-time 10 -o "$dir/after" "$CL_WEB/$page" ||
            fail "GET /$page after calloc $k failed: no answer"
        "whole_$page" || fail "GET /$page after calloc $k failed: not every server: $(head -c 400 "$dir/after")"
        k=$((k + 1))
    done
    [ "$n503" -ge 1 ] || fail "GET /$page: no failing allocation was answered 503 ($((k - 1)) tried)"
    [ "$npart" -ge 1 ] || fail "GET /$page: no failing allocation cost one server's part ($((k - 1)) tried)"
    cl_say "GET /$page: $((k - 1)) allocations failed one at a time: $n503 answered 503, $npart with one server missing, $nclosed closed"
}

judge_metrics() {
    [ "$(grep -c '^ember_cluster_server_up{server="[^"]*"} 0$' "$dir/body")" -eq 1 ] &&
        [ "$(grep -c '^ember_cluster_server_up{server="[^"]*"} 1$' "$dir/body")" -eq $((nservers - 1)) ]
}
whole_metrics() {
    [ "$(grep -c '^ember_cluster_server_up{server="[^"]*"} 1$' "$dir/after")" -eq $nservers ]
}
judge_status() {
    [ "$(cl_flat < "$dir/body" | grep -o '"error": "out of memory"' | wc -l)" -eq 1 ]
}
whole_status() {
    cl_flat < "$dir/after" | grep -q '"ready": true' &&
        ! grep -q 'out of memory' "$dir/after"
}

sweep metrics
sweep status
grep -q 'failed calloc' "$dir/failcalloc.log" || fail "the shim logged no failure"
cluster_stop 30

# POST /stop, one cluster per k: the stop must still end with every
# process gone and the master exited, its report saying of a server it
# could not ask "out of memory" (then ok false, exit 1), or the request
# closed unanswered (the connection's own allocation) with the cluster
# still running, stopped for real afterwards.
base=$dir   # cluster_start sets dir
gone() { ! cl_alive "$1"; }
k=1 nskipped=0
while :; do
    echo 0 > "$ctl"
    LD_PRELOAD=$(realpath "$SHIM") FAILCALLOC_PROG=master FAILCALLOC_CTL=$(realpath "$ctl") \
        FAILCALLOC_LOG=$(realpath "$base")/failcalloc.log \
        cluster_start "$base/stop$k" "$base/stop$k.sqlite"
    unset LD_PRELOAD
    cluster_wait_ready 20
    echo $k > "$ctl"
    code=$(curl -s --max-time 60 -o "$base/stop$k.json" -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' -H "Authorization: Bearer $CL_ADMIN_TOKEN" \
        --data '{}' "$CL_WEB/stop" || true)
    left=$(cat "$ctl")
    echo 0 > "$ctl"
    if [ "$code" = 000 ] && [ "$left" -eq 0 ]; then
        kill -0 "$CL_MASTER_PID" 2>/dev/null || fail "the master died with calloc $k of POST /stop failing"
        cluster_stop 30
    else
        rc=0
        wait "$CL_MASTER_PID" || rc=$?
        for p in $CL_PIDS; do
            cl_poll 20 "pid $p still running after the stop with calloc $k failing" gone "$p"
        done
        CL_MASTER_PID= CL_PIDS=
        [ "$code" = 200 ] || fail "POST /stop with calloc $k failing: answered $code ($(cat "$base/stop$k.json"))"
        [ "$left" -eq 0 ] || break   # fewer allocations than k: a plain stop
        [ "$rc" = 1 ] || fail "POST /stop with calloc $k failing: the master exited $rc, not 1"
        cl_flat < "$base/stop$k.json" | grep -q '"outcome": "out of memory"' &&
            cl_flat < "$base/stop$k.json" | grep -q '"ok": false' ||
            fail "POST /stop with calloc $k failing: the report does not say so: $(cat "$base/stop$k.json")"
        nskipped=$((nskipped + 1))
    fi
    k=$((k + 1))
done
[ "$nskipped" -ge 1 ] || fail "POST /stop: no failing allocation left a server unasked ($((k - 1)) tried)"
cl_say "POST /stop: $((k - 1)) allocations failed one at a time, $nskipped servers not asked but stopped by SIGTERM"
echo "test-oom: ok (the master answered GET /metrics and /status with each of its allocations failing, and stayed up; POST /stop stopped every process)"
