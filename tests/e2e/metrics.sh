#!/bin/sh
# The cluster's Prometheus metrics with Debian's own tools: GET /metrics on
# the master (every server's, labelled by server) and the gate's own page
# (config "metricsport") pass `promtool check metrics`; python3's
# prometheus_client parser reads every series, and the values are what the
# bots did (tests/e2e/check_metrics.py). A server that does not answer is
# reported down, the others up.
set -eu
cd "$(dirname "$0")/../.."
. scripts/cluster-lib.sh

cl_test test-metrics "$B/e2e/metrics"
# make test installs both (scripts/deps.sh test).
command -v promtool >/dev/null || fail "promtool is not installed (make deps, or apt-get install prometheus)"
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null ||
    fail "python3-prometheus-client is not installed (make deps)"

cluster_start "$dir" "$dir/players.sqlite"
cluster_wait_ready 20
bots=5 moves=3
cl_bots "$dir/bots.out" -n $bots -r 2 -m $moves -p prom -t 20
calls=$(sed -n "s/^$bots bots, \([0-9]*\) calls, 0 errors, 0 failed.*/\1/p" "$dir/bots.out")
[ -n "$calls" ] || { cat "$dir/bots.out"; fail "the bots had errors"; }

curl -sf --max-time 10 "$CL_WEB/metrics" > "$dir/cluster.prom" || fail "GET /metrics on the master"
curl -sf --max-time 10 -D "$dir/gate.headers" "$CL_GATE_METRICS" > "$dir/gate.prom" ||
    fail "GET $CL_GATE_METRICS"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$dir/gate.headers" ||
    fail "the gate's /metrics is not served as the text exposition format"
for page in cluster gate; do
    promtool check metrics < "$dir/$page.prom" > "$dir/$page.promtool" 2>&1 ||
        { cat "$dir/$page.promtool"; fail "promtool check metrics rejects $dir/$page.prom"; }
done

printf '%s\n' "bots $bots" "calls $calls" "moves $moves" "servers db,gate,game1,game2,net" \
    "master_children 5" "gate_children 3" "db_children 3" > "$dir/expect"
/usr/bin/python3 tests/e2e/check_metrics.py "$dir/cluster.prom" "$dir/expect" \
    docs/runtime.md docs/cluster.md || fail "the master's /metrics does not match what the bots did"
# The gate's own page says what the master's says of it.
fwd() { grep '^ember_calls_total{server="gate",endpoint="root",service="gate.Gate",service_id="[0-9a-f]*",method="forward"' "$1" | sed 's/.* //'; }
[ "$(fwd "$dir/gate.prom")" = "$calls" ] ||
    fail "the gate's own /metrics counts $(fwd "$dir/gate.prom") forwards, not $calls"
grep -q '^ember_calls_total{server="db"' "$dir/gate.prom" && fail "the gate's page has db's series"

# A server that does not answer (net held with SIGSTOP) is reported down
# once its 2 s are up, and the others up, with every series of theirs; the
# master merged the pages with net's missing and crashed (SIGSEGV), taking
# the cluster down with it (the status page asks for /metrics every second).
net_pid=$(cl_pid net)
[ -n "$net_pid" ] || fail "no pid for net in /status"
kill -STOP "$net_pid"
rc=0
curl -sf --max-time 10 "$CL_WEB/metrics" > "$dir/held.prom" || rc=$?
kill -CONT "$net_pid"
[ "$rc" = 0 ] || fail "GET /metrics with net not answering: curl exit $rc (master alive: $(cl_alive "$CL_MASTER_PID" && echo yes || echo no))"
grep -qx 'ember_cluster_server_up{server="net"} 0' "$dir/held.prom" ||
    fail "net, held, is not reported down: $(grep server_up "$dir/held.prom")"
for s in db gate game1 game2; do
    grep -qx "ember_cluster_server_up{server=\"$s\"} 1" "$dir/held.prom" &&
        grep -q "^ember_calls_total{server=\"$s\"" "$dir/held.prom" ||
        fail "$s is not up with its series while net is held"
done
promtool check metrics < "$dir/held.prom" > "$dir/held.promtool" 2>&1 ||
    { cat "$dir/held.promtool"; fail "promtool check metrics rejects $dir/held.prom"; }
cl_poll 10 "the cluster is not ready again once net is continued" cl_status_has '"ready": true'

# SIGCHLD delivered again and again while the cluster stops (as several
# children exiting at once deliver it): the stop's answer still reaches us
# whole (a second reaping after the last child shut the master down under
# the answer: curl read an empty reply).
( while kill -CHLD "$CL_MASTER_PID" 2>/dev/null; do :; done ) &
CL_OWN_PIDS=$!
cluster_stop 30
kill "$CL_OWN_PIDS" 2>/dev/null || true
wait "$CL_OWN_PIDS" 2>/dev/null || true
CL_OWN_PIDS=
echo "test-metrics: ok (promtool and prometheus_client read $(grep -vc '^#' "$dir/cluster.prom") series; $bots bots, $calls commands, as counted)"
