#!/bin/sh
# The status page in a real headless browser (Debian's chromium): the
# rendered DOM must list every registered server; a screenshot is saved as
# $B/e2e/status/status.png.
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
trap 'cluster_kill; rm -rf "$profile"' EXIT INT TERM

cluster_start "$dir" "$dir/players.sqlite"
cluster_wait_ready 20
cl_bots "$dir/bots.out" -n 4 -r 2 -m 2 -p web -t 20

chrome() {
    timeout 90 "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --disable-dev-shm-usage \
        --user-data-dir="$profile" --virtual-time-budget=4000 "$@" 2>>"$dir/chromium.log"
}

chrome --dump-dom "$CL_WEB/" > "$dir/status.dom.html" || fail "chromium --dump-dom failed (see $dir/chromium.log)"
# The script fetched /status and drew the tree: one box per server.
grep -q 'id="tree"><li class="node" data-name="master"' "$dir/status.dom.html" ||
    fail "the page did not render the cluster tree (see $dir/status.dom.html)"
grep -q 'all connected' "$dir/status.dom.html" || fail "the page does not say the cluster is connected"
for n in db gate game1 game2 net; do
    grep -q "<li class=\"node\" data-name=\"$n\"><div class=\"box\"><span class=\"name\">$n</span>" \
        "$dir/status.dom.html" || fail "the rendered page does not list $n"
done
# The counters are the servers' own: 4 bots logged in once each...
login_calls() { grep -o 'db\.Db\.login (301)</td><td>[0-9]*<' "$1" | sed 's/.*<td>\([0-9]*\)</\1/'; }
[ "$(login_calls "$dir/status.dom.html")" = 4 ] ||
    fail "the page shows $(login_calls "$dir/status.dom.html") db.Db.login calls, not the 4 the bots made"
# ... and follow the cluster: 2 more bots, 6 logins on the next render.
cl_bots "$dir/bots2.out" -n 2 -r 2 -m 1 -p web2 -t 20
chrome --dump-dom "$CL_WEB/" > "$dir/status2.dom.html" || fail "chromium --dump-dom failed (see $dir/chromium.log)"
[ "$(login_calls "$dir/status2.dom.html")" = 6 ] ||
    fail "after 2 more bots the page shows $(login_calls "$dir/status2.dom.html") db.Db.login calls, not 6"
chrome --window-size=1280,1000 --screenshot="$dir/status.png" "$CL_WEB/" >/dev/null ||
    fail "chromium --screenshot failed"
[ -s "$dir/status.png" ] || fail "no screenshot"

cluster_stop 30
echo "test-status-page: ok (screenshot $dir/status.png)"
