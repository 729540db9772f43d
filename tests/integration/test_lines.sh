#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Line states end to end: a real agent runs the linetable probe on a middleware table (the
# DevLink fixture), the collector stores every line's state in lines.db (`watchpost lines`
# shows the table, `lines history` the changes) and its rules see them: extension 8006 is
# Blocked in the table, so a `line_state: {state: blocked, for: 2s}` rule opens an incident
# for it; when the table says it is idle again the incident resolves.
. "$(dirname "$0")/lib.sh"

ca_init
issue pbx1
cp "$WP_SRC/tests/fixtures/telephony/devlink-lines.txt" "$T/lines.txt"
cat > "$T/rules.yaml" <<'YAML'
rules:
  - name: line_blocked
    line_state: {state: blocked, for: 2s}
    impact: medium
    urgency: high
    summary: "Line {line} on {host} is blocked"
YAML
collector_config "incidents:" "  rules: [$T/rules.yaml]"
start_collector
AGENT_PROBES="  - {kind: linetable, name: devlink, interval: 1s, file: $T/lines.txt, group: hotline}"
agent_config pbx1
start_agent pbx1

lines() { "$BIN_CLI" lines --state-dir "$T/state" "$@"; }
state_of() { # state_of LINE: its state in the collector's table
    lines --format csv 2>/dev/null | python3 -c '
import csv, sys
for r in csv.DictReader(sys.stdin.read().lstrip("\ufeff").splitlines()):
    if r["line"] == sys.argv[1]:
        print(r["state"])' "$1"
}
is() { [ "$(state_of "$1")" = "$2" ]; }
wait_for 30 "line 8006 stored as blocked" is 8006 blocked
is 8001 idle || fail "8001 should be idle"
is 8004 out_of_service || fail "8004 (InService N) should be out_of_service"
is 203 in_use || fail "203 (Connected) should be in_use"
lines > "$T/table"
grep -Eq "^[^ ]+ +hotline +8003 +busy +Busy .*Call1=0x10347 133924" "$T/table" ||
    { cat "$T/table"; fail "the table lacks 8003 busy with its raw state and call info"; }
# ten lines and the link to the middleware itself
grep -q "^11 lines: idle 6 ringing 1 in_use 1 busy 1 out_of_service 1 blocked 1" "$T/table" ||
    { cat "$T/table"; fail "wrong totals"; }

inc() { "$BIN_CLI" incidents --state-dir "$T/state" list --status "$1" --format csv; }
blocked_open() { inc active | grep -q '"line_blocked\|"Line 8006 on'; }
wait_for 20 "line_blocked incident for 8006" blocked_open
inc active | grep -q "line=8006" || { inc active; fail "the incident is not about line 8006"; }

# the middleware says 8006 is idle again
sed -i 's/^18\t8006\t8006\tY\tExtension\tBlocked\tBlocked/18\t8006\t8006\tY\tExtension\tIdle\tIdle/' \
    "$T/lines.txt"
wait_for 20 "line 8006 stored as idle" is 8006 idle
resolved() { inc resolved | grep -q "line=8006"; }
wait_for 20 "line_blocked resolved" resolved
# per-line RRD series (the collector's own): the query finds them through lines.db and
# flushes them; the last row of each line is its state's code, availability and occupancy
"$BIN_CLI" query --state-dir "$T/state" --host pbx1 --metric line.avail --instance 8006 \
    --since 10m --format raw > "$T/q" || { cat "$T/q"; fail "query line.avail of 8006 failed"; }
last_of() { # last_of LINE: "state avail busy" of the line's last RRD update
    rrdtool lastupdate "$T/state/rrd/pbx1/line-$1.rrd" | awk 'END { print $2, $3, $4 }'
}
line_is() { [ "$(last_of "$1")" = "$2" ]; }
wait_for 20 "8006 idle in its RRD file" line_is 8006 "1 1 0"
line_is 8003 "5 1 1" || fail "8003 (busy) RRD row is $(last_of 8003), want 5 1 1"
line_is 8004 "7 0 0" || fail "8004 (out of service) RRD row is $(last_of 8004), want 7 0 0"
lines history --host pbx1 --line 8006 > "$T/history"
grep -q "8006 .*blocked" "$T/history" && grep -q "8006 .*idle" "$T/history" ||
    { cat "$T/history"; fail "the history lacks 8006's change"; }
stop pbx1
stop collector
log "PASS"
