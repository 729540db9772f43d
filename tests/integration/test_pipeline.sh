#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Three agents stream to a collector over mutual TLS. Mid-stream the collector is killed with
# SIGKILL and restarted, one agent is killed and restarted, and another agent's link is cut.
# Afterwards every value each agent produced is in the RRD files exactly once: count and sum
# of every selftest series compared with what the probe recorded.
. "$(dirname "$0")/lib.sh"

ca_init
for a in agent1 agent2 agent3; do issue "$a"; done
collector_config
start_collector

# Agents reach the collector through proxies that follow its port across restarts.
PROXY=$WP_SRC/tests/integration/tcpproxy.py
python3 "$PROXY" "$T/proxyA.port" "$T/collector.port" 3 > "$T/proxyA.log" 2>&1 &
PIDS[proxyA]=$!
python3 "$PROXY" "$T/proxyB.port" "$T/collector.port" 3 > "$T/proxyB.log" 2>&1 &
PIDS[proxyB]=$!
wait_for 10 "proxy ports" test -s "$T/proxyA.port" -a -s "$T/proxyB.port"

for a in agent1 agent2 agent3; do
    AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 3, fields: 2, record: $T/$a.rec}
  - {kind: host, interval: 1s}"
    port=$(cat "$T/proxyA.port")
    [ "$a" = agent3 ] && port=$(cat "$T/proxyB.port")
    agent_config "$a" "$a" "$port"
    start_agent "$a"
done
START=$(($(date +%s) + 1))

connected() { [ "$(cstat agents_connected)" = 3 ]; }
wait_for 30 "three agents connected" connected
sleep 4

log "SIGKILL the collector mid-stream"
crash collector
sleep 3
start_collector
wait_for 30 "agents back after the collector restart" connected
[ "$(cstat replayed_batches)" -gt 0 ] || fail "the restarted collector replayed no journal"
log "collector back: replayed $(cstat replayed_batches) batches"
sleep 2

log "SIGKILL agent2 and restart it"
crash agent2
sleep 2
start_agent agent2

log "cut agent3's link for 3 s"
kill -USR1 "${PIDS[proxyB]}"
sleep 6
wait_for 30 "three agents connected" connected

END=$(($(date +%s) - 2))
sleep 2

# Wait until each agent's RRD data reaches END, then compare every field of every series.
reached() { # reached AGENT
    "$BIN_CLI" query --state-dir "$T/state" --host "$1" --metric selftest.v0 --instance s0 \
        --since 10m --format raw > "$T/$1.q0" 2>/dev/null || return 1
    awk -v e="$END" '$1 >= e {found=1} END {exit !found}' "$T/$1.q0"
}
rc=0
for a in agent1 agent2 agent3; do
    wait_for 40 "$a data up to $END in RRD" reached "$a"
    allow=0
    [ "$a" = agent2 ] && allow=1
    for f in 0 1; do
        "$BIN_CLI" query --state-dir "$T/state" --host "$a" --metric "selftest.v$f" \
            --since 10m --format raw > "$T/$a.q$f"
        python3 "$WP_SRC/tests/integration/compare.py" "$T/$a.rec" "$T/$a.q$f" "$f" \
            "$START" "$END" "$allow" "$a v$f" || rc=1
    done
    # the host probe's data arrived too
    "$BIN_CLI" query --state-dir "$T/state" --host "$a" --metric cpu.user --instance total \
        --since 10m --format raw > "$T/$a.cpu" || rc=1
    [ -s "$T/$a.cpu" ] || { echo "$a: no cpu.user values stored"; rc=1; }
done
[ "$rc" -eq 0 ] || fail "stored values differ from what the agents produced"

log "collector: dup_batches=$(cstat dup_batches) missing_batches=$(cstat missing_batches)"
[ "$(cstat missing_batches)" = 0 ] || fail "the collector saw missing batches"
# the agents registry: id, host, version, certificate fingerprint, first and last seen
reg() { sqlite3 "$T/state/watchpost.db" "SELECT id, host, version, length(fingerprint),
    first_seen > 0 AND last_seen >= first_seen, connected FROM agents ORDER BY id"; }
h=$(hostname)
want="agent1|$h|0.1.0|64|1|1
agent2|$h|0.1.0|64|1|1
agent3|$h|0.1.0|64|1|1"
registered() { [ "$(reg)" = "$want" ]; }
wait_for 10 "agents registry rows" registered
fp=$(sqlite3 "$T/state/watchpost.db" "SELECT fingerprint FROM agents WHERE id='agent1'")
want_fp=$(python3 -c 'import base64, hashlib, sys
pem = open(sys.argv[1]).read().split("-----")[2]
print(hashlib.sha256(base64.b64decode(pem)).hexdigest())' "$T/certs/agent1.crt")
[ "$fp" = "$want_fp" ] || fail "agent1 fingerprint $fp, certificate is $want_fp"
for a in agent1 agent2 agent3; do stop "$a"; done
disconnected() { [ "$(sqlite3 "$T/state/watchpost.db" "SELECT sum(connected) FROM agents")" = 0 ]; }
wait_for 10 "agents marked disconnected" disconnected
stop collector
log "PASS"
