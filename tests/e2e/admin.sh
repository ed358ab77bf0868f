#!/bin/sh
# The master's admin web as an attacker would try it (docs/security.md,
# "The admin web"): POST /stop without the credential, with a wrong one,
# cross-site (Origin), to another Host (DNS rebinding), as a plain form or
# text POST, and with no admin_token in the config: each is refused with
# its reason and the cluster keeps running. A 32 MiB header line, a 256 MiB
# body and a request that never ends are cut off by the HTTP limits while
# the master keeps answering. The master refuses to listen off loopback
# with the secret or token examples/cluster.json ships with, or with no
# secret, and says how to make one. Last, the real stop with the credential.
set -eu
cd "$(dirname "$0")/../.."
. scripts/cluster-lib.sh

cl_test test-admin "$B/e2e/admin"
py=/usr/bin/python3
cluster_start "$dir" "$dir/players.sqlite"
cluster_wait_ready 20
port=${CL_WEB##*:}

# The slow client runs meanwhile: the master must close it by itself.
$py tests/e2e/http_abuse.py slow 127.0.0.1 "$port" > "$dir/slow.out" 2>&1 &
slow=$!
CL_OWN_PIDS=$slow

# post NAME WANT_CODE CURL_ARGS...: a POST /stop that must be refused.
post() {
    what=$1 want=$2
    shift 2
    code=$(curl -s -o "$dir/$what.json" -D "$dir/$what.headers" -w '%{http_code}' --max-time 5 \
        -X POST "$@" "$CL_WEB/stop") || fail "$what: curl failed"
    [ "$code" = "$want" ] || fail "$what: POST /stop answered $code, not $want ($(cat "$dir/$what.json"))"
    # The status line's reason phrase is the code's (RFC 9110, 15).
    case $want in
    400) reason='Bad Request' ;; 401) reason=Unauthorized ;; 403) reason=Forbidden ;;
    415) reason='Unsupported Media Type' ;; *) fail "$what: no reason phrase known for $want" ;;
    esac
    head -n 1 "$dir/$what.headers" | grep -qx "HTTP/1.1 $want $reason.\{0,1\}" ||
        fail "$what: the status line is '$(head -n 1 "$dir/$what.headers")', not 'HTTP/1.1 $want $reason'"
    grep -q '"error"' "$dir/$what.json" || fail "$what: no reason in the answer"
    cl_status_has '"state": "running", "ready": true' || fail "$what: the cluster did not survive it"
}
json='Content-Type: application/json'
auth="Authorization: Bearer $CL_ADMIN_TOKEN"
post no-credential 401 -H "$json" --data '{}'
post wrong-credential 401 -H "$json" -H "Authorization: Bearer ${CL_ADMIN_TOKEN}x" --data '{}'
post wrong-scheme 401 -H "$json" -H "Authorization: Basic $CL_ADMIN_TOKEN" --data '{}'
# What a page on another site can make a browser send without a preflight:
# a form (urlencoded, multipart) or text/plain, no Authorization header.
post form 415 --data 'x=1'
post multipart 415 -F 'x=1'
post text 415 -H 'Content-Type: text/plain' --data '{}'
post form-with-token 415 -H "$auth" --data 'x=1'
# Even with the credential: another Origin, a cross-site fetch, another Host.
post cross-origin 403 -H "$json" -H "$auth" -H 'Origin: http://evil.example' --data '{}'
post cross-site 403 -H "$json" -H "$auth" -H 'Sec-Fetch-Site: cross-site' --data '{}'
post rebinding 403 -H "$json" -H "$auth" -H "Host: evil.example:$port" --data '{}'
grep -q 'POST /stop refused (403): cross-site request' "$CL_LOG" || fail "the master did not log the refusals"
# A header the check reads given twice (the check reads one, a proxy may
# read the other): malformed, whatever each says.
TOKEN=$CL_ADMIN_TOKEN $py tests/e2e/http_abuse.py hosts 127.0.0.1 "$port" > "$dir/hosts.out" 2>&1 ||
    { cat "$dir/hosts.out"; fail "POST /stop with two Host headers was not refused"; }
cl_status_has '"state": "running", "ready": true' || fail "two Host headers stopped the cluster"
TOKEN=$CL_ADMIN_TOKEN $py tests/e2e/http_abuse.py lengths 127.0.0.1 "$port" > "$dir/lengths.out" 2>&1 ||
    { cat "$dir/lengths.out"; fail "POST /stop with two Content-Length headers was not refused"; }
cl_status_has '"state": "running", "ready": true' || fail "two Content-Length headers stopped the cluster"
post two-tokens 400 -H "$json" -H "$auth" -H "Authorization: Bearer x" --data '{}'
post two-origins 400 -H "$json" -H "$auth" -H "Origin: http://127.0.0.1:$port" \
    -H 'Origin: http://evil.example' --data '{}'

# A page that is not there, or a method a page does not take: JSON with the
# headers of every answer (nosniff, no framing, not cached), 405 with Allow.
# refusal WHAT WANT_CODE ALLOW CURL_ARGS...
refusal() {
    what=$1 want=$2 allow=$3
    shift 3
    code=$(curl -s -D "$dir/$what.head" -o "$dir/$what.json" -w '%{http_code}' --max-time 5 "$@") ||
        fail "$what: curl failed"
    [ "$code" = "$want" ] || fail "$what: answered $code, not $want"
    for h in 'Content-Type: application/json' 'X-Content-Type-Options: nosniff' \
        'X-Frame-Options: DENY' 'Cache-Control: no-store'; do
        grep -qi "^$h" "$dir/$what.head" || fail "$what: no '$h' in the answer: $(cat "$dir/$what.head")"
    done
    [ -z "$allow" ] || grep -qi "^Allow: $allow" "$dir/$what.head" || fail "$what: no 'Allow: $allow'"
    grep -q '"error"' "$dir/$what.json" || fail "$what: no reason in the answer"
}
refusal not-found 404 '' "$CL_WEB/nothing-here"
refusal get-stop 405 POST "$CL_WEB/stop"
refusal post-status 405 GET -X POST --data '' "$CL_WEB/status"
refusal post-script 405 GET -X POST --data '' "$CL_WEB/status.js"
refusal post-index 405 GET -X POST --data '' "$CL_WEB/index.html"
# GET /index.html is the status page, as GET / is, with its headers.
curl -sf -D "$dir/index.head" -o "$dir/index.html" --max-time 5 "$CL_WEB/index.html" ||
    fail "GET /index.html was not answered 200"
grep -qi '^Content-Type: text/html' "$dir/index.head" && grep -qi "^Content-Security-Policy: default-src 'none'" "$dir/index.head" &&
    grep -q '<script src="/status.js"' "$dir/index.html" ||
    fail "GET /index.html is not the status page: $(cat "$dir/index.head")"

# HTTP limits: nothing huge is read, nothing slow is kept.
# abuse MODE WHAT [LOGGED]: http_abuse.py MODE must pass (else WHAT failed),
# and the master must have logged LOGGED (a grep pattern) if given.
abuse() {
    $py tests/e2e/http_abuse.py "$1" 127.0.0.1 "$port" > "$dir/$1.out" 2>&1 ||
        { cat "$dir/$1.out"; fail "$2"; }
    [ -z "${3:-}" ] || grep -q "$3" "$CL_LOG" || fail "the master did not log: $3"
}
abuse header "a 32 MiB header line was not cut off"
abuse body "a 256 MiB body was not refused"
cl_status_has '"ready": true' || fail "the master stopped answering after the oversize requests"
wait "$slow" || { cat "$dir/slow.out"; fail "a request that never ends was not timed out"; }
CL_OWN_PIDS=
# A request that trickles in (each byte within the silence timeout) is
# dropped at its deadline, a client that does not read its answers at its
# input bound, and no more than 256 clients are kept at once.
abuse trickle "a request trickling in was kept open" \
    "web: a client's request took over 10 s to arrive: dropped"
abuse pipe "a pipelined request trickling in got more than its 10 s"
abuse deaf "a client that never reads its answers was fed without bound" \
    "web: a client has over [0-9]* bytes waiting (it does not read its answers): dropped"
abuse many "more than 256 clients at once were kept" \
    "web: 256 clients at once: one more dropped"
cl_status_has '"ready": true' || fail "the master stopped answering after the slow clients"

# A config without admin_token: nothing may change the cluster over HTTP.
set -- $("$CL_BIN/freeport" 2)
sed -e '/"admin_token"/d' -e "s/\"rootport\": [0-9]*, \"webport\": [0-9]*/\"rootport\": $1, \"webport\": $2/" \
    "$dir/cluster.json" > "$dir/notoken.json"
"$CL_BIN/master" -n "$dir/notoken.json" > "$dir/notoken.out" 2> "$dir/notoken.log" &
notoken=$!
CL_OWN_PIDS=$notoken
cl_poll 10 "the second master did not serve" curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$2/status"
code=$(curl -s -o "$dir/notoken.json.out" -w '%{http_code}' --max-time 5 -X POST -H "$json" -H "$auth" \
    --data '{}' "http://127.0.0.1:$2/stop")
[ "$code" = 403 ] && grep -q 'no admin_token' "$dir/notoken.json.out" ||
    fail "without admin_token POST /stop answered $code: $(cat "$dir/notoken.json.out")"
kill -TERM "$notoken"
wait "$notoken" || fail "the second master did not exit cleanly on SIGTERM"
CL_OWN_PIDS=

# The shipped secret and token, or none, off loopback: refused before
# listening, saying why and how to make one.
shipped_secret=$(sed -n 's/^ *"secret": "\(.*\)",$/\1/p' examples/cluster.json)
shipped_token=$(sed -n 's/^ *"admin_token": "\(.*\)",$/\1/p' examples/cluster.json)
[ -n "$shipped_secret" ] && [ -n "$shipped_token" ] || fail "cannot read examples/cluster.json's secret and token"
refused() {
    name=$1 host=$2 secret=$3 token=$4 why=$5
    sed -e "s/\"roothost\": \"127.0.0.1\"/\"roothost\": \"$host\"/" \
        -e "s|^  \"secret\": .*|  \"secret\": \"$secret\",|" \
        -e "s|^  \"admin_token\": .*|  \"admin_token\": \"$token\",|" "$dir/cluster.json" > "$dir/$name.json"
    rc=0
    timeout 10 "$CL_BIN/master" -n "$dir/$name.json" > /dev/null 2> "$dir/$name.log" || rc=$?
    [ "$rc" = 1 ] || fail "$name: the master exited with $rc, not 1 (see $dir/$name.log)"
    grep -q "refusing to listen on $host" "$dir/$name.log" && grep -q "$why" "$dir/$name.log" &&
        grep -q 'openssl rand -hex 32' "$dir/$name.log" ||
        fail "$name: the master did not say why: $(cat "$dir/$name.log")"
}
refused shipped-secret 0.0.0.0 "$shipped_secret" "$CL_ADMIN_TOKEN" "cluster secret is the one examples/cluster.json ships with"
refused shipped-token 10.1.2.3 "$CL_SECRET" "$shipped_token" "admin_token is the one examples/cluster.json ships with"
refused no-secret 0.0.0.0 "" "$CL_ADMIN_TOKEN" "there is no cluster secret"

# The other roots (db, gate) too: their ports admit whoever knows the
# secret. 10.1.2.3 is no address of this host: a server that tried to
# listen there would fail to bind, saying so instead.
server_refused() {
    name=$1 secret=$2 why=$3
    sed -e 's/"gate":  {"app": "gate",/"gate":  {"app": "gate", "host": "10.1.2.3",/' \
        -e "s|^  \"secret\": .*|  \"secret\": \"$secret\",|" "$dir/cluster.json" > "$dir/$name.json"
    grep -q '"host": "10.1.2.3"' "$dir/$name.json" || fail "$name: cannot move the gate in $dir/$name.json"
    rc=0
    timeout 10 "$CL_BIN/gate" gate "$dir/$name.json" > /dev/null 2> "$dir/$name.log" || rc=$?
    [ "$rc" = 1 ] || fail "$name: the gate exited with $rc, not 1 (see $dir/$name.log)"
    grep -q "refusing to listen on 10.1.2.3" "$dir/$name.log" && grep -q "$why" "$dir/$name.log" &&
        grep -q 'openssl rand -hex 32' "$dir/$name.log" ||
        fail "$name: the gate did not say why: $(cat "$dir/$name.log")"
}
server_refused gate-shipped-secret "$shipped_secret" "cluster secret is the one examples/cluster.json ships with"
server_refused gate-no-secret "" "there is no cluster secret"

# A port out of range or not an integer is a config error, never a port
# cut to 16 bits (70000 was served on 4464) or a free one (a string).
badport() {
    name=$1 from=$2 to=$3
    sed -e "s/$from/$to/" "$dir/cluster.json" > "$dir/$name.json"
    ! cmp -s "$dir/cluster.json" "$dir/$name.json" || fail "$name: sed changed nothing"
    rc=0
    timeout 10 "$CL_BIN/master" -n "$dir/$name.json" > /dev/null 2> "$dir/$name.log" || rc=$?
    [ "$rc" = 1 ] || fail "$name: the master exited with $rc, not 1 (see $dir/$name.log)"
    grep -q "must be a port: an integer from 0 to 65535" "$dir/$name.log" ||
        fail "$name: the master did not say why: $(cat "$dir/$name.log")"
}
badport webport-70000 '"webport": [0-9]*' '"webport": 70000'
badport webport-string '"webport": [0-9]*' '"webport": "8080"'
badport webport-negative '"webport": [0-9]*' '"webport": -1'
badport netport-70000 '"netport": [0-9]*' '"netport": 70000'

# A key the config does not have (a misspelt "secret", a server's
# "rootport") is an error naming it, never a default taken in silence.
badkey() {
    name=$1 from=$2 to=$3 says=$4
    sed -e "s/$from/$to/" "$dir/cluster.json" > "$dir/$name.json"
    ! cmp -s "$dir/cluster.json" "$dir/$name.json" || fail "$name: sed changed nothing"
    rc=0
    timeout 10 "$CL_BIN/master" -n "$dir/$name.json" > /dev/null 2> "$dir/$name.log" || rc=$?
    [ "$rc" = 1 ] || fail "$name: the master exited with $rc, not 1 (see $dir/$name.log)"
    grep -qF "master: $dir/$name.json: $says" "$dir/$name.log" ||
        fail "$name: the master did not say '$says': $(cat "$dir/$name.log")"
}
badkey top-level '"secret":' '"secrett":' 'unknown key "secrett"'
badkey master-rootport-0 '"master": {\(.*\)"rootport": [0-9]*' '"master": {\1"rootport": 0' \
    'master.rootport must be 1 to 65535'
badkey master '"webport":' '"webprot":' 'master: unknown key "webprot"'
badkey server '"db":    {"app": "db",   "rootport":' '"db": {"app": "db", "rootprot":' \
    'servers.db: unknown key "rootprot"'
badkey remote '{"rootname": "db"}' '{"rootname": "db", "port": 1}' \
    'servers.gate.remoteport[0]: unknown key "port"'
# A value of the wrong type, or a string longer than the server keeps, is
# an error too, never a default (a number for the secret was no secret) or
# a string cut short (a long admin_token was cut: the real one refused).
badkey secret-number '"secret": "[0-9a-f]*"' '"secret": 5' 'secret must be a string'
badkey token-too-long '"admin_token": "[0-9a-f]*"' "\"admin_token\": \"$(printf '%0200d' 0)\"" \
    'admin_token is too long (at most 127 bytes)'
badkey host-number '"roothost": "127.0.0.1"' '"roothost": 1' 'master.roothost must be a string'
badkey app-number '"app": "gate"' '"app": 1' 'servers.gate.app must be a string'
# An app that is not one of the cluster's programs is refused on loading,
# not left for the master to fail running (exit 127, never ready).
badkey app-unknown '"app": "gate"' '"app": "gat"' 'servers.gate.app: no app "gat"'
# What net could not hold is refused with the file, before anything starts:
# max_clients x max_inflight at max_outstanding (net alone found it, once
# the master had started every other server: never ready).
badkey net-limits '"netport": \([0-9]*\), ' '"netport": \1, "clients": {"max_clients": 16384}, ' \
    'servers.net.clients: max_clients x max_inflight (65536) must be less than the calls one link may have in flight (max_outstanding 65536)'
# An entry without what its app needs (a root's rootport, the roots it
# calls, the PB ports a Twisted node registers on) is refused with the file
# and the key before anything starts; the server alone found it, once the
# master had started the others, and the cluster was never ready.
badkey net-no-gate '"remoteport": \[{"rootname": "gate"}\]}' '"remoteport": []}' \
    'servers.net.remoteport: app "net" needs the root "gate" ({"rootname": "gate"})'
badkey game-no-db '"game1": {"app": "game", "remoteport": \[{"rootname": "gate"}, {"rootname": "db"}\]}' \
    '"game1": {"app": "game", "remoteport": [{"rootname": "gate"}]}' \
    'servers.game1.remoteport: app "game" needs the root "db" ({"rootname": "db"})'
badkey db-no-rootport '"app": "db",   "rootport": [0-9]*' '"app": "db"' \
    'servers.db: app "db" is a root: it needs a "rootport" (1 to 65535)'
badkey pygame-no-pbport '"game2": {"app": "game"' '"game2": {"app": "pygame"' \
    'servers.game2: app "pygame" registers over Perspective Broker: master needs a "pbport"'
# A key given twice (a server's entry copied and left unrenamed) is an
# error with its line, never the last one taken in silence (one game1).
sed '/^ *"game1":/p' "$dir/cluster.json" > "$dir/dup.json"
line=$(grep -n '^ *"game1":' "$dir/dup.json" | sed -n '2s/:.*//p')
[ -n "$line" ] || fail "dup: sed did not copy game1's entry"
rc=0
timeout 10 "$CL_BIN/master" -n "$dir/dup.json" > /dev/null 2> "$dir/dup.log" || rc=$?
[ "$rc" = 1 ] && grep -qF "master: $dir/dup.json:$line: duplicate object key" "$dir/dup.log" ||
    fail "a server given twice: exit $rc, $(cat "$dir/dup.log")"
# A file that cannot be read says why, with no line number.
rc=0
timeout 10 "$CL_BIN/master" -n "$dir/missing.json" > /dev/null 2> "$dir/missing.log" || rc=$?
[ "$rc" = 1 ] && grep -qF "$dir/missing.json: unable to open" "$dir/missing.log" &&
    ! grep -q ":-1:" "$dir/missing.log" ||
    fail "a missing config: exit $rc, $(cat "$dir/missing.log")"

# A web port in use (the running net's; a free root port): exit 1 saying why.
freeroot=$("$CL_BIN/freeport" 1) || fail "freeport failed"
sed -e "s/\"webport\": [0-9]*/\"webport\": ${CL_NET##*:}/" \
    -e "s/\"master\": {\"roothost\": \"127.0.0.1\", \"rootport\": [0-9]*/\"master\": {\"roothost\": \"127.0.0.1\", \"rootport\": $freeroot/" \
    "$dir/cluster.json" > "$dir/webinuse.json"
rc=0
timeout 10 "$CL_BIN/master" -n "$dir/webinuse.json" > /dev/null 2> "$dir/webinuse.log" || rc=$?
[ "$rc" = 1 ] && grep -q "cannot serve http on 127.0.0.1:${CL_NET##*:}: Address already in use" "$dir/webinuse.log" ||
    fail "a web port in use: exit $rc, $(cat "$dir/webinuse.log")"

# A second POST /stop while the first is under way is answered 409 "already
# stopping", and the first still gets its report: net is held (SIGSTOP), so
# the stop waits on its first tier until the second request was answered.
net_pid=$(curl -sf --max-time 5 "$CL_WEB/status" | cl_flat |
    grep -o '"name": "net", "app": "net", "registered": true, "pid": [0-9]*' | sed 's/.*: //')
[ -n "$net_pid" ] || fail "no pid for net in /status"
kill -STOP "$net_pid"
(
    trap 'kill -CONT "$net_pid"' EXIT
    # (not /status: it would wait on the held net's own figures)
    held_until=$(cl_deadline 10)
    until grep -q '^\[master\] stopping net$' "$CL_LOG"; do
        cl_past "$held_until" && exit 1
        sleep 0.05
    done
    cl_admin_post stop -o "$dir/stop2.body" -w '%{http_code}' > "$dir/stop2.code" 2>&1
) &
second=$!
CL_OWN_PIDS=$second
cluster_stop 30
wait "$second" || true
CL_OWN_PIDS=
[ "$(cat "$dir/stop2.code")" = 409 ] && grep -q '"error": *"already stopping"' "$dir/stop2.body" ||
    fail "a second POST /stop during the stop: $(cat "$dir/stop2.code") $(cat "$dir/stop2.body" 2>/dev/null)"
echo "test-admin: ok (10 refused stops, 404 and 405 answers, header/body/slow limits, no-token config, 5 refused listens, 4 bad ports, 4 unknown keys, 4 mistyped or overlong values, an unknown app, net limits past max_outstanding, 4 entries without what their app needs, a key given twice, a missing file, a web port in use; then the stop with the credential, a second stop during it answered 409)"
