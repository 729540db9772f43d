#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The JSON API with login, end to end: a real collector (HTTPS on 127.0.0.1:0) and a real
# agent; users and tokens made with `watchpost user add` / `watchpost token add`. The agent is
# killed so that host_silent opens an incident; then curl checks login as viewer and operator,
# the incident list, that a viewer cannot acknowledge (403), that an operator needs the CSRF
# token (403 without, 200 with) and that the ack is in `watchpost incidents list` and reaches
# a webhook through the notification outbox; Bearer tokens; comments and resolve; hosts,
# lines, outbox; checks and log events the agent sent (a proc check of itself, a logtail
# event) and a line change as one "lines" event on the stream; /metrics parses as
# Prometheus text; an
# event stream gets the incident within 2 s of its opening (measured); logout; and the sixth
# bad login in a minute gets 429 with Retry-After.
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 0; }

ca_init
issue agent1
"$BIN_CLI" ca issue wp-dash.test --server --out "$T/certs" >/dev/null
rules_config
user_add vera viewer viewer-pass-1
user_add otto operator operator-pass-1
user_add ada admin admin-pass-123
# a short password and a duplicate are refused
if printf 'short\n' | cli user add shorty --role viewer 2>/dev/null; then fail "short password accepted"; fi
if printf 'another-pass-1\n' | cli user add vera --role viewer 2>/dev/null; then fail "duplicate user"; fi
VTOKEN=$(cli token add grafana --role viewer 2>/dev/null)
OTOKEN=$(cli token add script --role operator 2>/dev/null)
[[ $VTOKEN =~ ^wpt_[0-9a-f]{64}$ ]] || fail "token format: $VTOKEN"
cli user list | grep -q '^otto  *operator' || fail "user list: $(cli user list)"
cli token list | grep -q '^grafana  *viewer' || fail "token list"
# nothing secret is stored in clear
python3 - "$T/state/users.db" "$VTOKEN" <<'PY' || fail "users.db holds a secret in clear"
import sqlite3, sys
db = open(sys.argv[1], "rb").read()
for secret in (b"viewer-pass-1", b"operator-pass-1", sys.argv[2].encode()):
    assert secret not in db, secret
c = sqlite3.connect(sys.argv[1])
for (h,) in c.execute("SELECT hash FROM users"):
    alg, it, salt, key = h.split("$")
    assert alg == "pbkdf2-sha256" and int(it) >= 100000, h
PY
[ "$(stat -c %a "$T/state/users.db")" = 600 ] || fail "users.db is not mode 600"

# a chat webhook: the operator's ack through the API must reach it (incident store -> outbox)
start_recv
collector_config "incidents:" "  rules: [$T/rules.yaml]" "  reopen_window: 0s" \
    "notify:" \
    "  domain: noc.test" \
    "  backoff_min: 300ms" \
    "  destinations:" \
    "    - name: chat" \
    "      kind: webhook" \
    "      url: 'http://127.0.0.1:$RP/chat'" \
    "      requests:" \
    "        open: {body: '{\"event\": {event}, \"by\": {event_by}, \"id\": {id}}'}" \
    "        update: {body: '{\"event\": {event}, \"by\": {event_by}, \"id\": {id}}'}" \
    "  routes:" \
    "    - {to: [chat]}" \
    "http:" \
    "  listen: 127.0.0.1:0" \
    "  sse_ping: 1s" \
    "  tls:" \
    "    cert: $T/certs/wp-dash.test.crt" \
    "    key: $T/certs/wp-dash.test.key"
start_collector_http
http_client wp-dash.test
# besides the selftest series: a proc check of the agent itself, log events from a file and
# phone lines from a middleware table (checks, logevents and the "lines" event below)
mkdir -p "$T/applog"
printf 'starting\nFATAL disk_gone on /data\n' > "$T/applog/app.log"
cp "$WP_SRC/tests/fixtures/telephony/devlink-lines.txt" "$T/lines.txt"
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 1, fields: 1}
  - {kind: proc, interval: 1s, match: [{name: agent, comm: watchpost-agent, cmdline: '$T/agent1.yaml', min: 1}]}
  - {kind: logtail, name: app, interval: 1s, paths: [\"$T/applog/app.log\"], cursor_file: $T/agent1-logtail.cursor, start_at: beginning, rules: [{name: fatal, pattern: \"FATAL (?<what>[a-z_]+)\", severity: critical}]}
  - {kind: linetable, name: devlink, interval: 1s, file: $T/lines.txt, group: hotline}"
agent_config agent1
start_agent agent1
wait_for 20 "the agent streams" grep -q "agent connected" "$T/collector.log"

log "HTTPS API on port $HP"
[ "$(code GET /healthz)" = 200 ] || fail "/healthz needs no login"
for p in /api/v1/incidents /api/v1/status /api/v1/hosts /api/v1/lines /api/v1/seats \
    /api/v1/outbox /api/v1/events /metrics /api/v1/session /api/v1/checks /api/v1/logevents; do
    c=$(code GET "$p")
    [ "$c" = 401 ] || fail "GET $p without login gave $c, not 401"
done
[ "$(code POST /api/v1/incidents/1/ack)" = 401 ] || fail "anonymous ack not 401"

# login: cookie jar $T/NAME.jar, csrf token in $T/NAME.csrf (api_login)
api_login vera viewer-pass-1
api_login otto operator-pass-1
grep -i '^set-cookie: wp_session=' "$T/otto.hdr" | grep -qi 'HttpOnly' || fail "session cookie not HttpOnly"
grep -i '^set-cookie: wp_session=' "$T/otto.hdr" | grep -qi 'SameSite=Strict' || fail "no SameSite=Strict"
grep -i '^set-cookie: wp_session=' "$T/otto.hdr" | grep -qi 'Secure' || fail "no Secure under HTTPS"
OCSRF=$(cat "$T/otto.csrf")
[[ $OCSRF =~ ^[0-9a-f]{64}$ ]] || fail "csrf token: $OCSRF"
V=(-b "$T/vera.jar")
O=(-b "$T/otto.jar")
[ "$(code GET /api/v1/session "${O[@]}")" = 200 ] && [ "$(jq_ 'd["role"]')" = operator ] ||
    fail "session: $(cat "$T/out.json")"
[ "$(code GET /api/v1/users "${O[@]}")" = 403 ] || fail "operator may list users"
api_login ada admin-pass-123
[ "$(code GET /api/v1/users -b "$T/ada.jar")" = 200 ] || fail "admin cannot list users"
# a cross-site login attempt (Origin of another site)
c=$(code POST /api/v1/login -H 'Origin: https://evil.example' \
    --data-binary '{"user": "vera", "password": "viewer-pass-1"}')
[ "$c" = 403 ] || fail "cross-origin login gave $c"

# the event stream, as operator, records when each event arrives
python3 - "$HP" "$T/ca/ca.crt" "$(awk '$6 == "wp_session" {print $7}' "$T/otto.jar")" \
    > "$T/sse.out" 2> "$T/sse.log" <<'PY' &
import socket, ssl, sys, time
port, ca, sid = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=60),
                    server_hostname="wp-dash.test")
s.sendall(("GET /api/v1/events HTTP/1.1\r\nHost: wp-dash.test:%s\r\nCookie: wp_session=%s\r\n"
           "Accept: text/event-stream\r\n\r\n" % (port, sid)).encode())
f = s.makefile("rb")
code = f.readline().decode().split(" ")[1]
ctype = ""
while True:
    h = f.readline().decode().rstrip("\r\n")
    if not h:
        break
    if h.lower().startswith("content-type:"):
        ctype = h.split(":", 1)[1].strip()
print("status", code, ctype, flush=True)
r = type("R", (), {"fp": f})
ev = None
deadline = time.time() + 120
while time.time() < deadline:
    line = r.fp.readline()
    if not line:
        break
    line = line.decode().rstrip("\r\n")
    if line.startswith("event: "):
        ev = line[7:]
    elif line.startswith("data: ") and ev is not None:
        print("%d %s %s" % (time.time() * 1000, ev, line[6:]), flush=True)
        ev = None
PY
PIDS[sse]=$!
wait_for 10 "event stream open" grep -q ' hello ' "$T/sse.out"
grep -q '^status 200 text/event-stream' "$T/sse.out" || fail "event stream: $(cat "$T/sse.out")"

# check results and log events the agent sent: GET /api/v1/checks and /api/v1/logevents
# (host= takes the agent id, as the Host page passes it)
has_check() { [ "$(code GET '/api/v1/checks?host=agent1' "${V[@]}")" = 200 ] &&
    grep -q '"name":"proc_agent"' "$T/out.json"; }
wait_for 20 "the proc check in GET /api/v1/checks" has_check
python3 - "$T/out.json" <<'PY' || fail "checks: $(cat "$T/out.json")"
import json, sys
c = [x for x in json.load(open(sys.argv[1]))["checks"] if x["name"] == "proc_agent"]
assert len(c) == 1 and c[0]["status"] == 0 and c[0]["status_name"] == "OK", c
assert "1 process matching agent" in c[0]["output"] and 0 < c[0]["since_ms"] <= c[0]["ts_ms"], c
PY
[ "$(code GET '/api/v1/checks?status=critical' "${V[@]}")" = 200 ] &&
    [ "$(jq_ 'len([c for c in d["checks"] if c["name"] == "proc_agent"])')" = 0 ] ||
    fail "checks status filter: $(cat "$T/out.json")"
[ "$(code GET '/api/v1/checks?status=bogus' "${V[@]}")" = 400 ] || fail "bad checks status not 400"
has_log() { [ "$(code GET '/api/v1/logevents?host=agent1&limit=5' "${V[@]}")" = 200 ] &&
    grep -q '"rule":"fatal"' "$T/out.json"; }
wait_for 20 "the log event in GET /api/v1/logevents" has_log
python3 - "$T/out.json" <<'PY' || fail "logevents: $(cat "$T/out.json")"
import json, sys
e = [x for x in json.load(open(sys.argv[1]))["events"] if x["rule"] == "fatal"]
assert len(e) == 1 and e[0]["severity"] == 3 and "FATAL disk_gone" in e[0]["text"], e
assert e[0]["fields"].get("what") == "disk_gone" and e[0]["source"].endswith("app.log"), e
PY
[ "$(code GET "/api/v1/logevents?since=$(( $(date +%s) * 1000 + 3600000 ))" "${V[@]}")" = 200 ] &&
    [ "$(jq_ 'len(d["events"])')" = 0 ] || fail "logevents since: $(cat "$T/out.json")"
[ "$(code GET '/api/v1/logevents?limit=x' "${V[@]}")" = 400 ] || fail "bad logevents limit not 400"
# a line changes state: one coalesced "lines" event on the stream carries it
sed -i 's/^18\t8006\t8006\tY\tExtension\tBlocked\tBlocked/18\t8006\t8006\tY\tExtension\tIdle\tIdle/' \
    "$T/lines.txt"
got_line() { grep ' lines ' "$T/sse.out" | grep -q '"object":"8006","group":"hotline","state":"idle"'; }
wait_for 10 "line 8006 idle as a lines event on the stream" got_line
# coalesced: "lines" events come from the once-a-second poll, never closer than ~1 s apart
python3 - "$T/sse.out" <<'PY' || fail "lines events too close: $(grep ' lines ' "$T/sse.out" | cut -c1-200)"
import sys
at = [int(l.split(" ", 2)[0]) for l in open(sys.argv[1]) if l.split(" ", 2)[1:2] == ["lines"]]
assert at and all(b - a >= 500 for a, b in zip(at, at[1:])), at
PY
log "checks, log events and the lines event ok"

crash agent1
has_inc() { [ "$(code GET '/api/v1/incidents?status=open' "${V[@]}")" = 200 ] &&
    grep -q host_silent "$T/out.json"; }
wait_for 20 "host_silent in GET /api/v1/incidents" has_inc
ID=$(jq_ '[i for i in d["incidents"] if i["rule"] == "host_silent"][0]["id"]')
jq_ 'd["incidents"][0]["priority"] == 1 and d["incidents"][0]["time_left_s"] is not None' | grep -q True ||
    fail "incident list: $(cat "$T/out.json")"
[ "$(code GET "/api/v1/incidents?priority=P4" "${V[@]}")" = 200 ] && [ "$(jq_ 'len(d["incidents"])')" = 0 ] ||
    fail "priority filter: $(cat "$T/out.json")"
[ "$(code GET "/api/v1/incidents?status=bogus" "${V[@]}")" = 400 ] || fail "bad status filter"

# the event stream delivered the opening within 2 s of it (timeline time -> arrival)
got_open() { grep -q "\"incident_id\":$ID,.*\"kind\":\"opened\"" "$T/sse.out"; }
wait_for 10 "incident $ID opened on the event stream" got_open
DELAY=$(python3 - "$T/sse.out" "$ID" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    parts = l.split(" ", 2)
    if len(parts) == 3 and parts[1] == "incident":
        d = json.loads(parts[2])
        if d["incident_id"] == int(sys.argv[2]) and d["kind"] == "opened":
            print(int(parts[0]) - d["at_ms"])
            break
PY
)
log "event stream delay: incident opened -> event received: ${DELAY} ms"
[ "$DELAY" -le 2000 ] || fail "event arrived ${DELAY} ms after the incident opened"

# roles and CSRF
c=$(code POST "/api/v1/incidents/$ID/ack" "${V[@]}" -H "X-CSRF-Token: $(cat "$T/vera.csrf")")
[ "$c" = 403 ] || fail "viewer ack gave $c, not 403"
c=$(code POST "/api/v1/incidents/$ID/ack" "${O[@]}" --data-binary '{"note": "on it"}')
[ "$c" = 403 ] || fail "operator ack without CSRF token gave $c, not 403"
c=$(code POST "/api/v1/incidents/$ID/ack" "${O[@]}" -H "X-CSRF-Token: $(cat "$T/vera.csrf")")
[ "$c" = 403 ] || fail "operator ack with another session's CSRF token gave $c, not 403"
code GET "/api/v1/incidents?status=all" "${O[@]}" > /dev/null # fills the list cache
c=$(code POST "/api/v1/incidents/$ID/ack" "${O[@]}" -H "X-CSRF-Token: $OCSRF" \
    -H 'Content-Type: application/json' --data-binary '{"note": "on it"}')
[ "$c" = 200 ] || fail "operator ack gave $c: $(cat "$T/out.json")"
[ "$(jq_ 'd["status"]')" = acknowledged ] && [ "$(jq_ 'd["acked_by"]')" = otto ] ||
    fail "ack reply: $(cat "$T/out.json")"
# the list is cached for a second under load, but an operator's action clears it: the
# acknowledgement shows in the very next list
c=$(code GET "/api/v1/incidents?status=all" "${O[@]}")
[ "$c" = 200 ] && [ "$(jq_ '[i["status"] for i in d["incidents"] if i["id"] == '"$ID"'][0]')" = acknowledged ] ||
    fail "the incident list right after the ack: $(cat "$T/out.json")"
"$BIN_CLI" incidents list --state-dir "$T/state" --status acknowledged --format csv > "$T/inc.csv"
grep -q "host_silent" "$T/inc.csv" || fail "not acknowledged in watchpost incidents list: $(cat "$T/inc.csv")"
grep -q "otto" "$T/inc.csv" || "$BIN_CLI" incidents show "$ID" --state-dir "$T/state" | grep -q otto ||
    fail "acked_by otto not shown by the CLI"
c=$(code POST "/api/v1/incidents/$ID/ack" "${O[@]}" -H "X-CSRF-Token: $OCSRF")
[ "$c" = 409 ] || fail "second ack gave $c, not 409"
got_ack() { grep -q "\"incident_id\":$ID,.*\"kind\":\"acknowledged\",\"by\":\"otto\"" "$T/sse.out"; }
wait_for 5 "the ack on the event stream" got_ack
# the notification outbox picked the ack up from the timeline and delivered it
chat_ack() {
    python3 - "$T/recv/requests.jsonl" <<'PY'
import json, sys
bodies = [json.loads(json.loads(l)["body"]) for l in open(sys.argv[1])]
sys.exit(0 if any(b.get("event") == "ack" and b.get("by") == "otto" for b in bodies) else 1)
PY
}
wait_for 20 "the API ack delivered to the chat webhook" chat_ack

# comments need a note; the timeline has them
c=$(code POST "/api/v1/incidents/$ID/comment" "${O[@]}" -H "X-CSRF-Token: $OCSRF")
[ "$c" = 400 ] || fail "comment without a note gave $c"
c=$(code POST "/api/v1/incidents/$ID/comment" "${O[@]}" -H "X-CSRF-Token: $OCSRF" \
    --data-binary '{"note": "router rebooted <b>"}')
[ "$c" = 200 ] || fail "comment gave $c: $(cat "$T/out.json")"
[ "$(code GET "/api/v1/incidents/$ID" "${V[@]}")" = 200 ] || fail "incident detail"
jq_ '[e["kind"] for e in d["timeline"]]' | grep -q "'comment'" || fail "no comment on the timeline: $(cat "$T/out.json")"
[ "$(code GET /api/v1/incidents/999999 "${V[@]}")" = 404 ] || fail "missing incident not 404"
[ "$(code POST /api/v1/incidents/999999/ack "${O[@]}" -H "X-CSRF-Token: $OCSRF")" = 404 ] ||
    fail "ack of a missing incident not 404"

# Bearer tokens: no CSRF needed, roles apply
[ "$(code GET /api/v1/incidents -H "Authorization: Bearer $VTOKEN")" = 200 ] || fail "viewer token GET"
[ "$(code POST "/api/v1/incidents/$ID/comment" -H "Authorization: Bearer $VTOKEN" \
    --data-binary '{"note": "x"}')" = 403 ] || fail "viewer token may comment"
[ "$(code POST "/api/v1/incidents/$ID/comment" -H "Authorization: Bearer $OTOKEN" \
    --data-binary '{"note": "from a script"}')" = 200 ] || fail "operator token comment: $(cat "$T/out.json")"
[ "$(code GET /api/v1/incidents -H "Authorization: Bearer wpt_$(printf '0%.0s' $(seq 64))")" = 401 ] ||
    fail "bad token not 401"
[ "$(code GET /api/v1/incidents -H "Authorization: Basic dmVyYTp4")" = 401 ] || fail "Basic auth not 401"
# a token deleted with the CLI (another process) is refused within about a second (the
# collector remembers tokens but reads PRAGMA data_version at most once a second)
[ "$(code GET /api/v1/status -H "Authorization: Bearer $OTOKEN")" = 200 ] || fail "operator token"
cli token del script > /dev/null || fail "token del"
T_DEL=$(date +%s%N)
refused() { [ "$(code GET /api/v1/status -H "Authorization: Bearer $OTOKEN")" = 401 ]; }
wait_for 5 "the deleted token refused" refused
log "deleted token refused after $((($(date +%s%N) - T_DEL) / 1000000)) ms"

# hosts, lines, seats, outbox, status
[ "$(code GET /api/v1/hosts "${V[@]}")" = 200 ] || fail "hosts"
python3 - "$T/out.json" <<'PY' || fail "hosts: $(cat "$T/out.json")"
import json, sys
h = [x for x in json.load(open(sys.argv[1]))["hosts"] if x["id"] == "agent1"]
assert len(h) == 1 and h[0]["connected"] is False and h[0]["last_seen_ms"] > 0, h
assert h[0]["open_incidents"]["total"] >= 1 and h[0]["worst_priority"] == 1, h
PY
[ "$(code GET '/api/v1/lines?state=idle' "${V[@]}")" = 200 ] && jq_ 'd["lines"]' > /dev/null || fail "lines"
[ "$(code GET /api/v1/seats "${V[@]}")" = 200 ] || fail "seats"
# the kept lists go gzipped to clients that ask (here over TLS), as is to the others
"${CURL[@]}" -o "$T/m.plain" -D "$T/m.plain.hdr" "${V[@]}" "$BASE/metrics"
"${CURL[@]}" -o "$T/m.gz" -D "$T/m.gz.hdr" -H 'Accept-Encoding: gzip' "${V[@]}" "$BASE/metrics"
grep -qi '^content-encoding: gzip' "$T/m.gz.hdr" || fail "/metrics not gzipped: $(cat "$T/m.gz.hdr")"
grep -qi '^vary: accept-encoding' "$T/m.gz.hdr" || fail "no Vary: Accept-Encoding"
if grep -qi '^content-encoding' "$T/m.plain.hdr"; then fail "gzip without Accept-Encoding"; fi
python3 - "$T/m.plain" "$T/m.gz" <<'PY' || fail "gzipped /metrics differs"
import gzip, sys
names = lambda t: sorted({l.split("{")[0].split(" ")[0] for l in t.splitlines() if l[:1] != "#"})
plain, gz = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
assert len(gz) < len(plain), (len(gz), len(plain))
assert names(gzip.decompress(gz).decode()) == names(plain.decode())
PY
[ "$(code GET '/api/v1/outbox?state=dead' "${V[@]}")" = 200 ] || fail "outbox"
[ "$(code GET '/api/v1/outbox?state=sent' "${V[@]}")" = 200 ] || fail "outbox sent"
python3 - "$T/out.json" <<'PY' || fail "outbox: $(cat "$T/out.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["notify"] is True and any(m["dest"] == "chat" for m in d["messages"]), d
assert all("url" not in m and "headers" not in m and "body" not in m for m in d["messages"])
PY
MSG=$(jq_ 'd["messages"][0]["id"]')
[ "$(code POST "/api/v1/outbox/$MSG/retry" "${O[@]}" -H "X-CSRF-Token: $OCSRF")" = 409 ] ||
    fail "retry of a sent message not 409: $(cat "$T/out.json")"
[ "$(code GET '/api/v1/outbox?state=nope' "${V[@]}")" = 400 ] || fail "bad outbox state"
[ "$(code POST /api/v1/outbox/1/retry "${V[@]}" -H "X-CSRF-Token: $(cat "$T/vera.csrf")")" = 403 ] ||
    fail "viewer may retry"
[ "$(code GET /api/v1/status -H "Authorization: Bearer $VTOKEN")" = 200 ] || fail "status with token"

# /metrics (a viewer token, as Prometheus would use) is valid Prometheus text
c=$("${CURL[@]}" -o "$T/metrics.txt" -D "$T/metrics.hdr" -w '%{http_code}' \
    -H "Authorization: Bearer $VTOKEN" "$BASE/metrics")
[ "$c" = 200 ] || fail "/metrics gave $c"
grep -qi '^content-type: text/plain; version=0.0.4' "$T/metrics.hdr" || fail "/metrics content type"
python3 - "$T/metrics.txt" <<'PY' || fail "/metrics is not Prometheus text: $(head -30 "$T/metrics.txt")"
import re, sys
name = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
label = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample = re.compile(r"^(%s)(\{%s(?:,%s)*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$" % (name, label, label))
typed, seen, samples = {}, set(), {}
for n, line in enumerate(open(sys.argv[1]), 1):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        _, _, m, t = line.split(" ")
        assert re.fullmatch(name, m) and t in ("counter", "gauge", "untyped", "histogram", "summary"), line
        assert m not in typed, "TYPE twice: " + m
        typed[m] = t
        continue
    if line.startswith("# HELP ") or line == "":
        continue
    assert not line.startswith("#"), "line %d: %s" % (n, line)
    mt = sample.match(line)
    assert mt, "line %d: %r" % (n, line)
    float(mt.group(3))
    assert mt.group(1) in typed, "no TYPE before " + line
    assert line.rsplit(" ", 1)[0] not in seen, "duplicate series " + line
    seen.add(line.rsplit(" ", 1)[0])
    samples[line.rsplit(" ", 1)[0]] = float(mt.group(3))
assert samples['watchpost_incidents{status="acknowledged",priority="P1"}'] >= 1, samples
up = [v for k, v in samples.items() if k.startswith('watchpost_agent_up{agent="agent1",')]
assert up == [0.0], up
assert "watchpost_batches_total" in samples and samples["watchpost_batches_total"] > 0
assert any(k.startswith("watchpost_lines") for k in typed)
PY

# resolve needs a note, then works
[ "$(code POST "/api/v1/incidents/$ID/resolve" "${O[@]}" -H "X-CSRF-Token: $OCSRF")" = 400 ] ||
    fail "resolve without a note"
c=$(code POST "/api/v1/incidents/$ID/resolve" "${O[@]}" -H "X-CSRF-Token: $OCSRF" \
    --data-binary '{"note": "cable replaced"}')
[ "$c" = 200 ] && [ "$(jq_ 'd["status"]')" = resolved ] || fail "resolve gave $c: $(cat "$T/out.json")"

# logout ends the session (it needs the CSRF token too)
[ "$(code POST /api/v1/logout "${V[@]}")" = 403 ] || fail "logout without CSRF token"
[ "$(code POST /api/v1/logout "${V[@]}" -H "X-CSRF-Token: $(cat "$T/vera.csrf")")" = 200 ] || fail "logout"
[ "$(code GET /api/v1/incidents "${V[@]}")" = 401 ] || fail "session still valid after logout"
# a deleted user's sessions end at once
cli user del ada
[ "$(code GET /api/v1/users -b "$T/ada.jar")" = 401 ] || fail "deleted user's session still valid"

# failed logins: five wrong passwords get 401, the sixth try 429 with Retry-After
for i in 1 2 3 4 5; do
    c=$(code POST /api/v1/login --data-binary '{"user": "otto", "password": "wrong-guess"}')
    [ "$c" = 401 ] || fail "bad login $i gave $c"
done
c=$("${CURL[@]}" -X POST -o "$T/out.json" -D "$T/rl.hdr" -w '%{http_code}' \
    --data-binary '{"user": "otto", "password": "operator-pass-1"}' "$BASE/api/v1/login")
[ "$c" = 429 ] || fail "sixth login gave $c, not 429"
grep -qi '^retry-after: [1-9]' "$T/rl.hdr" || fail "no Retry-After on 429"
grep -q 'login failed user=otto' "$T/collector.log" || fail "failed login not logged"
if grep -q -e 'wrong-guess' -e 'operator-pass-1' -e 'viewer-pass-1' -e "$VTOKEN" "$T/collector.log"; then
    fail "a password or token is in the log"
fi
# the operator's earlier session still works (rate limit is about logins)
[ "$(code GET /api/v1/incidents "${O[@]}")" = 200 ] || fail "operator session lost"

kill "${PIDS[sse]}" 2>/dev/null || true
wait "${PIDS[sse]}" 2>/dev/null || true
unset 'PIDS[sse]'
stop collector
kill "${PIDS[recv]}" 2>/dev/null || true
wait "${PIDS[recv]}" 2>/dev/null || true
unset 'PIDS[recv]'
echo "SSE_DELAY_MS=$DELAY"
log "ok"
