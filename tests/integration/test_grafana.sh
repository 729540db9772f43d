#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Grafana dashboard (dashboards/grafana/watchpost.json) against a real collector's /metrics:
# a collector with its HTTP server and a viewer token (as Prometheus scrapes it), one agent with
# phone lines (so every metric family the dashboard uses has series). Then the JSON must load,
# be importable (the data source is the ${DS_PROMETHEUS} variable, ids unique, every panel
# placed), and every panel's every expression may only name metrics and labels that this
# /metrics returns. The checker is first shown a bad expression, which it must refuse.
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 0; }
DASH=$WP_SRC/dashboards/grafana/watchpost.json
[ -f "$DASH" ] || fail "missing $DASH"

ca_init
issue agent1
mkdir -p "$T/state"
TOKEN=$("$BIN_CLI" token add prometheus --role viewer --state-dir "$T/state" 2>/dev/null)
[[ $TOKEN =~ ^wpt_[0-9a-f]{64}$ ]] || fail "token format: $TOKEN"
collector_config "http:" "  listen: 127.0.0.1:0"
start_collector_http
cp "$WP_SRC/tests/fixtures/telephony/devlink-lines.txt" "$T/lines.txt"
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 1, fields: 1}
  - {kind: linetable, name: devlink, interval: 1s, file: $T/lines.txt, group: hotline}"
agent_config agent1
start_agent agent1

metrics() {
    curl -sS --max-time 10 -o "$T/metrics.txt" -w '%{http_code}' \
        -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HP/metrics"
}
has_all() {
    [ "$(metrics)" = 200 ] && grep -q '^watchpost_agent_up{' "$T/metrics.txt" &&
        grep -q '^watchpost_lines{' "$T/metrics.txt" &&
        grep -q '^watchpost_values_acked_total [1-9]' "$T/metrics.txt"
}
wait_for 30 "/metrics with the agent, its lines and acked values" has_all
log "/metrics: $(grep -vc '^#' "$T/metrics.txt") samples"

python3 - "$DASH" "$T/metrics.txt" <<'PY' || fail "the Grafana dashboard does not fit /metrics"
import json, re, sys

dash = json.load(open(sys.argv[1]))
# metric name -> label names seen on its samples (Prometheus adds instance and job)
have = {}
for line in open(sys.argv[2]):
    if line.startswith("#") or not line.strip():
        continue
    m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
    assert m, f"/metrics line: {line!r}"
    labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m[3] or ""))
    have.setdefault(m[1], set()).update(labels | {"instance", "job"})

def problems(expr):
    """What is wrong with one PromQL expression, against `have`."""
    out = []
    names = set(re.findall(r"\bwatchpost_[a-zA-Z0-9_:]*", expr))
    if not names:
        out.append("names no watchpost_ metric")
    for n in sorted(names - have.keys()):
        out.append(f"{n} is not in /metrics")
    known = set().union(*(have.get(n, set()) for n in names)) if names else set()
    for n, sel in re.findall(r"\b(watchpost_[a-zA-Z0-9_:]*)\{([^}]*)\}", expr):
        for label in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)', sel):
            if label not in have.get(n, set()):
                out.append(f"{n} has no label {label}")
    for grp in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        for label in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", grp):
            if label not in known:
                out.append(f"no metric of the expression has label {label}")
    return out

# the checker itself must refuse what is wrong
assert problems('rate(watchpost_no_such_metric_total[5m])'), "checker accepts unknown metric"
assert problems('sum by (nolabel) (watchpost_incidents)'), "checker accepts unknown label"
assert problems('watchpost_incidents{colour="red"}'), "checker accepts unknown matcher"
assert problems('vector(1)'), "checker accepts an expression without our metrics"
assert not problems('sum by (priority) (watchpost_incidents{status="open"})'), "checker"

errors = []
vars_ = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
ds = vars_.get("DS_PROMETHEUS")
if ds is None or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
    errors.append("no DS_PROMETHEUS data source variable of type prometheus")
for v in vars_.values():
    if v.get("type") == "query":
        q = v.get("definition") or v.get("query", {}).get("query", "")
        errors += [f"variable {v['name']}: {p}" for p in problems(q)]
for k in ("title", "uid", "schemaVersion", "panels"):
    if k not in dash:
        errors.append(f"no {k}")
ids, nexpr = set(), 0
for p in dash["panels"]:
    where = f"panel {p.get('id')} {p.get('title')!r}"
    if p.get("id") in ids:
        errors.append(f"{where}: duplicate id")
    ids.add(p.get("id"))
    g = p.get("gridPos", {})
    if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")) or g["x"] + g["w"] > 24:
        errors.append(f"{where}: bad gridPos {g}")
    if p.get("type") == "row":
        continue
    if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
        errors.append(f"{where}: data source is not ${{DS_PROMETHEUS}}")
    if not p.get("targets"):
        errors.append(f"{where}: no targets")
    for t in p.get("targets", []):
        if t.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            errors.append(f"{where} {t.get('refId')}: data source is not ${{DS_PROMETHEUS}}")
        nexpr += 1
        errors += [f"{where} {t.get('refId')}: {e}" for e in problems(t.get("expr", ""))]
# no data source named by a fixed uid anywhere
for m in re.finditer(r'"uid":\s*"([^"]*)"', json.dumps(dash)):
    if m[1] not in ("${DS_PROMETHEUS}", dash["uid"]):
        errors.append(f"fixed uid {m[1]}")
for e in errors:
    print("  " + e)
print(f"{len(dash['panels'])} panels, {nexpr} expressions, {len(have)} metric names: "
      f"{len(errors)} problems")
sys.exit(1 if errors else 0)
PY
stop agent1
stop collector
log "PASS"
