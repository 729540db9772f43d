#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `watchpost checks` and `watchpost logevents` on the collector host: a real collector and a
# real agent with a proc check of the agent itself (OK), a proc check of a process that is not
# there (CRITICAL) and a logtail on a file with a FATAL and a WARN line. The CLI reads
# events.db read-only beside the running collector: the table, CSV for Excel (BOM, header,
# columns), the --host/--status/--rule/--since/--limit filters, -c collector.yaml, a missing
# events.db (exit 1, clear message) and bad options (exit 2 with usage).
. "$(dirname "$0")/lib.sh"

ca_init
issue agent1
cli() { "$BIN_CLI" "$@" --state-dir "$T/state"; }

# before the collector stored anything: a clear message, exit 1
rc=0
cli checks > "$T/out.txt" 2> "$T/err.txt" || rc=$?
[ "$rc" = 1 ] || fail "checks without events.db: exit $rc"
grep -q "no events.db in $T/state: the collector has not stored any check yet" "$T/err.txt" ||
    fail "checks without events.db: $(cat "$T/err.txt")"
rc=0
cli logevents 2> "$T/err.txt" || rc=$?
[ "$rc" = 1 ] && grep -q "logevents: no events.db in" "$T/err.txt" ||
    fail "logevents without events.db: exit $rc $(cat "$T/err.txt")"

# bad options: exit 2 with usage (before any store is read)
for args in "checks --bogus" "checks --status fine" "checks extra" "checks --format xml" \
    "logevents --since yesterday" "logevents --limit 0" "logevents --limit x"; do
    rc=0
    # shellcheck disable=SC2086
    cli $args > "$T/out.txt" 2> "$T/err.txt" || rc=$?
    [ "$rc" = 2 ] || fail "$args: exit $rc, not 2"
    grep -q "usage: watchpost\|--status takes\|--since takes\|--limit takes\|--format must" \
        "$T/err.txt" || fail "$args: no usage: $(cat "$T/err.txt")"
done
"$BIN_CLI" checks --help | grep -q "^usage: watchpost checks" || fail "checks --help"

collector_config
start_collector
mkdir -p "$T/applog"
printf 'starting\nFATAL disk_gone on /data\nWARN slow_query 3s\n' > "$T/applog/app.log"
AGENT_PROBES="  - {kind: proc, interval: 1s, match: [{name: agent, comm: watchpost-agent, cmdline: '$T/agent1.yaml', min: 1}, {name: ghost, comm: wp-no-such-proc, min: 1}]}
  - {kind: logtail, name: app, interval: 1s, paths: [\"$T/applog/app.log\"], cursor_file: $T/agent1-logtail.cursor, start_at: beginning, rules: [{name: fatal, pattern: \"FATAL (?<what>[a-z_]+)\", severity: critical}, {name: slow, pattern: \"WARN slow_query\", severity: warning}]}"
agent_config agent1
start_agent agent1
wait_for 20 "the agent streams" grep -q "agent connected agent=agent1" "$T/collector.log"
# events are stored under the agent's host name
H=$(sed -n 's/.*agent connected agent=agent1 host=\([^ ]*\).*/\1/p' "$T/collector.log" | head -n 1)
has_all() {
    cli checks --csv > "$T/checks.csv" 2>/dev/null &&
        grep -q '"proc_agent"' "$T/checks.csv" && grep -q '"proc_ghost"' "$T/checks.csv" &&
        [ "$(cli logevents --csv 2>/dev/null | grep -c "^\"[^\"]*\",\"$H\"")" = 2 ]
}
wait_for 20 "both checks and both log events in events.db" has_all

# checks: CSV with a BOM, a header and one row per check
head -c 3 "$T/checks.csv" | od -An -tx1 | grep -q "ef bb bf" || fail "checks CSV has no BOM"
python3 - "$T/checks.csv" "$H" <<'PY' || fail "checks CSV: $(cat "$T/checks.csv")"
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8-sig", newline="")))
assert rows[0] == ["host", "check", "status", "since", "last", "output"], rows[0]
by = {r[1]: r for r in rows[1:]}
assert by["proc_agent"][0] == sys.argv[2] and by["proc_agent"][2] == "ok", by
assert by["proc_ghost"][2] == "critical", by
for r in rows[1:]:
    assert len(r) == 6 and r[3][:2] == "20" and "T" in r[3] and r[4] >= r[3], r
PY
cli checks > "$T/checks.txt"
grep -q "^$H  *proc_ghost  *CRITICAL " "$T/checks.txt" || fail "checks table: $(cat "$T/checks.txt")"
grep -q "^2 checks: 1 critical, 0 warning, 0 unknown, 1 ok$" "$T/checks.txt" ||
    fail "checks summary: $(cat "$T/checks.txt")"
# filters: problem = not OK; a status; a host; -c collector.yaml reads the same state dir
cli checks --status problem | grep -q proc_agent && fail "--status problem lists the OK check"
cli checks --status problem | grep -q proc_ghost || fail "--status problem misses proc_ghost"
[ "$(cli checks --status ok --host "$H" --csv | grep -c "^\"$H\"")" = 1 ] || fail "--status ok"
[ "$(cli checks --host nosuch --csv | wc -l)" = 1 ] || fail "--host nosuch lists checks"
"$BIN_CLI" checks -c "$T/collector.yaml" --status critical | grep -q proc_ghost ||
    fail "checks -c collector.yaml"

# logevents: newest first (the WARN line came after the FATAL one), CSV columns, filters
cli logevents --csv > "$T/log.csv"
head -c 3 "$T/log.csv" | od -An -tx1 | grep -q "ef bb bf" || fail "logevents CSV has no BOM"
python3 - "$T/log.csv" "$H" <<'PY' || fail "logevents CSV: $(cat "$T/log.csv")"
import csv, json, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8-sig", newline="")))
assert rows[0] == ["time", "host", "severity", "rule", "source", "text", "fields"], rows[0]
ev = rows[1:]
assert [r[3] for r in ev] == ["slow", "fatal"], ev
fatal = ev[1]
assert fatal[1] == sys.argv[2] and fatal[2] == "critical", fatal
assert fatal[4].endswith("app.log") and fatal[5] == "FATAL disk_gone on /data", fatal
assert json.loads(fatal[6]).get("what") == "disk_gone", fatal
assert ev[0][0] >= ev[1][0], ev
PY
cli logevents > "$T/log.txt"
grep -q " $H  *critical fatal .*FATAL disk_gone on /data$" "$T/log.txt" ||
    fail "logevents table: $(cat "$T/log.txt")"
grep -q "^2 events$" "$T/log.txt" || fail "logevents count: $(cat "$T/log.txt")"
[ "$(cli logevents --rule fatal --csv | tail -n +2 | wc -l)" = 1 ] || fail "--rule fatal"
[ "$(cli logevents --limit 1 --csv | tail -n +2 | cut -d, -f4)" = '"slow"' ] ||
    fail "--limit 1 is not the newest"
cli logevents --limit 1 | grep -q "^1 event (the limit" || fail "--limit note"
[ "$(cli logevents --host nosuch --csv | wc -l)" = 1 ] || fail "--host nosuch lists events"
tomorrow=$(date -d tomorrow +%F)
[ "$(cli logevents --since "$tomorrow" --csv | wc -l)" = 1 ] || fail "--since tomorrow"
[ "$(cli logevents --since "$(date -d '-1 hour' +%FT%H:%M)" --csv | tail -n +2 | wc -l)" = 2 ] ||
    fail "--since an hour ago"

# the CLI only read: the collector still writes events.db
printf 'FATAL again_now here\n' >> "$T/applog/app.log"
wait_for 20 "a new log event after the CLI read" \
    bash -c "'$BIN_CLI' logevents --rule fatal --state-dir '$T/state' | grep -q again_now"

stop agent1
stop collector
log "checks and logevents CLI ok"
