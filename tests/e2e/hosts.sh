#!/bin/sh
# A server's "host" as the docs spell it (docs/cluster.md, "The config
# file"): net on the IPv6 loopback ::1. It must listen there, and a client
# over IPv6 logs in and plays (tests/e2e/client_abuse.py twice); net took
# IPv4 literals only and exited with "bad host ::1", so the cluster was
# never ready. Skipped, saying so, where ::1 cannot be bound.
set -eu
cd "$(dirname "$0")/../.."
. scripts/cluster-lib.sh

py=/usr/bin/python3
$py -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null ||
    { echo "test-hosts: SKIP: no IPv6 loopback (::1) here"; exit 0; }
cl_test test-hosts "$B/e2e/hosts"
CL_NET_JSON='"host": "::1", '
cluster_start "$dir" "$dir/players.sqlite"
cluster_wait_ready 20
port=${CL_NET#*:}
grep -q "^\[net\] clients on ::1:$port " "$CL_LOG" || fail "net does not say it listens on ::1:$port"
$py tests/e2e/client_abuse.py twice ::1 "$port" > "$dir/twice.out" 2>&1 ||
    { cat "$dir/twice.out"; fail "a client over IPv6 could not play through net on ::1"; }
cluster_stop 30
echo "test-hosts: ok (net on ::1: a client over IPv6 logged in and played)"
