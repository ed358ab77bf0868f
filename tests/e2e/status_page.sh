#!/bin/sh
# The status page in a real headless browser (Debian's chromium).
#
# 1. A page left open follows the cluster in place: its script logs what the
#    graph shows (console "ember-graph NAME STATE") and how many charts have
#    points; game2 is stopped, the graph must show it lost, it is started
#    again, the graph must show it live again.
# 2. The rendered DOM (--dump-dom): the graph has a box per server, all live,
#    and an edge per registration; every server has a chart with points;
#    the method table counts the bots' logins and follows them.
# 3. Two servers whose names are markup register with the master: the page
#    shows the names as text, no element they carry exists and no script
#    of theirs ran (the title is unchanged).
# 4. A screenshot while bots play: $B/e2e/status/status.png.
set -eu
cd "$(dirname "$0")/../.."
. scripts/cluster-lib.sh

cl_test test-status-page "$B/e2e/status"

# make test installs chromium (scripts/deps.sh test).
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || {
    echo "test-status-page: FAIL: chromium is not installed (make deps, or apt-get install chromium)" >&2
    exit 1
}

profile=$(mktemp -d)
trap 'cluster_kill; rm -rf "$profile" "$profile.live"' EXIT INT TERM

cluster_start "$dir" "$dir/players.sqlite"
cluster_wait_ready 20

chrome() {
    timeout 90 "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --disable-dev-shm-usage \
        --user-data-dir="$profile" "$@" 2>>"$dir/chromium.log"
}

# ---- 1. an open page follows a server that leaves and comes back ----------
mkdir -p "$profile.live"
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --disable-dev-shm-usage \
    --user-data-dir="$profile.live" --remote-debugging-port=0 --enable-logging=stderr --v=0 \
    --window-size=1280,800 "$CL_WEB/" > /dev/null 2> "$dir/live.log" &
live=$!
CL_OWN_PIDS=$live
# say WHAT: the page logged WHAT (a console line) since line $mark of its log.
said() { tail -n "+$mark" "$dir/live.log" | grep -q "CONSOLE.*\"$1\""; }
mark=1
cl_poll 30 "the open page never drew game2 live (see $dir/live.log)" said 'ember-graph game2 live'
cl_bots "$dir/bots0.out" -n 4 -r 2 -m 3 -p live -t 20
cl_poll 20 "the open page drew no chart with points" said 'ember-charts [1-9]'
game2=$(curl -sf --max-time 5 "$CL_WEB/status" | cl_flat |
    grep -o '"name": "game2", "app": "game", "registered": true, "pid": [0-9]*' | sed 's/.*: //')
[ -n "$game2" ] || fail "no pid for game2 in /status"
mark=$(($(wc -l < "$dir/live.log") + 1))
kill -TERM "$game2"
cl_poll 20 "the open page did not show game2 lost after it stopped" said 'ember-graph game2 lost'
mark=$(($(wc -l < "$dir/live.log") + 1))
"$CL_BIN/game" game2 "$dir/cluster.json" 2>> "$CL_LOG" &
CL_OWN_PIDS="$live $!"
cl_poll 20 "the open page did not show game2 live again after it came back" \
    said 'ember-graph game2 live'
cl_poll 20 "the cluster is not ready again" cl_status_has '"ready": true'
kill -TERM "$live"
wait "$live" 2>/dev/null || true
CL_OWN_PIDS=${CL_OWN_PIDS#"$live "}

# ---- 3. servers named with markup ------------------------------------------
evil1='"><img src=x onerror=alert(1)><b x="'
evil2="<img src=x onerror=\"document.title='pwned'\">"
set -- $("$CL_BIN/freeport" 2)
# JSON keys: the names with their quotes escaped.
key1=$(printf '%s' "$evil1" | sed 's/"/\\"/g')
key2=$(printf '%s' "$evil2" | sed 's/"/\\"/g')
# (through the environment: awk -v would undo the escapes)
K1=$key1 K2=$key2 awk -v p1="$1" -v p2="$2" -v d="$dir" '
    BEGIN { k1 = ENVIRON["K1"]; k2 = ENVIRON["K2"] }
    { print }
    /"servers": \{/ {
        printf "    \"%s\": {\"app\": \"db\", \"rootport\": %s, \"db\": \"%s/evil1.sqlite\"},\n", k1, p1, d
        printf "    \"%s\": {\"app\": \"db\", \"rootport\": %s, \"db\": \"%s/evil2.sqlite\"},\n", k2, p2, d
    }' "$dir/cluster.json" > "$dir/evil.json"
"$CL_BIN/db" "$evil1" "$dir/evil.json" 2>> "$dir/evil.log" &
CL_OWN_PIDS="$CL_OWN_PIDS $!"
"$CL_BIN/db" "$evil2" "$dir/evil.json" 2>> "$dir/evil.log" &
CL_OWN_PIDS="$CL_OWN_PIDS $!"
strangers() { [ "$(curl -sf --max-time 2 "$CL_WEB/status" | grep -c '"configured": false')" = 2 ]; }
cl_poll 20 "the markup-named servers did not register (see $dir/evil.log)" strangers

# ---- 2. the rendered DOM ------------------------------------------------------
cl_bots "$dir/bots.out" -n 4 -r 2 -m 2 -p web -t 20
chrome --virtual-time-budget=6000 --dump-dom "$CL_WEB/" > "$dir/status.dom.html" ||
    fail "chromium --dump-dom failed (see $dir/chromium.log)"
dom=$dir/status.dom.html
# The method tables, as before: one box per server.
grep -q 'id="tree"><li class="node" data-name="master"' "$dom" ||
    fail "the page did not render the cluster tree (see $dom)"
grep -q 'all connected' "$dom" || fail "the page does not say the cluster is connected"
for n in db gate game1 game2 net; do
    grep -q "<li class=\"node\" data-name=\"$n\"><div class=\"box\"><span class=\"name\">$n</span>" "$dom" ||
        fail "the rendered page does not list $n"
    # The graph: a live box per server, and its chart with points.
    grep -q "<g data-name=\"$n\" class=\"node live\" data-state=\"live\"" "$dom" ||
        fail "the graph has no live box for $n (see $dom)"
    grep -Eq "<div class=\"chart\" data-name=\"$n\" data-points=\"[1-9][0-9]*\"" "$dom" ||
        fail "no chart with points for $n"
done
grep -q '<g data-name="master" class="node live"' "$dom" || fail "the graph has no box for the master"
# An arrow per registration: every server to the master, and to its roots.
for e in db→master gate→master gate→db game1→master game1→gate game1→db game2→master \
         game2→gate game2→db net→master net→gate; do
    grep -q "<path marker-end=\"url(#arrow)\" data-key=\"$e\"[^>]*class=\"edge live\"" "$dom" ||
        fail "the graph has no live edge $e"
done
grep -q 'class="calls" d="M [0-9.]* [0-9.]* L' "$dom" || fail "no calls/s line is drawn"
# The markup-named servers: drawn and listed as text, nothing of theirs ran.
grep -q '<title>ember cluster</title>' "$dom" || fail "a script changed the title"
grep -q '<img' "$dom" && fail "the page has an <img> element: a server's name was taken as markup"
grep -q '<b x=' "$dom" && fail "the page has a <b> element: a server's name was taken as markup"
grep -qF '&lt;img src=x onerror=alert(1)&gt;&lt;b x="' "$dom" ||
    fail "the page does not show the markup name as text"
grep -qF "&lt;img src=x onerror=\"document.title='pwned'\"&gt;" "$dom" ||
    fail "the page does not show the second markup name as text"
grep -q 'not in the config' "$dom" || fail "the graph does not flag the servers that are not in the config"
# The counters are the servers' own: 4 + 4 bots logged in once each...
login_calls() { grep -o 'db\.Db\.login (301)</td><td>[0-9]*<' "$1" | head -n 1 | sed 's/.*<td>\([0-9]*\)</\1/'; }
[ "$(login_calls "$dom")" = 8 ] ||
    fail "the page shows $(login_calls "$dom") db.Db.login calls, not the 8 the bots made"
# ... and follow the cluster: 2 more bots, 10 logins on the next render.
cl_bots "$dir/bots2.out" -n 2 -r 2 -m 1 -p web2 -t 20
chrome --virtual-time-budget=4000 --dump-dom "$CL_WEB/" > "$dir/status2.dom.html" ||
    fail "chromium --dump-dom failed (see $dir/chromium.log)"
[ "$(login_calls "$dir/status2.dom.html")" = 10 ] ||
    fail "after 2 more bots the page shows $(login_calls "$dir/status2.dom.html") db.Db.login calls, not 10"

# ---- 4. a screenshot while bots play -------------------------------------------
"$CL_BIN/bot" -n 20 -r 4 -m 4000 -p shot -t 120 "$CL_NET" > "$dir/bots3.out" 2>&1 &
CL_OWN_PIDS="$CL_OWN_PIDS $!"
chrome --window-size=1280,800 --virtual-time-budget=8000 --screenshot="$dir/status.png" "$CL_WEB/" >/dev/null ||
    fail "chromium --screenshot failed"
[ -s "$dir/status.png" ] || fail "no screenshot"

cluster_stop 30 game2-was-stopped
echo "test-status-page: ok (graph, charts, a server that left and came back, markup names as text; screenshot $dir/status.png)"
