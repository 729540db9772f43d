#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The logtail probe with the real daemons: an agent tails an Oracle alert log (preset
# oracle_alert, multi-line entries) while ORA-00600 entries are written, the log is rotated
# by logrotate (create, then copytruncate while the agent is down) and the agent is killed
# with SIGKILL once. Afterwards (a) the collector has opened an incident for a `log:` rule on
# ORA-00600 and (b) the agent's logtail.matches counter for ora_internal is exactly the
# number of ORA-00600 entries written, and stays there (no line lost, none counted twice).
. "$(dirname "$0")/lib.sh"

command -v logrotate >/dev/null || { echo "SKIP: logrotate is not installed"; exit 0; }

ca_init
issue agent1
mkdir -p "$T/rules" "$T/logs"
LOG=$T/logs/alert_orcl.log
: > "$LOG"
cat > "$T/rules/site.yaml" <<'YAML'
rules:
  - name: oracle_internal_error
    log: {pattern: "ORA-00600", count: 3, window: 10m}
    impact: high
    urgency: medium
    category: database
    key: [source]
    summary: "Oracle internal error in {label.source} on {host}"
YAML
collector_config "incidents:" "  rules: [$T/rules/site.yaml]"
start_collector
AGENT_PROBES="  - {kind: logtail, name: ora, interval: 1s, paths: [\"$T/logs/alert_*.log\"], cursor_file: $T/agent1/logtail-ora.cursor, start_at: beginning, preset: oracle_alert, max_events_per_min: 1000}"
agent_config agent1
start_agent agent1

# logrotate config: MODE is create or copytruncate
rotate() {
    printf '%s {\n    %s\n    rotate 9\n    missingok\n}\n' "$LOG" "$1" > "$T/logrotate.conf"
    logrotate -f -s "$T/logrotate.state" "$T/logrotate.conf" || fail "logrotate $1 failed"
}

N=0
# entries K: K ORA-00600 entries (3 lines each), each followed by a harmless entry
entries() {
    for _ in $(seq 1 "$1"); do
        N=$((N + 1))
        ts=$(date +%Y-%m-%dT%H:%M:%S.%6N%:z)
        printf '%s\nErrors in file /u01/app/oracle/diag/rdbms/orcl/orcl/trace/orcl_ora_%d.trc:\nORA-00600: internal error code, arguments: [kdsgrp1], [], [], []\n' \
            "$ts" "$N" >> "$LOG"
        printf '%s\nThread 1 advanced to log sequence %d (LGWR switch)\n  Current log# 2 seq# %d mem# 0: /u01/oradata/ORCL/redo02.log\n' \
            "$ts" "$N" "$N" >> "$LOG"
        sleep 0.05
    done
}

matches_rows() {
    "$BIN_CLI" query --state-dir "$T/state" --host agent1 --metric logtail.matches \
        --instance ora/ora_internal --since 10m --format raw 2>/dev/null | awk '$3 != "nan"'
}
last_matches() { matches_rows | tail -n 1 | awk '{print $3}'; }
reached() { [ "$(last_matches)" = "$1" ]; }
connected() { [ "$("$BIN_CLI" status --state-dir "$T/state" | awk '$1 == "agents_connected" {print $2}')" = 1 ]; }

wait_for 30 "agent connected" connected
entries 10
sleep 2
log "rotate (create) with the agent running"
entries 5
rotate create
entries 10
sleep 1.5
entries 3
log "SIGKILL the agent"
crash agent1
entries 4
log "rotate (copytruncate) while the agent is down"
rotate copytruncate
entries 4
start_agent agent1
wait_for 30 "agent connected again" connected
entries 6
log "wrote $N ORA-00600 entries"

wait_for 60 "logtail.matches of ora_internal reaches $N (now $(last_matches))" reached "$N"
sleep 4
reached "$N" || fail "logtail.matches moved past $N: $(last_matches)"
max=$(matches_rows | awk 'BEGIN {m = 0} $3 + 0 > m {m = $3 + 0} END {print m}')
[ "$max" = "$N" ] || fail "logtail.matches peaked at $max, $N entries were written"
log "logtail.matches = $N"

# the rule engine saw the events: one incident for the source file
has_incident() {
    inc list --status all --format csv | tr -d '\r' | grep -q 'oracle_internal_error'
}
wait_for 30 "incident for oracle_internal_error" has_incident
nopen=$(inc list --status all --format csv | grep -c 'oracle_internal_error' || true)
[ "$nopen" = 1 ] || fail "expected one incident for oracle_internal_error, got $nopen"
inc list --status all --format csv | grep 'oracle_internal_error' | head -n 1

# the cursor file is written and names the file and the rule counters
grep -q "^R $N [0-9]* [0-9]* ora_internal$" "$T/agent1/logtail-ora.cursor" ||
    { cat "$T/agent1/logtail-ora.cursor"; fail "cursor file lacks the ora_internal counters"; }

stop agent1
stop collector
log "PASS"
