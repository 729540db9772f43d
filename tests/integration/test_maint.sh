#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runtime maintenance windows end to end, with a real collector (HTTPS API on 127.0.0.1:0) and
# a real agent (host db-1 in the rules group "dbs"): `watchpost maintenance add` (another
# process) puts the group in maintenance and the running collector takes it up; the agent's
# breach then records its incident suppressed with "maintenance NAME" (no escalation, no
# notification); GET /api/v1/maintenance lists it with the rules config's window (read-only);
# a viewer cannot create or end a window (403), a cookie session needs the CSRF token, bad
# input gets 400 with what is wrong; an operator creates an upcoming window that the CLI
# ends; the silent host's time inside the window is planned maintenance in `watchpost report
# weekly`; the agent returns; ending the window through the API lifts the suppression
# within 2 s; ending it
# again is 409; `watchpost maintenance list` shows both windows ended; a window that ends while
# the collector is down is lifted ("suppression ended while the collector was down") at its
# first pass after the restart, before the host reports again; `watchpost rules test` shows
# what the runtime windows active at the tested time suppress (and says when it has none).
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 0; }

ca_init
issue agent1
"$BIN_CLI" ca issue wp-dash.test --server --out "$T/certs" >/dev/null
rules_config - <<'YAML'
  - name: selftest_high
    metric: selftest.v0
    when: "last > 1000"
    impact: medium
    urgency: medium
    summary: "v0 on {host} is {value}"
groups:
  dbs: ["db-*"]
maintenance:
  - name: Sunday backup
    groups: [dbs]
    weekly: {days: [sun], from: "03:00", to: "03:01"}
YAML
user_add otto operator operator-pass-1
VTOKEN=$(cli token add grafana --role viewer 2>/dev/null)
OTOKEN=$(cli token add script --role operator 2>/dev/null)
collector_config "incidents:" "  rules: [$T/rules.yaml]" \
    "http:" \
    "  listen: 127.0.0.1:0" \
    "  tls:" \
    "    cert: $T/certs/wp-dash.test.crt" \
    "    key: $T/certs/wp-dash.test.key"
start_collector_http
http_client wp-dash.test
V=(-H "Authorization: Bearer $VTOKEN")
O=(-H "Authorization: Bearer $OTOKEN" -H 'Content-Type: application/json')
mcli() { "$BIN_CLI" maintenance -c "$T/collector.yaml" "$@"; }

# ---- the CLI: bad input is refused with what is wrong ------------------------------------
expect_cli_error() { # expect_cli_error TEXT ARGS...: exit 1 and TEXT on stderr
    local want=$1 rc=0
    shift
    mcli "$@" > /dev/null 2> "$T/cli.err" || rc=$?
    [ "$rc" = 1 ] || fail "maintenance $* exited $rc, expected 1"
    grep -q -- "$want" "$T/cli.err" || fail "maintenance $*: \"$(cat "$T/cli.err")\" lacks \"$want\""
}
expect_cli_error "at least one host or group" add "Nothing" --for 1h
expect_cli_error 'no group "web" in the rules config' add "Web" --groups web --for 1h
expect_cli_error "at most 31 days" add "Long" --hosts db-1 --for 32d
expect_cli_error "must be after the start" add "Back" --hosts db-1 --from +2h --to +1h
expect_cli_error "is not a host name" add "Bad" --hosts 'db 1;x' --for 1h
expect_cli_error "give --to TIME or --for DURATION" add "Open" --hosts db-1
[ "$(mcli list --format csv | wc -l)" = 1 ] || fail "a refused window was stored"

# ---- a window for the group, from another process: the collector takes it up ---------------
mcli add "DB patching" --groups dbs --for 1h --reason "kernel update" --by "Li Wei" > "$T/add.out" ||
    fail "maintenance add failed"
grep -q '^maintenance window 1 "DB patching"' "$T/add.out" || fail "add: $(cat "$T/add.out")"
wait_for 5 "the collector takes up window 1" \
    grep -q 'maintenance window 1 "DB patching" started' "$T/collector.log"
mcli list > "$T/list1"
grep -Eq '^1 +active .*DB patching +group:dbs +Li Wei +kernel update' "$T/list1" ||
    { cat "$T/list1"; fail "list lacks the active window"; }
grep -q "Sunday backup" "$T/list1" || fail "list -c lacks the rules config's window"

# ---- the agent db-1 breaches inside the window: recorded suppressed -------------------------
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 1, fields: 1}"
agent_config agent1
sed -i 's/^  id: agent1$/  id: agent1\n  host: db-1/' "$T/agent1.yaml"
start_agent agent1
wait_for 30 "selftest_high recorded" inc_has selftest_high status open
wait_for 5 "selftest_high suppressed" inc_has selftest_high suppressed 1
ID=$(inc_field selftest_high id)
inc show "$ID" > "$T/show1"
grep -q "maintenance DB patching" "$T/show1" || { cat "$T/show1"; fail "no maintenance on the timeline"; }
sleep 2
inc_has selftest_high suppressed 1 || fail "the suppression did not hold"
log "incident $ID suppressed by the window"

# ---- the API: viewers read, operators write -------------------------------------------------
[ "$(code GET /api/v1/maintenance)" = 401 ] || fail "anonymous GET not 401"
[ "$(code GET /api/v1/maintenance "${V[@]}")" = 200 ] || fail "viewer GET: $(cat "$T/out.json")"
python3 - "$T/out.json" <<'PY' || fail "GET /api/v1/maintenance: $(cat "$T/out.json")"
import json, sys
d = json.load(open(sys.argv[1]))
w = [x for x in d["windows"] if x["id"] == 1]
assert len(w) == 1 and w[0]["state"] == "active" and w[0]["groups"] == ["dbs"], w
assert w[0]["created_by"] == "Li Wei" and w[0]["reason"] == "kernel update" and not w[0]["read_only"]
assert w[0]["ended_ms"] is None and w[0]["ends_ms"] - w[0]["starts_ms"] == 3600000, w
c = [x for x in d["config"] if x["name"] == "Sunday backup"]
assert len(c) == 1 and c[0]["read_only"] and c[0]["weekly"]["days"] == ["sun"], c
assert d["groups"] == ["dbs"], d["groups"]
PY
BODY='{"name": "Web move", "hosts": ["web-1", "web-2"], "starts": "+1h", "duration": "2h", "reason": "rack move"}'
[ "$(code POST /api/v1/maintenance "${V[@]}" -H 'Content-Type: application/json' --data-binary "$BODY")" = 403 ] ||
    fail "a viewer created a window"
[ "$(code POST /api/v1/maintenance/1/end "${V[@]}")" = 403 ] || fail "a viewer ended a window"
# a cookie session needs the CSRF token (the server enforces it for every POST)
api_login otto operator-pass-1
CSRF=$(cat "$T/otto.csrf")
[ "$(code POST /api/v1/maintenance -b "$T/otto.jar" -H 'Content-Type: application/json' --data-binary "$BODY")" = 403 ] ||
    fail "an operator session without CSRF token created a window"
# bad input: 400 with what is wrong
bad() { # bad BODY TEXT
    local c
    c=$(code POST /api/v1/maintenance "${O[@]}" --data-binary "$1")
    [ "$c" = 400 ] || fail "POST $1 gave $c, not 400"
    grep -q -- "$2" "$T/out.json" || fail "POST $1: $(cat "$T/out.json") lacks \"$2\""
}
bad '{"hosts": ["web-1"], "duration": "1h"}' "name: required"
bad '{"name": "x", "duration": "1h"}' "at least one host or group"
bad '{"name": "x", "hosts": ["web-1"], "starts": "+2h", "ends": "+1h"}' "must be after the start"
bad '{"name": "x", "hosts": ["web-1"], "duration": "40d"}' "at most 31 days"
bad '{"name": "x", "hosts": ["web-1"]}' "ends or duration: required"
bad '{"name": "x", "hosts": ["web-1"], "starts": "soon", "duration": "1h"}' "starts: expected"
bad '{"name": "x", "groups": ["nope"], "duration": "1h"}' 'no group \\"nope\\"'
bad 'not json' "expected a JSON object"
bad '{"name": "x", "hosts": ["a"], "starts": -9223372036854775808, "duration": "1h"}' "between 1970 and 9999"
bad '{"name": "x", "hosts": ["a"], "starts": 0, "ends": 9223372036854775807}' "between 1970 and 9999"
bad '{"name": "x", "hosts": [1], "duration": "1h"}' "expected a list of strings"
c=$(code POST /api/v1/maintenance -b "$T/otto.jar" -H "X-CSRF-Token: $CSRF" \
    -H 'Content-Type: application/json' --data-binary "$BODY")
[ "$c" = 201 ] || fail "operator create gave $c: $(cat "$T/out.json")"
[ "$(jq_ 'd["id"]')" = 2 ] && [ "$(jq_ 'd["state"]')" = upcoming ] &&
    [ "$(jq_ 'd["created_by"]')" = otto ] || fail "created: $(cat "$T/out.json")"
# the CLI cancels the upcoming one
mcli end 2 --by "Li Wei" > /dev/null || fail "maintenance end 2"
expect_cli_error "already ended by Li Wei" end 2
expect_cli_error "no maintenance window 99" end 99
[ "$(code POST /api/v1/maintenance/2/end "${O[@]}")" = 409 ] || fail "ending an ended window not 409"
[ "$(code POST /api/v1/maintenance/99/end "${O[@]}")" = 404 ] || fail "ending no window not 404"

# ---- the host goes silent inside the window: planned maintenance in the weekly report --------
crash agent1
wait_for 15 "host_silent recorded" inc_has host_silent status open
wait_for 5 "host_silent suppressed" inc_has host_silent suppressed 1
inc show "$(inc_field host_silent id)" | grep -q "maintenance DB patching" || fail "host_silent not in maintenance"
sleep 8 # silent for >= 6 s inside the window: at least 0.1 min in the report
start_agent agent1
wait_for 20 "host_silent resolved" inc_has host_silent status resolved
inc_has selftest_high suppressed 1 || fail "selftest_high lost its suppression while in the window"

# ---- the API ends the window: the suppression lifts within 2 s ------------------------------
[ "$(code POST /api/v1/maintenance/1/end "${O[@]}")" = 200 ] || fail "operator end: $(cat "$T/out.json")"
ENDED=$(jq_ 'd["ended_ms"]')
[ "$(jq_ 'd["state"]')" = ended ] && [ "$(jq_ 'd["ended_by"]')" = token:script ] ||
    fail "end reply: $(cat "$T/out.json")"
wait_for 5 "selftest_high no longer suppressed" inc_has selftest_high suppressed 0
# measured on the timeline: the unsuppressed entry's time minus the window's end
TOOK=$(python3 - "$T/state/incidents.db" "$ID" "$ENDED" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
(at,) = c.execute("SELECT max(at_ms) FROM timeline WHERE incident_id = ? AND kind = 'unsuppressed'",
                  (int(sys.argv[2]),)).fetchone()
print(at - int(sys.argv[3]))
PY
)
[ "$TOOK" -ge 0 ] && [ "$TOOK" -le 2000 ] || fail "unsuppressed ${TOOK} ms after the end (at most 2000)"
log "suppression lifted ${TOOK} ms after the window ended"
inc show "$ID" | grep -q "unsuppressed" || fail "no unsuppressed entry on the timeline of $ID"
grep -q 'maintenance window 1 "DB patching" ended early' "$T/collector.log" &&
    grep -q 'maintenance window 1 ended by token:script' "$T/collector.log" ||
    fail "the end is not in the collector log"
[ "$(code POST /api/v1/maintenance/1/end "${O[@]}")" = 409 ] || fail "second end not 409"
grep -q "already ended by token:script" "$T/out.json" || fail "409 body: $(cat "$T/out.json")"

mcli list > "$T/list2"
grep -Eq '^1 +ended ' "$T/list2" && grep -Eq '^2 +ended ' "$T/list2" ||
    { cat "$T/list2"; fail "list after the ends"; }
mcli list --format csv | grep -q '"token:script"' || fail "csv list lacks ended_by"

# the weekly report of this week: the silent time inside the window is planned
WEEK=$(date +%G-W%V)
"$BIN_CLI" report weekly --week "$WEEK" --state-dir "$T/state" --out "$T/rep" --format csv \
    > /dev/null || fail "report weekly"
python3 - "$T/rep/watchpost-weekly-$WEEK-host_availability.csv" <<'PY' || fail "report: planned time"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8-sig")))
r = [x for x in rows if x["Host"] == "db-1"]
assert len(r) == 1, rows
assert float(r[0]["Planned maintenance (min)"]) >= 0.1, r
PY

# ---- a window that ends while the collector is down: lifted at its first pass after the start,
# before the host reports again (the collector listens on a new port: the agent stays away)
mcli add "Rack check" --hosts db-1 --for 1h > "$T/add3.out" || fail "maintenance add 3 failed"
W3=$(sed -n 's/^maintenance window \([0-9]*\) .*/\1/p' "$T/add3.out")
[ -n "$W3" ] || fail "add 3: $(cat "$T/add3.out")"
wait_for 5 "selftest_high suppressed by window $W3" inc_has selftest_high suppressed 1
stop collector
mcli end "$W3" --by "Li Wei" > /dev/null || fail "maintenance end $W3 while the collector is down"
start_collector_http
lifted() { inc show "$ID" | grep -q "unsuppressed.*suppression ended while the collector was down"; }
wait_for 10 "selftest_high unsuppressed after the restart" lifted
n=$(inc show "$ID" | grep -c "ended while the collector was down")
[ "$n" = 1 ] || { inc show "$ID"; fail "$n restart lifts on the timeline of $ID, want 1"; }
log "a window that ended while the collector was down was lifted after the restart"
stop collector

# ---- `watchpost rules test` honours the runtime windows active at the tested time: window 1
# a second before its end (-c), a new one now (--state-dir); none without an incidents.db
rtest() { "$BIN_CLI" rules test "$T/rules.yaml" "$@"; }
AT1=$(date -u -d "@$((ENDED / 1000 - 1))" +%Y-%m-%dT%H:%M:%SZ)
rtest -c "$T/collector.yaml" --at "$AT1" > "$T/rt1" || { cat "$T/rt1"; fail "rules test --at $AT1"; }
grep -q '^runtime maintenance windows (.*incidents.db): 1 active: "DB patching"$' "$T/rt1" &&
    grep -Eq '^FIRING .*selftest_high.*  suppressed: maintenance DB patching$' "$T/rt1" ||
    { cat "$T/rt1"; fail "rules test at $AT1 did not honour window 1"; }
mcli add "Rules check" --hosts 'db-*' --for 1h > /dev/null || fail "maintenance add 4 failed"
rtest --state-dir "$T/state" > "$T/rt2" || { cat "$T/rt2"; fail "rules test now"; }
grep -q '1 active: "Rules check"$' "$T/rt2" &&
    grep -Eq '^FIRING .*selftest_high.*  suppressed: maintenance Rules check$' "$T/rt2" &&
    ! grep -q "DB patching" "$T/rt2" || { cat "$T/rt2"; fail "rules test now: not window 4 alone"; }
mkdir "$T/bare"
rtest --state-dir "$T/bare" > "$T/rt3" || { cat "$T/rt3"; fail "rules test on a bare state dir"; }
grep -q "^runtime maintenance windows not consulted: no incidents.db in $T/bare" "$T/rt3" ||
    { cat "$T/rt3"; fail "rules test does not say the runtime windows were not consulted"; }
log "rules test honours the runtime windows at the tested time"
log "PASS"
