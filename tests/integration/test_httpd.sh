#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The collector's HTTPS server: a real collector with http on 127.0.0.1:0 and a certificate
# from `watchpost ca issue --server`; curl checks /healthz, /api/v1/status, a static file, the
# security headers, and that a path traversal attempt gets nothing from outside the root.
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 0; }

ca_init
"$BIN_CLI" ca issue wp-dash.test --server --out "$T/certs" >/dev/null
mkdir -p "$T/www/sub"
cp "$WP_SRC/dashboards/index.html" "$T/www/index.html"
echo 'body { color: #000; }' > "$T/www/sub/app.css"
echo 'TOPSECRET' > "$T/secret.txt"
ln -s ../secret.txt "$T/www/link.txt"

# everything under /api/v1 needs a login: a viewer token for the status calls
mkdir -p "$T/state"
TOKEN=$("$BIN_CLI" token add httpd-test --role viewer --state-dir "$T/state" 2>/dev/null)
collector_config "http:" \
    "  listen: 127.0.0.1:0" \
    "  static_dir: $T/www" \
    "  header_timeout: 1s" \
    "  tls:" \
    "    cert: $T/certs/wp-dash.test.crt" \
    "    key: $T/certs/wp-dash.test.key"
start_collector_http
http_client wp-dash.test -H "Authorization: Bearer $TOKEN"

log "HTTPS on port $HP"
body=$("${CURL[@]}" "$BASE/healthz") || fail "GET /healthz failed"
[ "$body" = ok ] || fail "/healthz said '$body'"

"${CURL[@]}" -D "$T/status.hdr" -o "$T/status.json" "$BASE/api/v1/status" ||
    fail "GET /api/v1/status failed"
python3 - "$T/status.json" <<'PY' || fail "/api/v1/status is not the expected JSON"
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("batches", "values_acked", "agents", "connections", "http"):
    assert k in d, k
assert isinstance(d["values_acked"], int)
assert d["http"]["requests"] >= 2, d["http"]
PY
grep -qi '^content-type: application/json' "$T/status.hdr" || fail "status is not JSON"
grep -qi '^strict-transport-security: max-age=' "$T/status.hdr" || fail "no HSTS under HTTPS"
grep -qi '^x-content-type-options: nosniff' "$T/status.hdr" || fail "no nosniff"
grep -qi "^content-security-policy: default-src 'self'" "$T/status.hdr" || fail "no CSP"

"${CURL[@]}" -D "$T/index.hdr" -o "$T/index.out" "$BASE/" || fail "GET / failed"
grep -q '<title>Watchpost</title>' "$T/index.out" || fail "/ is not the dashboard index"
grep -qi '^content-type: text/html' "$T/index.hdr" || fail "index.html content type"
css=$("${CURL[@]}" "$BASE/sub/app.css") || fail "GET /sub/app.css failed"
[ "$css" = 'body { color: #000; }' ] || fail "static file content: '$css'"
etag=$("${CURL[@]}" -D - -o /dev/null "$BASE/sub/app.css" | awk -F': ' 'tolower($1)=="etag" {print $2}' | tr -d '\r')
[ -n "$etag" ] || fail "no ETag"
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$BASE/sub/app.css")
[ "$code" = 304 ] || fail "If-None-Match gave $code, not 304"

# traversal: curl would normalise "..", so --path-as-is sends it as written
for p in '/../secret.txt' '/%2e%2e/secret.txt' '/%2e%2e%2fsecret.txt' '/sub/../../secret.txt' \
    '/link.txt' '//etc/passwd'; do
    code=$("${CURL[@]}" --path-as-is -o "$T/trav.out" -w '%{http_code}' "$BASE$p")
    case "$code" in 400 | 404) ;; *) fail "traversal $p gave $code" ;; esac
    if grep -q -e TOPSECRET -e 'root:' "$T/trav.out"; then
        fail "traversal $p returned content from outside the root"
    fi
done
code=$("${CURL[@]}" -o "$T/api404.out" -w '%{http_code}' "$BASE/api/v1/nope")
[ "$code" = 404 ] && grep -q '"error"' "$T/api404.out" || fail "unknown API path: $code"
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -X POST "$BASE/healthz")
[ "$code" = 405 ] || fail "POST /healthz gave $code, not 405"

# plain HTTP to the HTTPS port is refused without disturbing the server
curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$HP/healthz" || true
body=$("${CURL[@]}" "$BASE/healthz") || fail "server gone after a plain HTTP request"
[ "$body" = ok ] || fail "/healthz said '$body' afterwards"

# a client that connects and sends nothing is dropped after http.header_timeout (1 s)
exec 3<>"/dev/tcp/127.0.0.1/$HP"
sleep 2.5
exec 3<&-
"${CURL[@]}" -o "$T/status2.json" "$BASE/api/v1/status" || fail "GET /api/v1/status failed"
python3 - "$T/status2.json" <<'PY' || fail "the silent client was not timed out"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["http"]["timeouts_header"] >= 1, d["http"]
PY

# the agent listener came up next to it
[ -s "$T/collector.port" ] || fail "no agent port"
stop collector
log "ok"
