#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# limits.idle_timeout closes a connection that goes quiet, never one that streams: an agent
# sending every second to a collector with a 3 s idle timeout keeps its one connection for
# well over three timeouts, while a TCP client that connects and sends nothing is dropped.
# Also: `watchpost status` lists every counter the collector sends (rrd_pending_rows is last).
. "$(dirname "$0")/lib.sh"

ca_init
issue agent1
collector_config "limits: {idle_timeout: 3s, handshake_timeout: 2s}"
start_collector
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 2, fields: 2}"
agent_config agent1
start_agent agent1
connected() { [ "$(cstat agents_connected)" = 1 ]; }
wait_for 30 "agent connected" connected
b0=$(cstat batches)
sleep 11
b1=$(cstat batches)
[ "$((b1 - b0))" -ge 8 ] || fail "only $((b1 - b0)) batches in 11 s: the agent did not stream"
accepted=$(cstat accepted)
[ "$accepted" = 1 ] || fail "a streaming agent was reconnected: $accepted connections accepted"
grep -q "disconnected collector=" "$T/agent1.log" &&
    fail "agent log shows the collector closed a streaming connection"

# a client that never speaks is closed by the handshake timer, then nothing else is affected
python3 - "$COLL_PORT" <<'PY' || fail "a silent TCP client was not closed by the collector"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
sys.exit(0 if s.recv(1) == b"" else 1)   # recv raises after 10 s if never closed
PY
[ "$(cstat agents_connected)" = 1 ] || fail "the agent lost its connection"

"$BIN_CLI" status --state-dir "$T/state" > "$T/status"
grep -q '^rrd_pending_rows ' "$T/status" || { cat "$T/status"; fail "status lacks rrd_pending_rows"; }
stop agent1
stop collector
log "PASS"
