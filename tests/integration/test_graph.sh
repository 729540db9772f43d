#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Host page data and graphs, end to end: a real collector (plain HTTP on 127.0.0.1:0) and a
# real agent with a 1 s selftest probe, a threshold rule on selftest.v0. Checks
# GET /api/v1/hosts/{host} (latest values, the rule's open incident), GET /api/v1/graph as SVG
# (parses as XML, names the series and the threshold line) and PNG (signature), that bad
# parameters are refused (400/404) before anything reaches librrd, and the roles (no login
# 401, viewer allowed).
# librrd has no frame pointers: its known rrd_graph_v leaks are only recognised (and
# suppressed, collector/http_graph.c) with the slow unwinder
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:fast_unwind_on_malloc=0}
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 0; }

ca_init
issue agent1
cat > "$T/rules.yaml" <<'YAML'
rules:
  - name: selftest_high
    metric: selftest.v0
    when: "last > 1000"
    impact: low
    urgency: low
    summary: "{host} v0 is {value}"
  - name: other_metric
    metric: cpu.idle
    when: "last < 5"
YAML
user_add vera viewer viewer-pass-1
collector_config "incidents:" "  rules: [$T/rules.yaml]" \
    "http:" \
    "  listen: 127.0.0.1:0"
start_collector_http
# plain HTTP; graphs take a while under the sanitizers; bodies in $T/out
HTTP_TIMEOUT=20 http_client
HTTP_OUT=$T/out
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 2, fields: 2}"
agent_config agent1
start_agent agent1
wait_for 20 "the agent streams" grep -q "agent connected" "$T/collector.log"

[ "$(code GET /api/v1/hosts/agent1)" = 401 ] || fail "host page without login"
[ "$(code GET '/api/v1/graph?host=agent1&metric=selftest.v0')" = 401 ] || fail "graph without login"
api_login vera viewer-pass-1
V=(-b "$T/vera.jar")

# the latest values reach the host page (the page kicks the RRD flush; data is on disk soon)
has_values() {
    [ "$(code GET /api/v1/hosts/agent1 "${V[@]}")" = 200 ] &&
        python3 - "$T/out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = {(x["group"], x["instance"]): x for x in d["series"]}
assert ("selftest", "s0") in s and ("selftest", "s1") in s, s
v = s[("selftest", "s1")]["values"]
assert v["v0"] is not None and v["v1"] is not None and v["v1"] - v["v0"] == 1, v
assert v["v0"] % 1000 == 32, v
assert s[("selftest", "s0")]["updated_ms"] > 0
PY
}
wait_for 30 "latest values in GET /api/v1/hosts/agent1" has_values
has_inc() { code GET /api/v1/hosts/agent1 "${V[@]}" >/dev/null && grep -q selftest_high "$T/out"; }
wait_for 20 "the rule's incident on the host page" has_inc
[ "$(jq_ 'd["id"]')" = agent1 ] || fail "host page: $(cat "$T/out")"
log "host page: $(head -c 300 "$T/out")"
[ "$(code GET /api/v1/hosts/nosuch "${V[@]}")" = 404 ] || fail "unknown host not 404"

# SVG: valid XML, the series legends and the threshold of selftest_high (not other_metric)
c=$(code GET '/api/v1/graph?host=agent1&metric=selftest.v0&metric=selftest.v1&instance=s0&range=1h' \
    "${V[@]}" -D "$T/hdr")
[ "$c" = 200 ] || fail "graph gave $c: $(cat "$T/out")"
grep -qi '^content-type: image/svg+xml' "$T/hdr" || fail "svg content type: $(cat "$T/hdr")"
grep -qi '^cache-control: private, max-age=10' "$T/hdr" || fail "cache-control: $(cat "$T/hdr")"
python3 - "$T/out" <<'PY' || fail "SVG check"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag.endswith("svg"), root.tag
text = " ".join(t for t in root.itertext())
for want in ("selftest.v0 s0", "selftest.v1 s0", "selftest_high > 1000"):
    assert want in text, (want, text[:500])
assert "other_metric" not in text
PY
cp "$T/out" "$T/graph.svg"
[ -z "${WP_ARTIFACTS:-}" ] || cp "$T/out" "$WP_ARTIFACTS/graph.svg"
# every instance when none is named; other ranges and an explicit window
for q in 'range=24h' 'range=7d' 'range=30d' 'range=1y' "start=$(($(date +%s) - 7200))&end=$(date +%s)"; do
    c=$(code GET "/api/v1/graph?host=agent1&metric=selftest.v0&$q" "${V[@]}")
    [ "$c" = 200 ] || fail "graph $q gave $c: $(cat "$T/out")"
done
grep -q 'selftest.v0 s1' "$T/out" || fail "all instances not drawn"
# PNG
c=$(code GET '/api/v1/graph?host=agent1&metric=selftest.v0&instance=s1&format=png&width=300&height=100' "${V[@]}")
[ "$c" = 200 ] || fail "png gave $c"
python3 -c 'import sys; assert open(sys.argv[1],"rb").read(8) == b"\x89PNG\r\n\x1a\n"' "$T/out" ||
    fail "not a PNG"

# bad parameters
bad() { # bad WANT QUERY
    local c
    c=$(code GET "/api/v1/graph?$2" "${V[@]}")
    [ "$c" = "$1" ] || fail "graph?$2 gave $c, not $1: $(cat "$T/out")"
}
bad 400 'host=agent1&metric=selftest.v0&instance=../../../etc/passwd'
bad 400 'host=agent1&metric=selftest.v0&instance=s0/..'
bad 404 'host=agent1&metric=selftest.v0&instance=s9'
bad 404 'host=agent1&metric=selftest.nope'
bad 404 'host=agent1&metric=nosuch.v0'
bad 404 'host=nosuch&metric=selftest.v0'
bad 400 'host=agent1&metric=../selftest.v0'
bad 400 'host=agent1&metric=selftest.v0:AVERAGE'
bad 400 'host=agent1&metric=Selftest.v0'
bad 400 'host=agent1'
bad 400 'metric=selftest.v0'
bad 400 'host=agent1&metric=selftest.v0&range=2h'
bad 400 'host=agent1&metric=selftest.v0&width=100000'
bad 400 'host=agent1&metric=selftest.v0&height=10'
bad 400 'host=agent1&metric=selftest.v0&format=gif'
bad 400 'host=agent1&metric=selftest.v0&theme=pink'
bad 200 'host=agent1&metric=selftest.v0&theme=dark&range=24h'
bad 400 'host=agent1&metric=selftest.v0&start=100&end=50'
bad 400 'host=agent1&metric=selftest.v0&start=-5'
grep -q 'ERROR' "$T/collector.log" && fail "errors in the collector log"

stop agent1
stop collector
log "graph and host page OK"
