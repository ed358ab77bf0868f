# cluster-lib.sh — start, watch and stop the example cluster on loopback.
# Sourced by scripts/demo.sh and tests/e2e/*.sh (POSIX sh).
#
#   cl_test NAME DIR            a test's start: fresh DIR, fail() says NAME,
#                               cluster_kill at exit
#   cluster_start DIR DBPATH    free ports, DIR/cluster.json, master started
#   cluster_start_alone DIR DBPATH  the same with master -n, then every
#                               server of the config started on its own
#   cluster_wait_ready SECS     poll /status until every server registered
#   cluster_stop SECS           POST /stop (with the admin credential), then
#                               every process must be gone
#   cl_admin_post PATH ARGS...  an admin POST with the credential, as curl
#                               would send it (ARGS: more curl options)
#   cluster_kill                the trap: ends what we started, by pid
#   cl_poll SECS WHY CMD...     run CMD until it succeeds; cl_die WHY after SECS
#                               (times $EMBER_TEST_SLOW when set: the tests'
#                               slowdown under sanitizers, tests/common/loop.h)
#   cl_bots OUT ARGS...         run the bots against net; fail() if they fail
#   cl_db_players DBPATH        NAME|X|Y of every player, by name (sqlite3,
#                               or db --dump without it or with CL_NO_SQLITE3)
#   cl_check_positions REC DB   every bot's record (bot -R REC) matches DB
#
# The config always carries a cluster secret: $CL_SECRET, or a random one
# drawn per run, and an admin credential for POST /stop: $CL_ADMIN_TOKEN, or
# a random one. The gate serves its own metrics (config "metricsport") on
# $CL_GATE_METRICS. $CL_TLS_JSON, if set, is put in the config as it is (a
# '"tls": {...},' line); $CL_NET_JSON likewise into net's entry (e.g.
# '"clients": {...},').
#
# With CL_MIXED=1 the cluster runs mixed (docs/cluster.md, "A mixed
# cluster"): game2 is the Twisted node examples/pygame/game.py (app
# "pygame"), and master, db and gate listen for it on a "pbport" each.
#
# Sets CL_WEB (http://127.0.0.1:PORT), CL_NET (127.0.0.1:PORT), CL_MASTER_PID,
# CL_PIDS (the master's and every server's pid), CL_LOG, CL_STOP_REPORT;
# cluster_start_alone CL_ALONE ("NAME:PID ..." of the servers it started).
# CL_OWN_PIDS: other processes a script started, ended by cluster_kill too.

: "${B:=build}"
CL_BIN=$B/bin
CL_MASTER_PID=
CL_PIDS=
CL_OWN_PIDS=
CL_TEST=cluster

cl_say() { printf '%s\n' "$*"; }
cl_die() {
    printf 'cluster: %s\n' "$*" >&2
    if [ -n "${CL_LOG:-}" ] && [ -f "$CL_LOG" ]; then
        printf -- '--- last lines of %s ---\n' "$CL_LOG" >&2
        tail -n 30 "$CL_LOG" >&2
    fi
    exit 1
}

fail() { printf '%s: FAIL: %s\n' "$CL_TEST" "$*" >&2; cl_die "$*"; }

cl_test() {
    CL_TEST=$1
    dir=$2
    rm -rf "$dir"
    mkdir -p "$dir"
    trap cluster_kill EXIT INT TERM
}

# 32 random bytes in hex: a fresh cluster secret.
cl_secret() { head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n'; }

# JSON on one line with single spaces, for grep.
cl_flat() { tr -d '\n' | tr -s ' '; }

# Seconds since the epoch with a fraction, for deadlines and timings.
cl_now() { date +%s.%N; }
cl_past() { awk -v a="$(cl_now)" -v b="$1" 'BEGIN { exit !(a > b) }'; }
cl_deadline() { awk -v a="$(cl_now)" -v s="$1" 'BEGIN { printf "%.3f", a + s }'; }
cl_since() { awk -v a="$(cl_now)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }

# cluster_start DIR DBPATH [MASTER_FLAGS]
cluster_start() {
    dir=$1
    db=$2
    cl_mflags=${3:-}
    mkdir -p "$dir"
    CL_LOG=$dir/cluster.log
    # Ask the kernel for free ports: master root, web, db, gate, net, and
    # the gate's metrics.
    # With CL_MIXED, three more: the PB ports of master, db and gate.
    cl_nports=6
    [ -z "${CL_MIXED:-}" ] || cl_nports=9
    set -- $("$CL_BIN/freeport" $cl_nports) || cl_die "freeport failed"
    [ $# -eq $cl_nports ] || cl_die "freeport gave $# ports"
    cl_game2='"app": "game"'
    cl_mpb= cl_dbpb= cl_gatepb=
    if [ -n "${CL_MIXED:-}" ]; then
        cl_game2='"app": "pygame"'
        cl_mpb=", \"pbport\": $7" cl_dbpb=", \"pbport\": $8" cl_gatepb=", \"pbport\": $9"
    fi
    : "${CL_SECRET:=$(cl_secret)}"
    : "${CL_ADMIN_TOKEN:=$(cl_secret)}"
    [ -n "$CL_SECRET" ] && [ -n "$CL_ADMIN_TOKEN" ] || cl_die "no random secret from /dev/urandom"
    cat > "$dir/cluster.json" <<JSON
{
  "master": {"roothost": "127.0.0.1", "rootport": $1, "webport": $2$cl_mpb},
  "secret": "$CL_SECRET",
  "admin_token": "$CL_ADMIN_TOKEN",
  ${CL_TLS_JSON:-}
  "db": "$db",
  "servers": {
    "db":    {"app": "db",   "rootport": $3$cl_dbpb},
    "gate":  {"app": "gate", "rootport": $4, "remoteport": [{"rootname": "db"}], "metricsport": $6$cl_gatepb},
    "game1": {"app": "game", "remoteport": [{"rootname": "gate"}, {"rootname": "db"}]},
    "game2": {$cl_game2, "remoteport": [{"rootname": "gate"}, {"rootname": "db"}]},
    "net":   {"app": "net",  "netport": $5, ${CL_NET_JSON:-}"remoteport": [{"rootname": "gate"}]}
  }
}
JSON
    CL_WEB=http://127.0.0.1:$2
    CL_NET=127.0.0.1:$5
    CL_GATE_METRICS=http://127.0.0.1:$6/metrics
    # shellcheck disable=SC2086  # no flags, or -n
    "$CL_BIN/master" $cl_mflags "$dir/cluster.json" > "$dir/master.out" 2> "$CL_LOG" &
    CL_MASTER_PID=$!
    CL_PIDS=$CL_MASTER_PID
}

# Firefly's servers can be started one by one: the master with -n (it
# starts nothing and waits), then each server of the config as a process of
# our own — `APP NAME CONFIG`, net, gate, game, db: the reverse of the
# master's order, so each must connect and reconnect to its roots on its own.
cluster_start_alone() {
    cluster_start "$1" "$2" -n
    CL_ALONE=
    for cl_s in $(sed -n 's/^ *"\([A-Za-z0-9_-]*\)": *{"app": *"\([a-z]*\)".*/\1:\2/p' \
        "$dir/cluster.json" | sort -t: -k2,2 -r); do
        cl_name=${cl_s%%:*}
        "$CL_BIN/${cl_s#*:}" "$cl_name" "$dir/cluster.json" >> "$dir/$cl_name.out" 2>> "$CL_LOG" &
        CL_ALONE="$CL_ALONE $cl_name:$!"
        CL_PIDS="$CL_PIDS $!"
    done
    [ -n "$CL_ALONE" ] || cl_die "no server in $dir/cluster.json"
}

# cl_pid NAME: the pid of server NAME in /status.
cl_pid() {
    curl -sf --max-time 5 "$CL_WEB/status" | cl_flat |
        grep -o "\"name\": \"$1\", \"app\": \"[a-z]*\", \"registered\": true, \"pid\": [0-9]*" |
        sed 's/.*: //'
}

# The pids the cluster reports (master and servers).
cl_status_pids() {
    curl -sf --max-time 5 "$CL_WEB/status" | sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p' | sort -u
}

cluster_wait_ready() {
    cl_t0=$(cl_now)
    until=$(cl_deadline "$1")
    while :; do
        kill -0 "$CL_MASTER_PID" 2>/dev/null || cl_die "the master exited while starting"
        st=$(curl -sf --max-time 2 "$CL_WEB/status" 2>/dev/null || true)
        if printf '%s' "$st" | grep -q '"ready": *true'; then
            break
        fi
        cl_past "$until" && cl_die "not every server registered within $1 s; last /status: $st"
        sleep 0.05
    done
    names=$(printf '%s\n' "$st" | sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' | tr '\n' ' ')
    CL_PIDS=$(printf '%s\n%s\n' "$CL_MASTER_PID" "$(printf '%s\n' "$st" |
        sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p')" | sort -u | tr '\n' ' ')
    cl_say "cluster ready in $(cl_since "$cl_t0") s: $names"
    sec=$(printf '%s' "$st" | cl_flat | grep -o '"security": {[^}]*}')
    case $sec in
    *'"secret": true'*) auth="authenticated: every server proved the cluster secret (HMAC-SHA256 challenge-response, both ways)" ;;
    *) auth="NOT authenticated: no cluster secret" ;;
    esac
    case $sec in
    *'"tls": true'*) auth="$auth, over TLS" ;;
    *) auth="$auth, over plain TCP" ;;
    esac
    cl_say "$auth"
    cl_say "status page: $CL_WEB/  (pids: $CL_PIDS)"
}

cl_poll() {
    cl_slow=${EMBER_TEST_SLOW:-1}
    case $cl_slow in '' | *[!0-9]* | 0) cl_slow=1 ;; esac
    cl_until=$(cl_deadline $(($1 * cl_slow)))
    cl_why=$2
    shift 2
    until "$@"; do
        cl_past "$cl_until" && fail "$cl_why"
        sleep 0.05
    done
}

# True when /status (on one line) matches the grep pattern.
cl_status_has() { curl -sf --max-time 2 "$CL_WEB/status" | cl_flat | grep -q "$1"; }

cl_bots() {
    cl_out=$1
    shift
    "$CL_BIN/bot" "$@" "$CL_NET" > "$cl_out" 2>&1 || { cat "$cl_out"; fail "bots failed (see $cl_out)"; }
}

# The players in the database, read after the cluster stopped.
cl_db_players() {
    if [ -z "${CL_NO_SQLITE3:-}" ] && command -v sqlite3 >/dev/null 2>&1; then
        sqlite3 -readonly "$1" "SELECT name, x, y FROM players ORDER BY name"
    else
        "$CL_BIN/db" --dump "$1"
    fi
}

# cl_check_positions REC DBPATH: for every bot in REC (bot -R), the database
# holds its last acknowledged position, and no player at all when its login
# was never acknowledged. A command executed whose reply was lost would
# differ: the check names it. Prints a summary; fail() on any mismatch.
cl_check_positions() {
    [ -s "$1" ] || fail "no bot record $1"
    players=$(cl_db_players "$2") || fail "cannot read the players in $2"
    printf '%s\n' "$players" | awk -F'|' '{ print "db", $1, $2, $3 }' |
        cat - "$1" | awk '
        $1 == "db" { have[$2] = 1; x[$2] = $3; y[$2] = $4; next }
        {
            n++; name = $1; unans = $5
            if (unans != "-") cut++
            if (unans == "move") moves++
            if ($2 == 0) {
                if (name in have) {
                    printf "%s: login never acknowledged (unanswered: %s), yet the database has the player at (%d,%d): executed, its reply lost\n", name, unans, x[name], y[name]
                    bad++
                }
                next
            }
            if (!(name in have)) { printf "%s: player %s acknowledged, not in the database\n", name, $2; bad++; next }
            if (x[name] == $3 && y[name] == $4) { ok++; next }
            bad++
            if (($6 != 0 || $7 != 0) && x[name] == $3 + $6 && y[name] == $4 + $7)
                printf "%s: last acknowledged at (%d,%d), the database has (%d,%d): the unanswered %s was executed, its reply lost\n", name, $3, $4, x[name], y[name], unans
            else
                printf "%s: last acknowledged at (%d,%d), the database has (%d,%d) (unanswered: %s)\n", name, $3, $4, x[name], y[name], unans
        }
        END {
            printf "%d bots checked against the database: %d at their last acknowledged position, %d cut off with a command unanswered (%d a move), %d mismatches\n", n, ok, cut, moves, bad
            exit bad != 0 || n == 0
        }' || fail "the database does not match what the bots were told (see above)"
}

# True while pid runs (a zombie child of ours counts as gone: reap it).
cl_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true)
    [ "$state" != "Z" ]
}

# cl_admin_post PATH [CURL_ARGS...]: POST $CL_WEB/PATH the way the admin
# server requires for anything that changes the cluster: the credential in
# an Authorization header and a JSON body (docs/security.md).
cl_admin_post() {
    cl_path=$1
    shift
    curl -sS -X POST -H "Authorization: Bearer $CL_ADMIN_TOKEN" \
        -H 'Content-Type: application/json' --data '{}' "$@" "$CL_WEB/$cl_path"
}

# cluster_stop SECS [expect-failure]: with a second argument the stop may
# report a failed server (a test killed it) but every process must be gone.
cluster_stop() {
    cl_t0=$(cl_now)
    out=$(cl_admin_post stop -f --max-time "$1" 2>"$CL_LOG.stop-curl") ||
        cl_die "POST /stop failed: $(cat "$CL_LOG.stop-curl")"
    CL_STOP_REPORT=$out
    if [ -z "${2:-}" ]; then
        printf '%s\n' "$out" | grep -q '"ok": *true' || cl_die "stop reported a problem: $out"
    fi
    stopped=$(printf '%s' "$out" | tr -d '\n' | grep -o '"name": *"[^"]*", *"outcome": *"[^"]*"' |
        sed 's/"name": *"\([^"]*\)", *"outcome": *"\([^"]*\)"/\1 \2/' | tr '\n' ',' | sed 's/,$//; s/,/, /g')
    until=$(cl_deadline "$1")
    for pid in $CL_PIDS; do
        while cl_alive "$pid"; do
            cl_past "$until" && cl_die "pid $pid still running after the stop"
            sleep 0.05
        done
    done
    rc=0
    wait "$CL_MASTER_PID" 2>/dev/null || rc=$?
    [ "$rc" -eq 0 ] || [ -n "${2:-}" ] || cl_die "the master exited with $rc"
    cl_say "cluster stopped in $(cl_since "$cl_t0") s through POST /stop; every process exited (stopped in order: ${stopped:-none})"
    CL_MASTER_PID=
}

# EXIT trap: whatever is still running that we started, by pid.
cluster_kill() {
    for pid in $CL_OWN_PIDS; do
        cl_alive "$pid" && kill -KILL "$pid" 2>/dev/null
    done
    [ -n "$CL_MASTER_PID" ] || return 0
    for pid in $CL_PIDS; do   # CONT: a test may have stopped one (SIGSTOP)
        cl_alive "$pid" && kill -TERM "$pid" 2>/dev/null && kill -CONT "$pid" 2>/dev/null
    done
    until=$(cl_deadline 5)
    for pid in $CL_PIDS; do
        while cl_alive "$pid" && ! cl_past "$until"; do sleep 0.05; done
        cl_alive "$pid" && kill -KILL "$pid" 2>/dev/null
    done
    CL_MASTER_PID=
    return 0
}
