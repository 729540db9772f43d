#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The collector's Request Tracker adapter against a real Request Tracker 5 (issue 6): a
# private RT (tests/fixtures/rt/start-rt.sh: queue NOC, custom field Watchpost-Key) behind
# a small HTTP proxy (holdproxy.py), the real collector with one `kind: rt` destination, a
# real agent (selftest probe) and the host_silent nodata rule.
#   1. An incident (the agent goes silent) opens, escalates twice (response deadline, then
#      50 % of the resolve time), is acknowledged from the CLI and resolves (the agent comes
#      back): RT has exactly one ticket whose Watchpost-Key is the incident's correlation id
#      (<domain>/INC-<n>), Subject "[INC-n] P1 ...", Priority 90, in NOC, one comment per
#      escalation, the acknowledgement and the resolution (attachment texts checked, in
#      order) and Status resolved.
#   2. A second incident: the proxy holds RT's answer to the create call, the collector is
#      killed (SIGKILL) once RT has created the ticket, the answer is lost, the collector
#      restarts: the outbox searches RT by the custom field and links the existing ticket
#      ("reconciled" on the timeline), so RT still has exactly one ticket for the incident,
#      and the later comments and the resolution go to that ticket.
#   3. A third incident whose ticket someone made depend on an open ticket in RT: RT adds
#      the resolve comment but refuses the status change and still answers 201. The message
#      is a dead letter with RT's reason (not "sent"), a notify_dead_letter incident opens;
#      once the blocker is resolved, `watchpost outbox retry` resolves the ticket and the
#      notify_dead_letter incident.
#   4. A fourth incident opens inside a maintenance window (`watchpost maintenance add`): its
#      open is skipped, RT never gets a ticket. Its acknowledgement and resolution have no
#      ticket to go to: they are skipped ("no ticket at rt: the incident's open was never
#      sent", on the timeline), not dead letters, and no notify_dead_letter incident opens.
# At the end: no dead letters, nothing queued. RT and its workers are stopped on exit, also
# on failure.
# Needs request-tracker5 and rt5-db-sqlite (scripts/deps.sh), like test_rt_rig.sh.
. "$(dirname "$0")/lib.sh"

RIG=$WP_SRC/tests/fixtures/rt
RT_DIR=$T/rt
RT_LOG=$RT_DIR/rt.log

# RT runs in its own process group (not in PIDS): stop it before lib.sh's cleanup removes $T.
rt_cleanup() {
    local rc=$?
    set +e # the rest must run whatever fails
    "$RIG/stop-rt.sh" "$RT_DIR" || rc=1
    (exit "$rc") # cleanup reads the status from $?
    cleanup
    exit "$rc"
}
trap rt_cleanup EXIT
trap 'exit 143' TERM INT HUP

fail() {
    echo "FAIL: $*"
    dump_logs
    for f in "$RT_LOG" "$RT_DIR/setup.log"; do
        [ -f "$f" ] || continue
        echo "---- $f (last 40 lines)"
        tail -n 40 "$f"
    done
    exit 1
}

t0=$(date +%s.%N)
"$RIG/start-rt.sh" "$RT_DIR" || fail "start-rt.sh failed"
RT_PORT=$(cat "$RT_DIR/rt.port")
TOKEN=$(cat "$RT_DIR/rt.token")
RT_B="http://127.0.0.1:$RT_PORT/REST/2.0"

# The collector talks to RT through the proxy: it can hold back the answer to the create call.
mkdir -p "$T/px"
python3 "$WP_SRC/tests/integration/holdproxy.py" "$T/px" "$RT_PORT" \
    "POST /REST/2.0/ticket " > "$T/proxy.log" 2>&1 &
PIDS[proxy]=$!
wait_for 10 "proxy port" test -s "$T/px/port"
PX_PORT=$(cat "$T/px/port")

ca_init
issue agent1
printf '%s\n' "$TOKEN" > "$T/rt.token"
rules_config
# P1: level 1 at 2 s (response), level 2 at 10 s (50 % of 20 s), level 3 only at 16 s: the
# test acknowledges and resolves between 10 and 16 s.
collector_config "incidents:" "  rules: [$T/rules.yaml]" \
    "  sla: {p1: {response: 2s, resolve: 20s}}" "  reopen_window: 0s" "  flap_changes: 20" \
    "notify:" \
    "  domain: noc.test" \
    "  backoff_min: 300ms" \
    "  backoff_max: 2s" \
    "  destinations:" \
    "    - name: rt" \
    "      kind: rt" \
    "      url: 'http://127.0.0.1:$PX_PORT'" \
    "      queue: NOC" \
    "      key_field: Watchpost-Key" \
    "      secret_file: $T/rt.token" \
    "      timeout: 20s" \
    "  routes:" \
    "    - {priorities: [P1, P2, P3, P4], rules: [host_silent], to: [rt]}"
start_collector
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 1, fields: 1}"
agent_config agent1
start_agent agent1

ob() { "$BIN_CLI" outbox --state-dir "$T/state" "$@"; }
# rt_get NAME PATH [CURL ARGS...]: GET from RT directly (not through the proxy) into $T/NAME.json
rt_get() {
    local name=$1 path=$2
    shift 2
    local code
    code=$(curl -s --max-time 20 -G -H "Authorization: token $TOKEN" -o "$T/$name.json" \
        -w '%{http_code}' "$@" "$RT_B$path") || fail "curl GET $path failed"
    [ "$code" = 200 ] || fail "GET $path: HTTP $code: $(head -c 400 "$T/$name.json")"
}
# rt_send NAME METHOD PATH JSON CODE: send JSON to RT directly, expect HTTP CODE; $T/NAME.json
rt_send() {
    local code
    code=$(curl -s --max-time 20 -X "$2" -H "Authorization: token $TOKEN" \
        -H 'Content-Type: application/json' --data-binary "$4" -o "$T/$1.json" \
        -w '%{http_code}' "$RT_B$3") || fail "curl $2 $3 failed"
    [ "$code" = "$5" ] || fail "$2 $3: HTTP $code, want $5: $(head -c 400 "$T/$1.json")"
}
# rt_tickets N: the ids of RT's tickets whose Watchpost-Key is noc.test/INC-N, one a line
rt_tickets() {
    rt_get "search$1" /tickets --data-urlencode "query='CF.{Watchpost-Key}' = 'noc.test/INC-$1'" \
        --data-urlencode orderby=id --data-urlencode per_page=100
    python3 -c 'import json, sys
for i in json.load(open(sys.argv[1]))["items"]:
    print(i["id"])' "$T/search$1.json"
}
# incident_ids: the ids of the host_silent incidents, oldest first
incident_ids() {
    inc list --status all --format csv | python3 -c '
import csv, sys
rows = [r for r in csv.DictReader(sys.stdin.read().lstrip("\ufeff").splitlines())
        if r["rule"] == "host_silent"]
print("\n".join(sorted((r["id"] for r in rows), key=int)))'
}
# remote N: the ticket id the outbox keeps for incident N (empty until linked)
remote() {
    sqlite3 "$T/state/incidents.db" \
        "select remote_id from outbox_remote where incident_id = $1 and state = 'linked'" \
        2>/dev/null || true
}
sent_all() { # sent_all N EVENT: no message of incident N queued, and one EVENT message sent
    [ "$(sqlite3 "$T/state/incidents.db" "select count(*) from outbox
        where incident_id = $1 and state = 'queued'")" = 0 ] &&
        [ "$(sqlite3 "$T/state/incidents.db" "select count(*) from outbox
        where incident_id = $1 and state = 'sent' and event = '$2'")" -ge 1 ]
}

# ---- 1. open, escalate twice, acknowledge, resolve: one ticket
wait_for 20 "the agent streams" grep -q "agent connected" "$T/collector.log"
sleep 1
crash agent1
opened() { [ -n "$(incident_ids)" ]; }
wait_for 20 "host_silent opened" opened
ID1=$(incident_ids | head -n 1)
log "INC-$ID1 opened"
linked1() { [ -n "$(remote "$ID1")" ]; }
wait_for 20 "INC-$ID1 linked to an RT ticket" linked1
esc2() { [ "$(inc show "$ID1" | grep -c 'escalated')" -ge 2 ]; }
wait_for 20 "second escalation of INC-$ID1" esc2
inc ack "$ID1" --by alice --note "looking into it" > /dev/null
start_agent agent1
resolved() { inc list --status resolved --format csv | grep -q "^$1,"; }
wait_for 20 "INC-$ID1 resolved" resolved "$ID1"
wait_for 20 "INC-$ID1's messages sent" sent_all "$ID1" resolve
inc show "$ID1" > "$T/timeline1"
n=$(grep -c 'escalated' "$T/timeline1")
[ "$n" = 2 ] || { cat "$T/timeline1"; fail "INC-$ID1 escalated $n times, want exactly 2"; }
log "INC-$ID1 resolved; checking RT"

# check_ticket N TICKET EVENTS...: ticket TICKET is INC-N's and has one text per event
# (open = the create, the others comments) in that order, and Status resolved.
check_ticket() {
    local n=$1 tk=$2
    shift 2
    rt_get "ticket$tk" "/ticket/$tk"
    rt_get "queue" /queue/NOC
    rt_get "atts$tk" "/ticket/$tk/attachments" \
        --data-urlencode 'fields=TransactionId,ContentType,Content' --data-urlencode per_page=100
    rt_get "hist$tk" "/ticket/$tk/history" \
        --data-urlencode 'fields=Type,Field,OldValue,NewValue' --data-urlencode per_page=100
    python3 - "$T" "$n" "$tk" "$@" <<'PY' || fail "RT ticket $tk of INC-$n is wrong"
import json, sys
t, n, tk, events = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
ld = lambda name: json.load(open(f"{t}/{name}.json"))
d, q = ld(f"ticket{tk}"), ld("queue")
ref = f"noc.test/INC-{n}"
assert d["Subject"].startswith(f"[INC-{n}] P1 ") and "sends nothing" in d["Subject"], d["Subject"]
assert str(d["Priority"]) == "90", d["Priority"]
assert str(d["Queue"]["id"]) == str(q["id"]), (d["Queue"], q["id"])
cf = {c["name"]: c["values"] for c in d["CustomFields"]}
assert cf.get("Watchpost-Key") == [ref], cf
assert d["Status"] == "resolved", d["Status"]
# the texts: the create's, then one comment per event, in order
texts = [a["Content"] for a in ld(f"atts{tk}")["items"] if a["ContentType"] == "text/plain"]
words = {"open": "event: opened", "escalate": "event: escalated", "ack": "event: acknowledged",
         "resolve": "event: resolved"}
got = []
for x in texts:
    assert x.startswith(f"[INC-{n}] P1 "), x
    got.append(next((e for e, w in words.items() if w in x), "?"))
assert got == events, f"ticket texts are {got}, want {events}:\n" + "\n----\n".join(texts)
esc = [x for x in texts if "event: escalated" in x]
for i, x in enumerate(esc):
    assert f"level {i + 1}:" in x, x
for x in texts:
    if "event: acknowledged" in x:
        assert "by alice: looking into it" in x, x
# the transactions: a create, one comment per later event, and new -> resolved once
h = [(i["Type"], i["Field"], i["OldValue"], i["NewValue"]) for i in ld(f"hist{tk}")["items"]]
kinds = [x[0] for x in h if x[0] in ("Create", "Comment")]
assert kinds == ["Create"] + ["Comment"] * (len(events) - 1), h
st = [x[2:] for x in h if x[0] == "Status"]
assert st == [("new", "resolved")], h
print(f"RT ticket {tk} for {ref}: {' '.join(got)}, status {d['Status']}")
PY
}

mapfile -t T1 < <(rt_tickets "$ID1")
[ "${#T1[@]}" = 1 ] || fail "RT has ${#T1[@]} tickets for INC-$ID1 (${T1[*]}), want 1"
[ "$(remote "$ID1")" = "${T1[0]}" ] ||
    fail "the outbox keeps ticket '$(remote "$ID1")' for INC-$ID1, RT has ${T1[0]}"
check_ticket "$ID1" "${T1[0]}" open escalate escalate ack resolve

# ---- 2. the collector dies between RT's create and recording the ticket id
touch "$T/px/hold"
rm -f "$T/px/held"
crash agent1
second() { [ "$(incident_ids | wc -l)" -ge 2 ]; }
wait_for 20 "a second host_silent incident" second
ID2=$(incident_ids | tail -n 1)
log "INC-$ID2 opened; holding RT's answer to its create call"
wait_for 20 "RT answered the create of INC-$ID2" test -s "$T/px/held"
grep -q ' 201' "$T/px/held" || fail "RT answered the held create with $(cat "$T/px/held")"
crash collector
log "collector killed with the answer in the proxy"
[ "$(sqlite3 "$T/state/incidents.db" "select state from outbox_remote
    where incident_id = $ID2")" = creating ] || fail "outbox_remote of INC-$ID2 is not 'creating'"
mapfile -t T2 < <(rt_tickets "$ID2")
[ "${#T2[@]}" = 1 ] || fail "RT has ${#T2[@]} tickets for INC-$ID2 before the restart, want 1"
rm -f "$T/px/hold"
sleep 0.5 # the proxy lets the answer go to the dead collector
start_collector
agent_config agent1 # the collector listens on a new port
linked2() { [ -n "$(remote "$ID2")" ]; }
wait_for 20 "INC-$ID2 linked after the restart" linked2
[ "$(remote "$ID2")" = "${T2[0]}" ] ||
    fail "INC-$ID2 linked to '$(remote "$ID2")', RT's ticket is ${T2[0]}"
inc show "$ID2" > "$T/timeline2"
grep -q "reconciled: rt already has ${T2[0]}" "$T/timeline2" ||
    { cat "$T/timeline2"; fail "the open of INC-$ID2 was not reconciled"; }
[ "$(cstat notify_reconciled)" = 1 ] || fail "status: notify_reconciled $(cstat notify_reconciled)"
start_agent agent1
wait_for 20 "INC-$ID2 resolved" resolved "$ID2"
wait_for 20 "INC-$ID2's messages sent" sent_all "$ID2" resolve
mapfile -t T2 < <(rt_tickets "$ID2")
[ "${#T2[@]}" = 1 ] || fail "RT has ${#T2[@]} tickets for INC-$ID2 (${T2[*]}), want 1"
inc show "$ID2" > "$T/timeline2"
n=$(grep -c 'escalated' "$T/timeline2" || true)
want=(open)
for _ in $(seq 1 "$n"); do want+=(escalate); done
check_ticket "$ID2" "${T2[0]}" "${want[@]}" resolve

# ---- 3. RT refuses the status change but answers 201: a dead letter, not "sent"
crash agent1
third() { [ "$(incident_ids | wc -l)" -ge 3 ]; }
wait_for 20 "a third host_silent incident" third
ID3=$(incident_ids | tail -n 1)
linked3() { [ -n "$(remote "$ID3")" ]; }
wait_for 20 "INC-$ID3 linked to an RT ticket" linked3
T3=$(remote "$ID3")
log "INC-$ID3 is ticket $T3; making it depend on an open ticket (RT then refuses to resolve it)"
rt_send blocker POST /ticket \
    '{"Queue":"NOC","Subject":"blocker","Content":"x","ContentType":"text/plain"}' 201
BLOCKER=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' \
    "$T/blocker.json")
rt_send depends PUT "/ticket/$T3" "{\"DependsOn\": [$BLOCKER]}" 200
start_agent agent1
wait_for 20 "INC-$ID3 resolved" resolved "$ID3"
dead_resolve() {
    sqlite3 "$T/state/incidents.db" "select id from outbox where incident_id = $ID3
        and event = 'resolve' and state = 'dead'" | grep .
}
wait_for 20 "the refused resolve of INC-$ID3 dead-lettered" dead_resolve
DEAD=$(dead_resolve)
err=$(sqlite3 "$T/state/incidents.db" "select last_error from outbox where id = $DEAD")
case $err in *"did not set Status resolved"*"unresolved dependencies"*) ;;
    *) fail "dead letter $DEAD: last_error '$err'" ;; esac
rt_get t3 "/ticket/$T3"
st=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["Status"])' "$T/t3.json")
[ "$st" != resolved ] || fail "ticket $T3 is resolved although RT refused it?"
dl_status() { # the notify_dead_letter incident's status (empty: none)
    inc list --status all --format csv | python3 -c '
import csv, sys
rows = [r for r in csv.DictReader(sys.stdin.read().lstrip("\ufeff").splitlines())
        if r["rule"] == "notify_dead_letter"]
print(" ".join(r["status"] for r in rows))'
}
dl_open() { [ "$(dl_status)" = open ]; }
wait_for 20 "the notify_dead_letter incident" dl_open
# the operator resolves the blocker in RT and retries: the ticket resolves
rt_send unblock PUT "/ticket/$BLOCKER" '{"Status":"resolved"}' 200
ob retry "$DEAD" > /dev/null
sent_again() {
    [ "$(sqlite3 "$T/state/incidents.db" "select state from outbox where id = $DEAD")" = sent ]
}
wait_for 20 "dead letter $DEAD sent after the retry" sent_again
dl_resolved() { [ "$(dl_status)" = resolved ]; }
wait_for 20 "the notify_dead_letter incident resolved" dl_resolved
mapfile -t T3S < <(rt_tickets "$ID3")
[ "${T3S[*]}" = "$T3" ] || fail "RT has tickets '${T3S[*]}' for INC-$ID3, want $T3"
n=$(inc show "$ID3" | grep -c 'escalated' || true)
want=(open)
for _ in $(seq 1 "$n"); do want+=(escalate); done
# the refused resolve's comment is in RT, and the retry comments again
check_ticket "$ID3" "$T3" "${want[@]}" resolve resolve

# ---- 4. opened, acknowledged and resolved inside a maintenance window: no ticket, no dead letter
HOST=$(inc_field host_silent host)
"$BIN_CLI" maintenance -c "$T/collector.yaml" add "RT quiet" --hosts "$HOST" --for 1h \
    > /dev/null || fail "maintenance add for $HOST"
wait_for 5 "the collector takes up the window" grep -q '"RT quiet" started' "$T/collector.log"
crash agent1
fourth() { [ "$(incident_ids | wc -l)" -ge 4 ]; }
wait_for 20 "a fourth host_silent incident" fourth
ID4=$(incident_ids | tail -n 1)
msg() { # msg N EVENT COLUMN: a column of incident N's EVENT message to rt
    sqlite3 "$T/state/incidents.db" "select $3 from outbox where incident_id = $1
        and dest = 'rt' and event = '$2'"
}
open_skipped() { [ "$(msg "$ID4" open state)" = skipped ]; }
wait_for 10 "the open of INC-$ID4 skipped (maintenance)" open_skipped
inc ack "$ID4" --by alice --note "part of the maintenance" > /dev/null
start_agent agent1
wait_for 20 "INC-$ID4 resolved" resolved "$ID4"
ack_resolve_skipped() {
    [ "$(msg "$ID4" ack state)" = skipped ] && [ "$(msg "$ID4" resolve state)" = skipped ]
}
wait_for 20 "the ack and resolve of INC-$ID4 skipped" ack_resolve_skipped
for ev in ack resolve; do
    why=$(msg "$ID4" $ev last_error)
    [ "$why" = "no ticket at rt: the incident's open was never sent" ] ||
        fail "the $ev of INC-$ID4 was skipped with '$why'"
    inc show "$ID4" | grep -q "$ev to rt not sent: no ticket at rt" ||
        { inc show "$ID4"; fail "no 'notify skipped' for the $ev of INC-$ID4 on its timeline"; }
done
[ -z "$(remote "$ID4")" ] || fail "INC-$ID4 has a ticket: $(remote "$ID4")"
[ "$(dl_status)" = resolved ] || fail "notify_dead_letter incidents: $(dl_status), want resolved"
log "INC-$ID4: ack and resolve skipped (no ticket), no dead letter"

# every ticket in NOC is one incident's, or the blocker
rt_get all /tickets --data-urlencode "query=Queue = 'NOC'" --data-urlencode per_page=100
total=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["total"])' "$T/all.json")
[ "$total" = 4 ] || fail "RT has $total tickets in NOC, want 4 (3 incidents and the blocker)"

# ---- nothing dead any more, nothing left
dead=$(ob list --state dead --format csv | sed 1d | grep -c . || true)
[ "$dead" = 0 ] || { ob list --state dead; fail "$dead dead letters"; }
drained() { [ "$(cstat notify_queued)" = 0 ]; }
wait_for 20 "the outbox drained" drained
[ "$(cstat notify_dead)" = 1 ] || fail "status: notify_dead $(cstat notify_dead), want 1"
stop agent1
stop collector
t1=$(date +%s.%N)
log "PASS ($(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s)"
