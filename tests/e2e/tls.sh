#!/bin/sh
# The cluster over TLS (and its secret): certificates made now with the
# openssl CLI (a CA and one certificate for 127.0.0.1 that every server uses
# as root and as client), client certificates required; the bots' script
# must run as over plain TCP. Skipped when the openssl CLI is missing.
set -eu
cd "$(dirname "$0")/../.."
. scripts/cluster-lib.sh

command -v openssl >/dev/null || { echo "test-tls: SKIP: no openssl CLI (apt-get install openssl)"; exit 0; }
cl_test test-tls "$B/e2e/tls"

ossl() { openssl "$@" >>"$dir/openssl.log" 2>&1 || fail "openssl $1 failed (see $dir/openssl.log)"; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=ember-test-ca -keyout "$dir/ca.key" -out "$dir/ca.pem"
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$dir/server.key" -out "$dir/server.csr"
printf 'subjectAltName=IP:127.0.0.1\n' > "$dir/san.ext"
ossl x509 -req -days 1 -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -extfile "$dir/san.ext" -out "$dir/server.pem"

CL_TLS_JSON="\"tls\": {\"cert\": \"$dir/server.pem\", \"key\": \"$dir/server.key\", \"ca\": \"$dir/ca.pem\", \"require_client_cert\": true},"
cluster_start "$dir" "$dir/players.sqlite"
cluster_wait_ready 20
cl_status_has '"security": { *"secret": true, *"tls": true' || fail "/status does not say TLS"
cl_bots "$dir/bots.out" -n 4 -r 2 -m 2 -p tls -t 20
grep -q "listening on .* (TLS)" "$CL_LOG" || fail "the roots do not listen with TLS"
grep -q ", 0 errors, 0 failed" "$dir/bots.out" || { cat "$dir/bots.out"; fail "the bots had errors"; }
if grep -q "TLS handshake failed" "$CL_LOG"; then fail "a TLS handshake failed (see $CL_LOG)"; fi
cluster_stop 30
echo "test-tls: ok (every link over TLS with client certificates)"
