#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A full disk under the collector's journal stops the acks, not the agents: while the journal
# cannot write, nothing is acked and the agent keeps its batches in its spool; once space is
# back, everything arrives and every produced value is in the RRD files exactly once.
# Runs in a private mount namespace on a small tmpfs (needs root, as in CI); skips otherwise.
if [ -z "${WP_IN_NS:-}" ]; then
    if [ "$(id -u)" -ne 0 ] || ! unshare -m true 2>/dev/null; then
        echo "SKIP: needs root and unshare -m for a private tmpfs"
        exit 0
    fi
    WP_IN_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/state"
mount -t tmpfs -o size=3m tmpfs "$T/state" || { echo "SKIP: cannot mount tmpfs"; exit 0; }
ca_init
issue agent1
# ~1,600 values/s so the 64 KiB journal segments roll every few seconds; small RRD files
RRD_DIR=$T/rrd RRD_ARCHIVES="[{cf: AVERAGE, span: 1h}]" \
    collector_config "journal:" "  segment_bytes: 64KiB"
start_collector

AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 100, fields: 16, record: $T/agent1.rec}"
agent_config agent1
start_agent agent1
START=$(($(date +%s) + 1))
acked() { [ "$(cstat values_acked)" -gt "$1" ]; }
wait_for 30 "first values acked" acked 0
sleep 3

log "fill the collector's disk"
dd if=/dev/zero of="$T/state/filler" bs=64k 2>/dev/null || true
errors() { [ "$(cstat journal_errors)" -gt 0 ]; }
wait_for 30 "journal write errors" errors
a1=$(cstat values_acked)
sleep 4
a2=$(cstat values_acked)
[ "$a1" = "$a2" ] || fail "the collector acked values while its journal could not write ($a1 -> $a2)"
grep -q "journal write failed" "$T/collector.log" || fail "no log line about the failing journal"
log "no acks while full (values_acked stays $a2); the agent keeps spooling"

log "free the disk"
rm -f "$T/state/filler"
wait_for 60 "acks resume" acked "$a2"
END=$(($(date +%s) - 2))
sleep 3

# the query reads the RRD folder from the collector's config
q() { "$BIN_CLI" query -c "$T/collector.yaml" "$@"; }
reached() {
    q --host agent1 --metric selftest.v0 --instance s0 --since 10m --format raw > "$T/q0" \
        2>/dev/null || return 1
    awk -v e="$END" '$1 >= e {found=1} END {exit !found}' "$T/q0"
}
wait_for 60 "data up to $END in RRD" reached
rc=0
for f in 0 1; do
    q --host agent1 --metric "selftest.v$f" --since 10m --format raw > "$T/q$f"
    python3 "$WP_SRC/tests/integration/compare.py" "$T/agent1.rec" "$T/q$f" "$f" "$START" \
        "$END" 0 "agent1 v$f" || rc=1
done
[ "$rc" -eq 0 ] || fail "values were lost or changed across the full disk"
stop agent1
stop collector
log "PASS"
