#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A bounded spool drops the oldest batches when the collector stays away too long, and says
# how much: once the agent connects, its self-metric agent.spool_drop_batches (stored in RRD
# like any series) equals what the spool dropped, and every seq the collector found missing is
# one the spool dropped (nothing is lost silently). A batch dropped while already in flight may
# still arrive, so the collector can see fewer gaps than the spool dropped, never more.
. "$(dirname "$0")/lib.sh"

ca_init
issue agent1
# The agent dials a proxy whose target port file does not exist yet: every connect fails.
python3 "$WP_SRC/tests/integration/tcpproxy.py" "$T/proxy.port" "$T/collector.port" 1 \
    > "$T/proxy.log" 2>&1 &
PIDS[proxy]=$!
wait_for 10 "proxy port" test -s "$T/proxy.port"
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 100, fields: 16}"
agent_config agent1 agent1 "$(cat "$T/proxy.port")"
cat >> "$T/agent1.yaml" <<YAML
spool:
  max_bytes: 64KiB
  segment_bytes: 8KiB
YAML
start_agent agent1
sleep 12   # ~10 KB per batch: a 64 KiB spool overflows within a few seconds

collector_config
start_collector
connected() { [ "$(cstat agents_connected)" = 1 ]; }
wait_for 30 "agent connected" connected
missing=$(cstat missing_batches)
[ "$missing" -gt 0 ] || fail "the collector saw no missing batches: the spool did not drop"

# wait until the agent's spool is drained (no more drops), then compare seq sets
drained() { [ "$(cstat dup_batches)" -ge 0 ] && [ "$(cstat batches)" -gt 8 ]; }
wait_for 30 "backlog delivered" drained
sleep 2
dropped_seqs() {
    sed -n 's/.*dropping [0-9]* unacked batches (seq \([0-9]*\)\.\.\([0-9]*\)).*/\1 \2/p' \
        "$T/agent1.log" | while read -r lo hi; do seq "$lo" "$hi"; done | sort -n
}
missing_seqs() {
    sed -n 's/.*agent agent1 skipped [0-9]* batches (\([0-9]*\)\.\.\([0-9]*\)).*/\1 \2/p' \
        "$T/collector.log" | while read -r lo hi; do seq "$lo" "$hi"; done | sort -n
}
dropped_seqs > "$T/dropped"
missing_seqs > "$T/missing"
[ "$(wc -l < "$T/missing")" = "$(cstat missing_batches)" ] || fail "missing log lines != counter"
unexplained=$(comm -13 "$T/dropped" "$T/missing")
[ -z "$unexplained" ] || fail "batches missing at the collector that the spool never dropped: $unexplained"
ndrop=$(wc -l < "$T/dropped")
log "spool dropped $ndrop batches; the collector saw $(wc -l < "$T/missing") of them missing"

# self-metrics go out every 10 s; wait for one sent after the last drop
reported() {
    "$BIN_CLI" query --state-dir "$T/state" --host agent1 --metric agent.spool_drop_batches \
        --since 10m --format raw > "$T/drops" 2>/dev/null || return 1
    [ "$(tail -n 1 "$T/drops" | awk '{print $3}')" = "$ndrop" ]
}
wait_for 40 "agent.spool_drop_batches = $ndrop" reported
values=$("$BIN_CLI" query --state-dir "$T/state" --host agent1 --metric agent.spool_drop_values \
    --since 10m --format raw | tail -n 1 | awk '{print $3}')
# each batch holds 1,600 selftest values, plus the agent's own 12-field row every 10 s
extra=$((values - ndrop * 1600))
[ "$extra" -ge 0 ] && [ $((extra % 12)) -eq 0 ] && [ "$extra" -le $((12 * (ndrop / 10 + 1))) ] ||
    fail "agent.spool_drop_values is $values, expected $ndrop x 1600 (+ 12 per self-metric row)"
log "agent reported $ndrop dropped batches ($values values)"
stop agent1
stop collector
log "PASS"
