#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Mutual-TLS admission. While a good agent streams throughout, the collector refuses:
#  - an agent whose certificate comes from another CA (TLS handshake refused, refused_auth),
#  - an agent whose configured id differs from its certificate CN (HELLO refused, the log line
#    names both),
#  - a revoked agent: it streams, then `watchpost ca revoke` rewrites the CRL; within a few
#    seconds (crl_check_interval 1s) the collector closes its live connection and refuses
#    every reconnect, and its RRD data stops growing.
# Finally every value the good agent recorded is in the RRD files exactly once.
. "$(dirname "$0")/lib.sh"

ca_init
for a in good victim agentx; do issue "$a"; done
collector_config
start_collector

# A second CA whose certificates the collector must not accept.
WATCHPOST_CA_DIR=$T/ca2 "$BIN_CLI" ca init --cn "rogue CA" > /dev/null
WATCHPOST_CA_DIR=$T/ca2 "$BIN_CLI" ca issue rogue --out "$T/certs2" > /dev/null

AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 2, fields: 2, record: $T/good.rec}"
agent_config good
start_agent good
START=$(($(date +%s) + 1))

connected_is() { [ "$(cstat agents_connected)" = "$1" ]; }
ge() { [ "$(cstat "$1")" -ge "$2" ]; }
log_count() { grep -c -- "$1" "$T/collector.log" || true; }
log_grew() { [ "$(log_count "$1")" -gt "$2" ]; }
wait_for 30 "good agent connected" connected_is 1

# good's acked values (from the per-agent RRD data would need a flush; the counter is global,
# and only good sends batches while the refused agents run)
good_acked_grows() { # good_acked_grows BEFORE
    [ "$(cstat values_acked)" -gt "$1" ]
}

# ---- certificate from another CA -----------------------------------------------------------
log "agent with a certificate from another CA"
auth0=$(cstat refused_auth)
tls0=$(log_count "TLS handshake refused")
acked0=$(cstat values_acked)
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 1, fields: 1}" \
    AGENT_CERT=$T/certs2/rogue.crt AGENT_KEY=$T/certs2/rogue.key agent_config rogue
start_agent rogue
wait_for 20 "the rogue agent refused twice" ge refused_auth $((auth0 + 2))
wait_for 10 "a 'TLS handshake refused' log line" log_grew "TLS handshake refused" "$tls0"
grep "TLS handshake refused" "$T/collector.log" | tail -n 1
wait_for 10 "good agent still acked" good_acked_grows "$acked0"
connected_is 1 || fail "the rogue agent counts as connected"
grep -q "agent connected agent=rogue" "$T/collector.log" && fail "the rogue agent got a WELCOME"
stop rogue

# ---- id that differs from the certificate CN -------------------------------------------------
log "agent whose id differs from its certificate CN"
auth0=$(cstat refused_auth)
acked0=$(cstat values_acked)
MSG='agent id "spoofed" does not match certificate CN "agentx"'
spoof0=$(log_count "$MSG")
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 1, fields: 1}" \
    AGENT_CERT=$T/certs/agentx.crt AGENT_KEY=$T/certs/agentx.key agent_config spoof spoofed
start_agent spoof
wait_for 20 "the spoofing agent refused twice" ge refused_auth $((auth0 + 2))
wait_for 10 "a log line naming both ids" log_grew "$MSG" "$spoof0"
grep -F "$MSG" "$T/collector.log" | tail -n 1
wait_for 10 "good agent still acked" good_acked_grows "$acked0"
connected_is 1 || fail "the spoofing agent counts as connected"
grep -q "agent connected agent=spoofed" "$T/collector.log" && fail "the spoofed id got a WELCOME"
grep -q "agent connected agent=agentx" "$T/collector.log" && fail "agentx got a WELCOME"
stop spoof

# ---- revoked while streaming ---------------------------------------------------------------
log "agent revoked while streaming"
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 1, fields: 1}" agent_config victim
start_agent victim
wait_for 30 "victim connected" connected_is 2
victim_rows() { # number of stored victim values
    "$BIN_CLI" query --state-dir "$T/state" --host victim --metric selftest.v0 --instance s0 \
        --since 10m --format raw 2>/dev/null | wc -l
}
has_rows() { [ "$(victim_rows)" -ge "$1" ]; }
wait_for 30 "victim values in RRD" has_rows 3

auth0=$(cstat refused_auth)
rev0=$(log_count "certificate revoked")
"$BIN_CLI" ca revoke victim > /dev/null
REVOKED_AT=$(date +%s)
wait_for 10 "the collector closes the revoked connection" log_grew "certificate revoked" "$rev0"
grep "certificate revoked" "$T/collector.log" | tail -n 1
wait_for 5 "victim disconnected" connected_is 1
CLOSED_AT=$(date +%s)
log "closed $((CLOSED_AT - REVOKED_AT)) s after the revocation"
[ $((CLOSED_AT - REVOKED_AT)) -le 5 ] || fail "the revoked connection lived on for too long"
# the close counts once, then every reconnect attempt is refused
wait_for 20 "victim reconnects refused" ge refused_auth $((auth0 + 3))
connected_is 1 || fail "the revoked agent got back in"
grep "TLS handshake refused" "$T/collector.log" | tail -n 1 | grep -q revoked ||
    fail "the last refused handshake does not name the revocation"

# its data stops: wait for two RRD flushes (2 s each), then nothing more arrives
acked0=$(cstat values_acked)
sleep 5
rows1=$(victim_rows)
auth1=$(cstat refused_auth)
wait_for 20 "two more refused reconnects" ge refused_auth $((auth1 + 2))
sleep 5
rows2=$(victim_rows)
log "victim rows after close: $rows1, later: $rows2; refused_auth=$(cstat refused_auth)"
[ "$rows2" -eq "$rows1" ] || fail "victim's RRD data still grows after the revocation"
last_ts=$("$BIN_CLI" query --state-dir "$T/state" --host victim --metric selftest.v0 \
    --instance s0 --since 10m --format raw | awk 'END {print $1}')
[ "$last_ts" -le "$CLOSED_AT" ] || fail "victim value at $last_ts after the close at $CLOSED_AT"
good_acked_grows "$acked0" || fail "the good agent stopped being acked"
stop victim

# ---- the good agent lost nothing -------------------------------------------------------------
END=$(($(date +%s) - 2))
check_recorded good "$START" "$END" 2
grep -q "agent disconnected agent=good" "$T/collector.log" && fail "the good agent was disconnected"

stop good
stop collector
log "PASS"
