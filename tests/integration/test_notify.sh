#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Notifications end to end with the real collector and a scripted HTTP receiver
# (httprecv.py) on 127.0.0.1: an incident (an agent goes silent) that opens, escalates, is
# acknowledged from the CLI and resolves reaches
#   - a PagerDuty-compatible sender whose receiver answers 503, 503, 429 (Retry-After 1) and
#     then 202: retried with byte-identical bodies and the same Idempotency-Key, in order
#     trigger, trigger (escalation), acknowledge, resolve - never a trigger after the resolve;
#   - a generic webhook service desk: one ticket created, its id stored from the response and
#     used by the later calls (notes, then PUT to close it);
#   - a receiver that refuses the first message (400): dead-lettered at once, a
#     notify_dead_letter incident opens, `watchpost outbox retry` sends it and it resolves.
# Then the collector is killed (SIGKILL) while the service desk holds the create call of a
# second incident: after the restart the outbox finds the ticket by its key and does not
# create a second one. Every outcome is on the incident's timeline. Last, an incident that
# opens inside a maintenance window (`watchpost maintenance add`) is not announced; when the
# window ends with it still open, it gets one ticket and one trigger then, saying why late.
. "$(dirname "$0")/lib.sh"

ca_init
issue agent1
mkdir -p "$T/recv"
printf '503 503 429:1 202\n' > "$T/recv/pd.plan"
touch "$T/recv/bad_400"
python3 "$WP_SRC/tests/integration/httprecv.py" "$T/recv" > "$T/recv.log" 2>&1 &
PIDS[recv]=$!
wait_for 10 "receiver port" test -s "$T/recv/port"
RP=$(cat "$T/recv/port")
echo "0123456789abcdef0123456789abcdef" > "$T/pd.key"
cat > "$T/rules.yaml" <<'YAML'
rules:
  - name: host_silent
    nodata: 3s
    impact: high
    urgency: high
    category: availability
    summary: "{host} sends nothing"
YAML
collector_config "incidents:" "  rules: [$T/rules.yaml]" \
    "  sla: {p1: {response: 3s, resolve: 1h}}" "  reopen_window: 0s" \
    "notify:" \
    "  domain: noc.test" \
    "  backoff_min: 300ms" \
    "  backoff_max: 2s" \
    "  destinations:" \
    "    - {name: pd, kind: pagerduty, url: 'http://127.0.0.1:$RP/pd', secret_file: $T/pd.key}" \
    "    - name: desk" \
    "      kind: webhook" \
    "      url: 'http://127.0.0.1:$RP/tickets'" \
    "      store: id" \
    "      search: {method: GET, url: 'http://127.0.0.1:$RP/tickets?key={ref}'}" \
    "      search_store: items.0.id" \
    "      requests:" \
    "        open: {body: '{\"title\": {subject}, \"key\": {ref}, \"priority\": {priority}}'}" \
    "        update: {url: 'http://127.0.0.1:$RP/tickets/{remote_id}/notes', body: '{\"text\": {text}}'}" \
    "        resolve: {method: PUT, url: 'http://127.0.0.1:$RP/tickets/{remote_id}', body: '{\"state\": \"closed\"}'}" \
    "    - name: refuses" \
    "      kind: webhook" \
    "      url: 'http://127.0.0.1:$RP/bad'" \
    "      events: [open]" \
    "      requests: {open: {body: '{\"id\": {id}}'}}" \
    "  routes:" \
    "    - {priorities: [P1, P2], rules: [host_silent], to: [pd, desk, refuses]}"
start_collector
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 1, fields: 1}"
agent_config agent1
start_agent agent1

inc() { "$BIN_CLI" incidents --state-dir "$T/state" "$@"; }
ob() { "$BIN_CLI" outbox --state-dir "$T/state" "$@"; }
# requests PATH: the logged requests to PATH as "METHOD idem body" lines
reqs() {
    python3 - "$T/recv/requests.jsonl" "$1" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["path"].split("?")[0] == sys.argv[2]:
        print(r["method"], r["idem"], r["body"])
PY
}
wait_for 20 "the agent streams" grep -q "agent connected" "$T/collector.log"
sleep 2
crash agent1
opened() { inc list --status open --format csv | grep -q host_silent; }
wait_for 20 "host_silent opened" opened
ID=$(inc list --status all --format csv | python3 -c '
import csv, sys
rows = [r for r in csv.DictReader(sys.stdin.read().lstrip("\ufeff").splitlines())
        if r["rule"] == "host_silent"]
print(rows[0]["id"])')

# the service desk got one ticket; the refusing receiver made a dead letter and an incident
has_ticket() { [ -s "$T/recv/tickets.json" ] && grep -q '"T-1"' "$T/recv/tickets.json"; }
wait_for 20 "ticket T-1 created" has_ticket
dead_listed() { ob list --state dead | grep -q "refuses"; }
wait_for 20 "dead letter listed" dead_listed
dead_inc() { inc list --status open --format csv | grep -q notify_dead_letter; }
wait_for 20 "notify_dead_letter incident" dead_inc

# escalation (response 3 s passed) then an operator's ack from another process
esc() { inc show "$ID" | grep -q "escalated"; }
wait_for 20 "escalation of INC-$ID" esc
inc ack "$ID" --by alice --note "looking" > /dev/null
# the agent comes back: resolved
start_agent agent1
resolved() { inc list --status resolved --format csv | grep -q host_silent; }
wait_for 30 "INC-$ID resolved" resolved
pd_resolved() { ob list --state sent | grep -q ' pd .*resolve'; }
wait_for 30 "resolve delivered to pd" pd_resolved
closed() { python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["T-1"]
sys.exit(0 if t["state"] == "closed" and t["notes"] >= 2 else 1)' "$T/recv/tickets.json"; }
wait_for 20 "ticket T-1 noted and closed" closed

# PagerDuty: the first trigger was retried (503, 503, 429) with identical bytes and key
reqs /pd > "$T/pd.txt"
python3 - "$T/pd.txt" <<'PY' || fail "PagerDuty requests wrong: $(cat "$T/pd.txt")"
import json, sys
rows = [l.rstrip("\n").split(" ", 2) for l in open(sys.argv[1])]
first = [r for r in rows if r[1] == rows[0][1]]
assert len(first) == 4, f"first trigger sent {len(first)} times, want 4 (503, 503, 429, 202)"
assert len({r[2] for r in first}) == 1, "retries of one message differ in bytes"
acts = []
for r in rows:
    if not acts or acts[-1][0] != r[1]:
        acts.append((r[1], json.loads(r[2])["event_action"]))
names = [a for _, a in acts]
assert names[0] == "trigger" and names[-1] == "resolve", names
assert "acknowledge" in names and names.index("acknowledge") < names.index("resolve"), names
assert "trigger" not in names[names.index("resolve"):], names
assert len({k for k, _ in acts}) == len(acts), "an event id was reused for another message"
body = json.loads(first[0][2])
assert body["dedup_key"].startswith("host_silent|") and body["routing_key"], body
print("pd actions:", names)
PY
# the 429's Retry-After (1 s) was honoured
python3 - "$T/recv/requests.jsonl" <<'PY' || fail "Retry-After not honoured"
import json, sys
ts = [json.loads(l)["t"] for l in open(sys.argv[1]) if json.loads(l)["path"] == "/pd"]
assert ts[3] - ts[2] >= 0.95, f"retry after the 429 came {ts[3] - ts[2]:.2f} s later"
PY
inc show "$ID" > "$T/timeline"
for k in "notify sent" "notify retry" "notify dead"; do
    grep -q "$k" "$T/timeline" || { cat "$T/timeline"; fail "no \"$k\" on the timeline"; }
done

# the operator fixes the receiver and retries the dead letter: sent, the incident resolves
DEAD=$(ob list --state dead --format csv | python3 -c '
import csv, sys
print(next(csv.DictReader(sys.stdin.read().lstrip("\ufeff").splitlines()))["id"])')
rm -f "$T/recv/bad_400"
ob retry "$DEAD" > /dev/null
sent_again() { ob list --state sent | grep -q "^$DEAD "; }
wait_for 20 "dead letter $DEAD sent after retry" sent_again
dead_gone() { ! inc list --status open --format csv | grep -q notify_dead_letter; }
wait_for 20 "notify_dead_letter resolved" dead_gone
out=$(ob retry "$DEAD" 2>&1) && fail "retry of a sent message succeeded: $out"
case $out in *"not dead"*) ;; *) fail "retry of a sent message: $out" ;; esac

# a crash between the create call and recording its id: still one ticket
touch "$T/recv/slow_create"
crash agent1
creating() { reqs /tickets | grep -c '^POST' | grep -q '^2$'; }
wait_for 30 "second incident's create call" creating
crash collector
rm -f "$T/recv/slow_create"
sleep 4 # the receiver answers the lost call and records T-2
start_collector
two_opens() { [ "$(ob list --state sent | grep ' desk ' | grep -c ' open ')" = 2 ]; }
wait_for 30 "the open after the restart" two_opens
n=$(reqs /tickets | grep -c '^POST')
[ "$n" = 2 ] || fail "$n ticket creates for 2 incidents (want 2: no duplicate after the crash)"
reqs /tickets | grep -q '^GET' || fail "no search by key after the restart"
sqlite3 "$T/state/incidents.db" "select text from timeline where kind = 'notify sent'" |
    grep -q "reconciled: desk already has T-2" || fail "the open was not reconciled"
[ "$(cstat notify_reconciled)" = 1 ] || fail "status: notify_reconciled $(cstat notify_reconciled)"
drained() { [ "$(cstat notify_queued)" = 0 ]; }
wait_for 20 "the outbox drained" drained

# a maintenance window (`watchpost maintenance`, another process): an incident that opens
# inside it is not announced then; when the window ends with the problem still open, each
# destination gets its open (one new ticket, one trigger), once
field() { # field ID COLUMN
    inc list --status all --format csv | python3 -c '
import csv, sys
rows = [r for r in csv.DictReader(sys.stdin.read().lstrip("\ufeff").splitlines())
        if r["id"] == sys.argv[1]]
print(rows[0][sys.argv[2]] if rows else "")' "$1" "$2"
}
is() { [ "$(field "$1" "$2")" = "$3" ]; }
last_silent() { inc list --status all --format csv | python3 -c '
import csv, sys
rows = [int(r["id"]) for r in csv.DictReader(sys.stdin.read().lstrip("\ufeff").splitlines())
        if r["rule"] == "host_silent"]
print(max(rows))'; }
ID2=$(last_silent)
HOST=$(field "$ID2" host)
mcli() { "$BIN_CLI" maintenance -c "$T/collector.yaml" "$@"; }
mcli add "patching" --hosts "$HOST" --for 1h --by tester > "$T/madd.out" ||
    fail "maintenance add: $(cat "$T/madd.out")"
MW=$(awk '/^maintenance window/ {print $3; exit}' "$T/madd.out")
wait_for 10 "the collector takes up window $MW" \
    grep -q "maintenance window $MW \"patching\" started" "$T/collector.log"
agent_config agent1 # the restarted collector listens on a new port
start_agent agent1 # INC-$ID2 resolves inside the window
wait_for 30 "INC-$ID2 resolved" is "$ID2" status resolved
wait_for 20 "the outbox drained" drained
crash agent1
third() { [ "$(last_silent)" != "$ID2" ]; }
wait_for 20 "a third host_silent incident" third
ID3=$(last_silent)
wait_for 10 "INC-$ID3 suppressed" is "$ID3" suppressed 1
skipped() { inc show "$ID3" | grep -q "open to desk not sent: the incident is suppressed"; }
wait_for 10 "the open of INC-$ID3 skipped" skipped
n=$(reqs /tickets | grep -c '^POST')
[ "$n" = 2 ] || fail "a ticket was created for INC-$ID3 inside the window ($n creates)"
reqs /pd | grep -q "^POST pd-$ID3-" && fail "PagerDuty got INC-$ID3 inside the window"
mcli end "$MW" --by tester > /dev/null || fail "maintenance end $MW"
wait_for 10 "INC-$ID3 unsuppressed" is "$ID3" suppressed 0
t3() { [ "$(reqs /tickets | grep -c '^POST')" = 3 ]; }
wait_for 20 "the ticket of INC-$ID3 after the window" t3
pd3() { reqs /pd | grep -q "^POST pd-$ID3-"; }
wait_for 20 "the trigger of INC-$ID3 after the window" pd3
wait_for 20 "the outbox drained" drained
python3 - "$T/recv/requests.jsonl" "$ID3" <<'PY' || fail "the late open of INC-$ID3 is wrong"
import json, sys
inc = sys.argv[2]
rows = [json.loads(l) for l in open(sys.argv[1])]
mine = [r for r in rows if r["idem"].split("-")[1:2] == [inc]]
desk = [r for r in mine if r["path"] == "/tickets" and r["method"] == "POST"]
pd = [r for r in mine if r["path"] == "/pd"]
bad = [r for r in mine if r["path"] == "/bad"]
assert len(desk) == 1 and json.loads(desk[0]["body"])["key"] == f"noc.test/INC-{inc}", desk
# the open's trigger first (the overdue escalation that resumes follows it)
assert pd, "no PagerDuty request"
b = json.loads(pd[0]["body"])
assert b["event_action"] == "trigger" and b["dedup_key"].startswith("host_silent|"), b
assert pd[0]["idem"] == desk[0]["idem"].replace("desk-", "pd-", 1), (pd[0], desk[0])
assert len(bad) == 1 and json.loads(bad[0]["body"])["id"] == int(inc), bad
PY
sqlite3 "$T/state/incidents.db" "select ctx from outbox where incident_id = $ID3 and event = 'open'
    and dest = 'desk' and state = 'sent'" | grep -q "suppression (maintenance patching, since" ||
    fail "the late open does not say why it is late"
# the escalation that resumed went to T-3 as a note, not a second ticket
notes3() { reqs "/tickets/T-3/notes" | grep -q "^POST desk-$ID3-"; }
wait_for 20 "the escalation of INC-$ID3 noted on T-3" notes3
[ "$(reqs /tickets | grep -c '^POST')" = 3 ] || fail "a second ticket for INC-$ID3"
stop collector
log "PASS"
