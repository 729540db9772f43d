#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A burst of 1,000 incidents: a middleware table of 1,000 seats goes blocked at once (one
# line_state incident per seat), then idle again (1,000 resolutions). Two destinations on a
# scripted HTTP receiver (httprecv.py):
#   - a PagerDuty-compatible one limited to 500 requests per 5 s: never more in any 5 s
#     window, and at the end every alert's last accepted action is resolve (the
#     destination's final state matches the collector's: all resolved);
#   - a chat webhook limited to 2 requests per 5 s with digest: true: what waits beyond the
#     limit goes out as summaries, never more than 2 calls in any 5 s window, and every one
#     of the 2,000 events is delivered exactly once, alone or in a summary.
. "$(dirname "$0")/lib.sh"

N=1000
ca_init
issue pbx1
start_recv
echo "0123456789abcdef0123456789abcdef" > "$T/pd.key"
table() { # table STATE: the DevLink table of N seats, all in STATE
    python3 - "$1" "$N" > "$T/lines.tmp" <<'PY'
import sys
state, n = sys.argv[1], int(sys.argv[2])
print("DevLink State: IPO DevLink connected\n")
print("DeviceID\tDeviceNum\tPhoneNum\tInService\tType\tState\tState\tLoginCodeFlag\tCall Info")
for i in range(n):
    print(f"{i}\t{20000 + i}\t{20000 + i}\tY\tExtension\t{state}\t{state}\t0\t")
PY
    mv "$T/lines.tmp" "$T/lines.txt"
}
table Idle
cat > "$T/rules.yaml" <<'YAML'
rules:
  - name: seat_blocked
    line_state: {state: blocked, for: 0s}
    impact: high
    urgency: medium
    key: [line]
    summary: "Seat {line} is blocked"
YAML
collector_config "incidents:" "  rules: [$T/rules.yaml]" "  reopen_window: 0s" \
    "notify:" \
    "  domain: noc.test" \
    "  destinations:" \
    "    - {name: pd, kind: pagerduty, url: 'http://127.0.0.1:$RP/pd', secret_file: $T/pd.key," \
    "       rate: {max: 500, per: 5s}}" \
    "    - name: chat" \
    "      kind: webhook" \
    "      url: 'http://127.0.0.1:$RP/chat'" \
    "      events: [open, resolve]" \
    "      rate: {max: 2, per: 5s}" \
    "      digest: true" \
    "      requests:" \
    "        open: {body: '{\"event\": {event}, \"id\": {id}}'}" \
    "        resolve: {body: '{\"event\": {event}, \"id\": {id}}'}" \
    "        digest: {body: '{\"count\": {count}, \"items\": {items}}'}" \
    "  routes:" \
    "    - {to: [pd, chat]}"
start_collector
AGENT_PROBES="  - {kind: linetable, name: devlink, interval: 1s, file: $T/lines.txt, group: seats}"
agent_config pbx1
start_agent pbx1

inc_count() { "$BIN_CLI" incidents --state-dir "$T/state" list --status "$1" --format csv |
    grep -c seat_blocked || true; }
all_idle() { [ "$("$BIN_CLI" lines --state-dir "$T/state" --state idle --format csv |
    grep -c seats)" = "$N" ]; }
wait_for 30 "$N seats idle" all_idle
table Blocked
t0=$(date +%s)
opened() { [ "$(inc_count open)" = "$N" ]; }
wait_for 30 "$N incidents open" opened
log "$N incidents open in $(( $(date +%s) - t0 )) s"
table Idle
resolved() { [ "$(inc_count resolved)" = "$N" ]; }
wait_for 30 "$N incidents resolved" resolved
drained() { [ "$(cstat notify_queued)" = 0 ] && [ "$(cstat notify_in_flight)" = 0 ]; }
wait_for 120 "every message delivered" drained
log "outbox drained $(( $(date +%s) - t0 )) s after the burst; digested $(cstat notify_digested)"

python3 - "$T/recv/requests.jsonl" "$N" <<'PY' || fail "destination state does not match"
import collections, json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
def max_in_window(ts, w):
    ts = sorted(ts); j = 0; best = 0
    for i, t in enumerate(ts):
        while ts[j] <= t - w:
            j += 1
        best = max(best, i - j + 1)
    return best
pd = [r for r in reqs if r["path"] == "/pd"]
chat = [r for r in reqs if r["path"] == "/chat"]
# 2 ms of slack: the collector's clock and the receiver's stamp differ by the request time
pdmax = max_in_window([r["t"] for r in pd], 5.0 - 0.002)
chatmax = max_in_window([r["t"] for r in chat], 5.0 - 0.002)
assert pdmax <= 500, f"pd: {pdmax} requests in one 5 s window (limit 500)"
assert chatmax <= 2, f"chat: {chatmax} requests in one 5 s window (limit 2)"
last = {}
for r in pd:
    b = json.loads(r["body"])
    last[b["dedup_key"]] = b["event_action"]
assert len(last) == n, f"pd knows {len(last)} alerts, want {n}"
assert set(last.values()) == {"resolve"}, collections.Counter(last.values())
assert len(pd) == 2 * n, f"pd got {len(pd)} requests, want {2 * n} (no duplicates)"
events = collections.Counter()
digests = 0
for r in chat:
    b = json.loads(r["body"])
    if "items" in b:
        digests += 1
        assert b["count"] == len(b["items"])
        for it in b["items"]:
            events[(it["id"], it["event"])] += 1
    else:
        events[(b["id"], b["event"])] += 1
assert len(events) == 2 * n, f"chat delivered {len(events)} distinct events, want {2 * n}"
dup = [k for k, v in events.items() if v > 1]
assert not dup, f"delivered twice: {dup[:5]}"
print(f"pd: {len(pd)} requests, max {pdmax} per 5 s; chat: {len(chat)} requests "
      f"({digests} summaries), max {chatmax} per 5 s")
PY
stop pbx1
stop collector
log "PASS"
